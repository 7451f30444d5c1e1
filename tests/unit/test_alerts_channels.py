"""Alert channels against real loopback endpoints: an HTTP server for webhooks and Slack, aiosmtpd for email."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.helpers.tasks import boom
from unified.alerts import EmailChannel, LogChannel, SlackChannel, WebhookChannel, verify_signature
from unified.channels import SIGNATURE_HEADER, channel_from_config
from unified.errors import ValidationError
from unified.task_manager import TaskManager


class Receiver:
    """A loopback HTTP server recording each POST; answers ``statuses`` in turn (then 200), optionally held."""

    def __init__(self, statuses: tuple[int, ...] = (), hold: threading.Event | None = None) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                receiver.got.set()
                if hold is not None:
                    hold.wait(10)
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """An aiosmtpd handler keeping each message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.got = threading.Event()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content.decode()))  # type: ignore[attr-defined]
        self.got.set()
        return "250 OK"


def fail_task(tm: TaskManager) -> str:
    task_id = tm.queue_task(boom, args=("disk full",), name="load")
    tm.run_until_idle()
    assert tm.alerts.flush(10), "alerts were not delivered in time"
    return task_id


def test_webhook_posts_the_alert_as_json_signed_with_the_secret(drained: TaskManager, receiver: Receiver) -> None:
    rule_id = drained.add_alert_rule(["task_failed"], WebhookChannel(receiver.url, secret="s3cret"))
    task_id = fail_task(drained)
    ((headers, body),) = receiver.requests
    (alert,) = drained.list_alerts()
    assert json.loads(body) == alert["alert"]
    assert verify_signature("s3cret", body, headers[SIGNATURE_HEADER])
    assert not verify_signature("other", body, headers[SIGNATURE_HEADER])
    assert headers["Content-Type"] == "application/json"
    sent = alert["alert"]
    assert sent["event"] == "task_failed" and sent["task_id"] == task_id and sent["rule_id"] == rule_id
    assert sent["error"]["message"] == "disk full" and sent["summary"].startswith("[unified] task_failed 'load'")
    assert (alert["status"], alert["attempts"], alert["error"], alert["channel"]) == ("sent", 1, None, "webhook")
    assert alert["delivered_at"].endswith("Z")


def test_webhook_without_secret_is_unsigned(drained: TaskManager, receiver: Receiver) -> None:
    drained.add_alert_rule("task_failed", WebhookChannel(receiver.url))
    fail_task(drained)
    assert SIGNATURE_HEADER not in receiver.requests[0][0]


def test_a_failing_endpoint_is_retried_with_backoff(drained: TaskManager) -> None:
    flaky = Receiver(statuses=(500, 503))
    drained.alerts.retry_delay_seconds = 0.01
    drained.add_alert_rule(["task_failed"], WebhookChannel(flaky.url))
    fail_task(drained)
    flaky.close()
    (alert,) = drained.list_alerts()
    assert len(flaky.requests) == 3 and (alert["status"], alert["attempts"]) == ("sent", 3)


def test_a_refused_connection_is_retried_then_recorded_failed(drained: TaskManager) -> None:
    drained.alerts.retry_delay_seconds = 0.01
    drained.alerts.max_attempts = 3  # all in the sender: no wait parks it
    drained.add_alert_rule(["task_failed"], WebhookChannel(f"http://127.0.0.1:{free_port()}/", timeout_seconds=2))
    task_id = fail_task(drained)
    (alert,) = drained.list_alerts()
    assert (alert["status"], alert["attempts"]) == ("failed", 3)
    assert alert["error"].startswith("ChannelError: POST to http://127.0.0.1:") and "ConnectError" in alert["error"]
    assert alert["delivered_at"] is None
    assert drained.get_task_metadata(task_id)["state"] == "failure", "the engine is untouched"


def test_a_webhook_address_is_neither_logged_nor_recorded_when_it_fails_or_succeeds(
    drained: TaskManager, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Receiver(statuses=(500, 500, 500))
    drained.alerts.retry_delay_seconds = 0.01
    drained.alerts.max_attempts = 3  # all in the sender: no wait parks it
    secret_path = "/services/T000/B000/XXXXsecret"
    drained.add_alert_rule(["task_failed"], SlackChannel(failing.url.replace("/hook", secret_path)))
    caplog.set_level("DEBUG")
    fail_task(drained)
    failing.close()
    (alert,) = drained.list_alerts()
    assert (alert["status"], alert["attempts"]) == ("failed", 3)
    assert alert["error"] == (
        f"ChannelError: POST to {failing.url.removesuffix('/hook')}/*** was answered 500 Internal Server Error: "
        "check the address and the receiving service"
    )
    working = Receiver()
    drained.add_alert_rule(["task_failed"], WebhookChannel(working.url + "?token=XXXXsecret"))
    fail_task(drained)
    working.close()
    assert len(working.requests) == 1 and "HTTP Request: POST" in caplog.text, "httpx logs its requests"
    assert "XXXXsecret" not in caplog.text
    assert all("XXXXsecret" not in (a["error"] or "") for a in drained.list_alerts())


def test_slack_gets_a_text_message(drained: TaskManager, receiver: Receiver) -> None:
    drained.add_alert_rule(["task_failed"], SlackChannel(receiver.url))
    task_id = fail_task(drained)
    payload = json.loads(receiver.requests[0][1])
    assert list(payload) == ["text"]
    assert payload["text"].startswith("[unified] task_failed 'load': ValueError: disk full")
    assert f"task_id={task_id}" in payload["text"]


def test_email_is_sent_over_smtp_with_login(drained: TaskManager) -> None:
    inbox = Inbox()

    def authenticate(server: object, session: object, envelope: object, mechanism: str, auth: object) -> AuthResult:
        return AuthResult(success=(auth.login, auth.password) == (b"bot", b"pw"))  # type: ignore[attr-defined]

    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False)  # fmt: skip
    controller.start()
    try:
        channel = EmailChannel("127.0.0.1", "unified@example.org", ["oncall@example.org"], port=port,
                               username="bot", password="pw")  # fmt: skip
        drained.add_alert_rule(["task_failed"], channel)
        fail_task(drained)
        assert inbox.got.wait(5)
    finally:
        controller.stop()
    ((sender, recipients, text),) = inbox.messages
    assert sender == "unified@example.org" and recipients == ["oncall@example.org"]
    assert "Subject: [unified] task_failed 'load': ValueError: disk full" in text
    assert '"event": "task_failed"' in text
    assert drained.list_alerts()[0]["status"] == "sent"


