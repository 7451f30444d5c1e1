"""Failed authentications are throttled per client, on the REST API and on the web UI's sign-in form."""

from __future__ import annotations

from tests.integration.conftest import Api
from tests.integration.test_web import csrf_of
from unified.auth_throttle import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_SECONDS
from unified.server import ServerSettings, uvicorn_options

WRONG = {"X-API-Key": "unified_000000000000_" + "A" * 43}


def exhaust(api: Api) -> None:
    """Send as many wrong keys as the throttle allows, each answered 401."""
    for _ in range(DEFAULT_MAX_FAILURES):
        assert api.client.get("/runs", headers=WRONG).status_code == 401


def test_wrong_keys_are_throttled_then_allowed_again_when_the_window_passes(api: Api) -> None:
    exhaust(api)
    refused = api.client.get("/runs", headers=WRONG)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(int(DEFAULT_WINDOW_SECONDS))
    error = refused.json()["error"]
    assert error["code"] == "too_many_attempts" and error["details"] == {"retry_after_seconds": 60}
    assert "try again in 60 s (after " in error["message"]
    # while throttled a right key is not even checked: it answers as a wrong one would, so guessing learns nothing
    assert api.client.get("/runs", headers=api.headers()).status_code == 429
    assert api.client.get("/health").status_code == 200, "routes that need no key still answer"
    api.clock.advance(DEFAULT_WINDOW_SECONDS)
    assert api.client.get("/runs", headers=api.headers()).status_code == 200


def test_successful_and_keyless_requests_do_not_count(api: Api) -> None:
    headers = api.headers()
    for _ in range(5 * DEFAULT_MAX_FAILURES):
        assert api.client.get("/runs", headers=headers).status_code == 200
        assert api.client.get("/runs").status_code == 401  # no key sent: nothing guessed
    assert api.client.get("/runs", headers=WRONG).status_code == 401


def test_x_forwarded_for_does_not_change_who_is_throttled(api: Api) -> None:
    exhaust(api)
    spoofed = {**WRONG, "X-Forwarded-For": "203.0.113.9"}
    assert api.client.get("/runs", headers=spoofed).status_code == 429


def test_uvicorn_believes_forwarded_headers_only_from_configured_proxies() -> None:
    plain = uvicorn_options(ServerSettings())
    assert plain["proxy_headers"] is False
    proxied = uvicorn_options(ServerSettings.from_env({"UNIFIED_TRUSTED_PROXIES": "10.0.0.5,10.1.0.0/16"}))
    assert proxied["proxy_headers"] is True and proxied["forwarded_allow_ips"] == "10.0.0.5,10.1.0.0/16"


def test_the_limits_are_read_from_the_environment() -> None:
    settings = ServerSettings.from_env({"UNIFIED_AUTH_MAX_FAILURES": "3", "UNIFIED_AUTH_WINDOW_SECONDS": "600"})
    assert (settings.auth_max_failures, settings.auth_window_seconds) == (3, 600)


def test_the_sign_in_form_is_throttled_too_and_says_when_to_try_again(api: Api) -> None:
    token = csrf_of(api.client)
    for _ in range(DEFAULT_MAX_FAILURES):
        wrong = api.client.post("/login", data={"api_key": "not a key", "csrf": token})
        assert wrong.status_code == 401
    refused = api.client.post("/login", data={"api_key": api.admin_key, "csrf": token})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "try again in 60 s" in refused.text and "Content-Security-Policy" in refused.headers
    assert api.client.get("/runs", headers=WRONG).status_code == 429, "one count for the API and the web UI"
    api.clock.advance(DEFAULT_WINDOW_SECONDS)
    signed_in = api.client.post("/login", data={"api_key": api.admin_key, "csrf": token, "next": "/ui/runs"})
    assert signed_in.status_code == 200 and signed_in.url.path == "/ui/runs"


def test_refused_requests_are_audited_at_most_a_budget_a_minute_per_client(api: Api, caplog) -> None:
    """Anyone can send keyless or throttled requests: each one a committed audit row would let a stranger fill the
    disk, so past a budget a minute they are only counted in the log (one warning a minute)."""
    from unified.api import ANONYMOUS_AUDITS

    def audited() -> int:
        return sum(e["outcome"] in (401, 429) for e in api.call("GET", "/audit?limit=200").json()["items"])

    for _ in range(3 * ANONYMOUS_AUDITS):
        assert api.client.post("/workflows", json={}).status_code == 401
    for _ in range(DEFAULT_MAX_FAILURES + 5):
        assert api.client.post("/workflows", json={}, headers=WRONG).status_code in (401, 429)
    api.clock.advance(60)  # the wrong keys throttled this client, the admin's key included: wait that out
    assert audited() == ANONYMOUS_AUDITS
    assert sum("are not audited" in r.getMessage() for r in caplog.records) == 1
    assert api.client.post("/workflows", json={}).status_code == 401  # a new minute, a new budget
    assert audited() == ANONYMOUS_AUDITS + 1
