"""What the web forms accept: the same as the REST API, refused with an HTML error page otherwise."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Api
from tests.integration.test_web import csrf_of, pipeline_id, sign_in

UNSTORABLE = {
    "a lone surrogate": '{"a": "\\ud800"}',
    "300 deep": '{"a": ' + "[" * 300 + "]" * 300 + "}",
    "a number of 4,400 digits": '{"a": ' + "9" * 4400 + "}",
    "3,000 deep": '{"a": ' + "[" * 3000 + "]" * 3000 + "}",
}


@pytest.mark.parametrize("params", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_the_run_form_refuses_params_the_rest_api_refuses(api: Api, params: str) -> None:
    workflow = pipeline_id(api)
    assert api.call("POST", f"/workflows/{workflow}/runs", content=f'{{"params": {params}}}',
                    headers={"content-type": "application/json"}).status_code in (400, 422)  # fmt: skip
    client = sign_in(api, "operator")
    refused = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": csrf_of(client, "/"), "params": params})
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert '<p class="error-message">params ' in refused.text, "the message says what is wrong with them"
    assert api.services.store.list_runs() == [], "nothing was stored"
    for path in ("/runs", f"/workflows/{workflow}/runs"):
        assert api.call("GET", path).status_code == 200, path


def test_the_run_form_refuses_a_version_that_is_not_a_number(api: Api) -> None:
    client = sign_in(api, "operator")
    workflow = pipeline_id(api)
    token = csrf_of(client, "/")
    for version in ("abc", "0", "-1"):
        refused = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": "", "version": version})
        assert refused.status_code == 422 and "version:" in refused.text, version
    assert api.services.store.list_runs() == [], "no run of the current draft instead"
    client.post(f"/ui/workflows/{workflow}/run", data={"csrf": token, "params": "", "version": ""})
    assert [r.version for r in api.services.store.list_runs()] == [1], "empty: the current draft"


def test_a_key_name_follows_the_rest_api_rules(api: Api) -> None:
    client = sign_in(api)
    token = csrf_of(client, "/ui/keys")
    assert api.call("POST", "/api-keys", json={"name": "k" * 5000, "role": "viewer"}).status_code == 422
    bad = ({"name": "k" * 5000, "role": "viewer"}, {"name": "  ", "role": "viewer"}, {"name": "x", "role": "god"})
    for form in bad:
        refused = client.post("/ui/keys", data={"csrf": token, **form})
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html"), form
    assert "k" * 200 not in client.get("/ui/keys").text
    created = client.post("/ui/keys", data={"csrf": token, "name": "k" * 200, "role": "viewer", "owner": ""})
    assert created.status_code == 200 and "k" * 200 in created.text


def test_a_form_over_64_kb_is_too_large_not_forbidden(sqlite_api: Api) -> None:
    client = sign_in(sqlite_api, "operator")  # the default body limit of the server (1 MB): the form's own applies
    workflow = pipeline_id(sqlite_api)
    params = '{"a": "' + "x" * 70_000 + '"}'
    refused = client.post(f"/ui/workflows/{workflow}/run", data={"csrf": csrf_of(client, "/"), "params": params})
    assert refused.status_code == 413 and refused.headers["content-type"].startswith("text/html")
    assert "over the limit of 64 KB" in refused.text and "Not allowed" not in refused.text