def test_a_wrong_smtp_password_is_recorded_failed(drained: TaskManager) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, auth_require_tls=False,
                            authenticator=lambda *args: AuthResult(success=False, handled=False))  # fmt: skip
    controller.start()
    try:
        drained.alerts.retry_delay_seconds = 0.01
        drained.alerts.max_attempts = 3  # all in the sender: no wait parks it
        channel = EmailChannel("127.0.0.1", "u@example.org", "o@example.org", port=port, username="bot", password="x")
        drained.add_alert_rule(["task_failed"], channel)
        fail_task(drained)
    finally:
        controller.stop()
    (alert,) = drained.list_alerts()
    assert alert["status"] == "failed" and "SMTPAuthenticationError" in alert["error"] and not inbox.messages


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_email_upgrades_to_tls_with_starttls(drained: TaskManager, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    controller.start()
    try:
        channel = EmailChannel("127.0.0.1", "u@example.org", ["o@example.org"], port=port, starttls=True,
                               cafile=str(cert))  # fmt: skip
        drained.add_alert_rule(["task_failed"], channel)
        fail_task(drained)
        assert inbox.got.wait(5)
    finally:
        controller.stop()
    assert drained.list_alerts()[0]["status"] == "sent" and len(inbox.messages) == 1


def test_log_channel_writes_one_line(drained: TaskManager, caplog: pytest.LogCaptureFixture) -> None:
    drained.add_alert_rule(["task_failed"], LogChannel(level="error"))
    with caplog.at_level("ERROR", logger="unified.alerts"):
        fail_task(drained)
    lines = [r.getMessage() for r in caplog.records if r.name == "unified.alerts"]
    assert lines == ["[unified] task_failed 'load': ValueError: disk full"]


@pytest.mark.parametrize(
    "channel",
    [
        LogChannel(),
        WebhookChannel("https://example.org/hook", secret="k", timeout_seconds=3),
        SlackChannel("https://hooks.example.org/T/B/X"),
        EmailChannel(
            "smtp.example.org", "a@example.org", ["b@example.org"], port=587, username="u", password="p", starttls=True
        ),
    ],
    ids=lambda c: c.type,
)
def test_a_channel_is_rebuilt_from_its_stored_config(channel: object) -> None:
    config = channel.config()  # type: ignore[attr-defined]
    json.dumps(config)
    again = channel_from_config(config)
    assert type(again) is type(channel) and again.config() == config


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"type": "pager"}, "unknown alert channel type 'pager'"),
        ({"type": "webhook", "url": "ftp://x"}, "must be an http:// or https:// address with a host"),
        ({"type": "webhook", "url": "http://"}, "must be an http:// or https:// address with a host"),
        ({"type": "webhook", "url": "http://example.com:99999/hook"}, "address with a host \\(and a valid port\\)"),
        ({"type": "webhook", "url": "http://x", "colour": "red"}, "a webhook channel takes url, .*'colour' is unknown"),
        ({"type": "webhook"}, "a webhook channel takes url, secret, timeout_seconds: 'url' is missing"),
        ({"type": "log", "level": "LOUD"}, "log level 'LOUD' is unknown"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": []}, "recipients must be an address or a non-emp"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": 5}, "recipients must be an address or a non-emp"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": ["a", None]}, "each recipient must be a non"),
        ({"type": "email", "host": "h", "sender": "", "recipients": "a"}, "sender must be a non-empty string, not ''"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": "a", "port": "abc"}, "port must be a whole"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": "a", "port": 99999}, "port must be a whole"),
        ({"type": "email", "host": "h", "sender": "s", "recipients": "a", "starttls": "false"}, "starttls must be tr"),
        ({"type": "log", "level": 5}, "log level 5 is unknown"),
        ({"type": "slack", "url": "http://x", "timeout_seconds": 0}, "timeout_seconds must be a positive number"),
    ],
)
def test_bad_channel_configs_are_refused(config: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        channel_from_config(config)
