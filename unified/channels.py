"""Alert channels: where an alert goes (log, webhook, Slack-compatible webhook, email) and how it is sent once.

A channel's ``send(alert)`` makes one delivery attempt and raises if it failed; retrying with backoff is the
alert sender's job (``unified.alerts``). ``config()`` is the JSON stored with an alert rule and
:func:`channel_from_config` builds the channel again from it, so rules survive restarts and can be edited.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import json
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

from unified.errors import ChannelError, ValidationError

if TYPE_CHECKING:
    from email.message import EmailMessage

SIGNATURE_HEADER = "X-Unified-Signature"


@runtime_checkable
class Channel(Protocol):
    """Something that delivers one alert per call and describes itself as JSON."""

    type: str

    def send(self, alert: dict[str, Any]) -> None:
        """Deliver ``alert`` once; raise if it could not be delivered."""
        ...

    def config(self) -> dict[str, Any]:
        """The JSON that :func:`channel_from_config` turns back into this channel."""
        ...


def summary(alert: dict[str, Any]) -> str:
    """One line a person reads: what happened to which task, run or schedule."""
    event = alert.get("event", "alert")
    subject = alert.get("name") or alert.get("task_id") or alert.get("workflow_name") or alert.get("workflow_id")
    where = f" {subject!r}" if subject else ""
    if alert.get("run_id"):
        where += f" in run {alert['run_id']}"
    if failed := alert.get("failed_tasks"):
        where += f" (failed: {', '.join(map(str, failed[:3]))}{', ...' if len(failed) > 3 else ''})"
    error = alert.get("error") or {}
    detail = f": {error.get('type')}: {error.get('message')}" if error.get("message") else ""
    return f"[unified] {event}{where}{detail}"


def sign(secret: str, body: bytes) -> str:
    """The signature header value of ``body``: ``sha256=`` + hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """True if ``header`` is the signature of ``body`` under ``secret`` (for webhook receivers)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def _positive(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError(f"{what} must be a positive number of seconds, not {value!r}")
    return float(value)


def _text(value: Any, what: str, *, optional: bool = False) -> Any:
    """``value`` if it is a non-empty string (or None where ``optional``); else a ValidationError naming ``what``."""
    if (value is None and optional) or (isinstance(value, str) and value):
        return value
    raise ValidationError(f"{what} must be a non-empty string{' or null' if optional else ''}, not {value!r}")


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false, not {value!r}")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValidationError(f"port must be a whole number from 1 to 65535, not {value!r}")
    return value


def _http_url(url: Any, what: str) -> str:
    try:
        parts = urlsplit(url) if isinstance(url, str) and url.startswith(("http://", "https://")) else None
        usable = parts is not None and parts.hostname and (parts.port or 1)  # .port raises on 99999 or 'x'
    except ValueError:
        usable = False
    if not usable:
        raise ValidationError(f"{what} {url!r} must be an http:// or https:// address with a host (and a valid port)")
    return url  # type: ignore[no-any-return]


class LogChannel:
    """Writes each alert as one log line (logger ``unified.alerts`` unless named)."""

    type = "log"

    def __init__(self, level: str = "WARNING", logger: str = "unified.alerts") -> None:
        _text(logger, "logger")
        if not isinstance(level, str) or not isinstance(logging.getLevelName(level.upper()), int):
            raise ValidationError(f"log level {level!r} is unknown: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        self.level, self.logger = level.upper(), logger

    def send(self, alert: dict[str, Any]) -> None:
        """Log the alert's summary line."""
        logging.getLogger(self.logger).log(logging.getLevelName(self.level), "%s", summary(alert))

    def config(self) -> dict[str, Any]:
        """``{"type": "log", "level", "logger"}``."""
        return {"type": self.type, "level": self.level, "logger": self.logger}


class WebhookChannel:
    """HTTP POST of the alert dict as JSON; with a ``secret``, signed in the X-Unified-Signature header."""

    type = "webhook"

    def __init__(self, url: str, secret: str | None = None, timeout_seconds: float = 10.0) -> None:
        self.url, self.secret = _http_url(url, "webhook url"), _text(secret, "secret", optional=True)
        self.timeout_seconds = _positive(timeout_seconds, "timeout_seconds")

    def body(self, alert: dict[str, Any]) -> bytes:
        """The request body: the alert as JSON."""
        return json.dumps(alert, default=str, sort_keys=True).encode()

    def send(self, alert: dict[str, Any]) -> None:
        """POST once; raises on a connection error, a timeout or a status other than 2xx."""
        body = self.body(alert)
        headers = {"Content-Type": "application/json", "User-Agent": "unified-alerts"}
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        import httpx  # here, not at the top: it costs about half of `import unified.task_manager`

        shown = hide_url_in_logs(self.url)
        try:
            response = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_seconds)
        except httpx.HTTPError as exc:  # its text may hold the address, which the alert's error and the log show
            detail = str(exc).replace(self.url, shown) or "no detail"
            raise ChannelError(f"POST to {shown} failed: {type(exc).__name__}: {detail}") from None
        if not response.is_success:
            raise ChannelError(
                f"POST to {shown} was answered {response.status_code} {response.reason_phrase}: check the address "
                "and the receiving service"
            )

    def config(self) -> dict[str, Any]:
        """``{"type": "webhook", "url", "secret", "timeout_seconds"}``."""
        return {"type": self.type, "url": self.url, "secret": self.secret, "timeout_seconds": self.timeout_seconds}


class SlackChannel(WebhookChannel):
    """A Slack (or Mattermost, Teams-compatible) incoming webhook: ``{"text": summary}``."""

    type = "slack"

    def __init__(self, url: str, timeout_seconds: float = 10.0) -> None:
        super().__init__(url, None, timeout_seconds)

    def body(self, alert: dict[str, Any]) -> bytes:
        """``{"text": ...}``: the summary line, then the run and task ids."""
        ids = ", ".join(f"{k}={alert[k]}" for k in ("workflow_id", "run_id", "task_id", "schedule_id") if alert.get(k))
        text = summary(alert) + (f"\n{ids}" if ids else "")
        return json.dumps({"text": text}).encode()

    def config(self) -> dict[str, Any]:
        """``{"type": "slack", "url", "timeout_seconds"}``."""
        return {"type": self.type, "url": self.url, "timeout_seconds": self.timeout_seconds}


class EmailChannel:
    """SMTP via the standard library: STARTTLS when ``starttls``, login when ``username`` is set."""

    type = "email"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "host", "port", "sender", "recipients", "username", "password", "starttls", "cafile", "timeout_seconds",
    )  # fmt: skip

    def __init__(
        self,
        host: str,
        sender: str,
        recipients: list[str] | str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        cafile: str | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        recipients = [recipients] if isinstance(recipients, str) else recipients
        if not isinstance(recipients, list | tuple) or not recipients:
            raise ValidationError(f"recipients must be an address or a non-empty list of them, not {recipients!r}")
        self.recipients = [_text(address, "each recipient") for address in recipients]
        self.host, self.port, self.sender = _text(host, "host"), _port(port), _text(sender, "sender")
        self.username = _text(username, "username", optional=True)
        self.password = _text(password, "password", optional=True)
        self.starttls, self.cafile = _flag(starttls, "starttls"), _text(cafile, "cafile", optional=True)
        self.timeout_seconds = _positive(timeout_seconds, "timeout_seconds")

    def message(self, alert: dict[str, Any]) -> EmailMessage:
        """The email: the summary as subject, the summary and the alert as JSON in the body."""
        from email.message import EmailMessage  # here, like smtplib: together a sixth of `import unified.task_manager`

        message = EmailMessage()
        message["Subject"] = summary(alert)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(summary(alert) + "\n\n" + json.dumps(alert, default=str, indent=2, sort_keys=True))
        return message

    def send(self, alert: dict[str, Any]) -> None:
        """Connect, upgrade to TLS and log in as configured, and send one message."""
        import smtplib
        import ssl

        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=self.cafile))
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(alert))

    def config(self) -> dict[str, Any]:
        """Every constructor argument, under ``{"type": "email"}``."""
        return {"type": self.type, **{name: getattr(self, name) for name in self.FIELDS}}


SECRET_FIELDS = frozenset({"secret", "password", "token"})


def shown_config(config: dict[str, Any]) -> dict[str, Any]:
    """A channel's config as people are shown it: secrets as ``***``, and an address as :func:`shown_url` shows it."""
    shown = {k: ("***" if k in SECRET_FIELDS and v else v) for k, v in config.items()}
    if isinstance(shown.get("url"), str):
        shown["url"] = shown_url(shown["url"])
    return shown


def shown_url(url: str) -> str:
    """An address by its scheme, host and port only, ``/***`` for the rest (a Slack webhook's path is its
    credential, as are a user:password@ part and a ?token= query)."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # stored before addresses were checked
        port = ""
    host = f"{parts.scheme}://{parts.hostname or ''}{port}"
    return host if url.rstrip("/") == host and not parts.username else host + "/***"


class _HiddenUrls(logging.Filter):
    """Shows the channel addresses in httpx's own log lines ("HTTP Request: POST <url> ...", at INFO) as
    :func:`shown_url` does; other addresses pass unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}  # address -> as shown

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and self.urls:
            record.args = tuple(self.urls.get(str(arg), arg) if type(arg).__name__ == "URL" else arg
                                for arg in record.args)  # fmt: skip
        return True


_HIDDEN_URLS = _HiddenUrls()


def hide_url_in_logs(url: str) -> str:
    """Keep ``url`` out of httpx's log lines from now on; returns it as shown."""
    import httpx

    shown = shown_url(url)
    if url not in _HIDDEN_URLS.urls:
        _HIDDEN_URLS.urls[url] = _HIDDEN_URLS.urls[str(httpx.URL(url))] = shown  # as given, and as httpx writes it
        logging.getLogger("httpx").addFilter(_HIDDEN_URLS)  # once: a filter already there is not added again
    return shown


CHANNELS: dict[str, type] = {c.type: c for c in (LogChannel, WebhookChannel, SlackChannel, EmailChannel)}


def channel_from_config(config: dict[str, Any]) -> Channel:
    """The channel a stored config describes (``{"type": "webhook", "url": ...}`` and so on)."""
    options = dict(config)
    kind = options.pop("type", None)
    if kind not in CHANNELS:
        raise ValidationError(f"unknown alert channel type {kind!r}: use one of {sorted(CHANNELS)}")
    params = inspect.signature(CHANNELS[kind]).parameters
    missing = [name for name, p in params.items() if p.default is p.empty and name not in options]
    unknown = sorted(options.keys() - params.keys())
    if missing or unknown:
        wrong = [f"{name!r} is missing" for name in missing] + [f"{name!r} is unknown" for name in unknown]
        wrong_text = ", ".join(wrong)
        raise ValidationError(f"a {kind} channel takes {', '.join(params)}: {wrong_text}")
    return CHANNELS[kind](**options)  # type: ignore[no-any-return]
