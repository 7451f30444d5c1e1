"""Throttling of failed authentications per client: a key sent to the API, or typed into the web UI's sign-in form.

A client that failed ``max_failures`` times within ``window_seconds`` is refused with :class:`TooManyAttempts`
(HTTP 429 with ``Retry-After``) until its oldest failure in the window is that old; its keys are not even checked
meanwhile, so a right guess answers the same as a wrong one. Successful authentications are neither counted nor
slowed. A client is its address as the server sees it (``request.client``: the proxy's address behind a proxy,
unless uvicorn is told to trust that proxy's ``X-Forwarded-For``; see docs/deployment.md), an IPv6 address by its
/64 network, which one host usually holds whole. At most ``max_clients`` clients are remembered, those that failed
least recently forgotten first, so an attacker spraying addresses cannot grow the memory without limit.

Not per key: a generated key's id is public, and locking an id would let anyone lock its holder out, while its
256-bit secret cannot be guessed online anyway.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque

from unified.errors import TooManyAttempts
from unified.utils import Clock, iso

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_MAX_CLIENTS = 10_000
IPV6_PREFIX = 64


def client_of(address: str | None) -> str:
    """The throttled unit for a peer ``address``: an IPv4 address itself, an IPv6 address's /64 network (an
    IPv4-mapped one as its IPv4 address), anything else (a test client's name, none) as it is."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    return str(parsed)


class AuthThrottle:
    """Counts failed authentications per client within a sliding window; thread-safe; time from ``clock``."""

    def __init__(
        self,
        clock: Clock,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if max_failures < 0 or window_seconds <= 0 or max_clients < 1:
            raise ValueError("max_failures must be >= 0 (0: no limit), window_seconds > 0 and max_clients >= 1")
        self.clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many clients are remembered."""
        return len(self._failures)

    def retry_after(self, address: str | None) -> float | None:
        """Seconds until ``address``'s client may try again, or None if it may now."""
        if self.max_failures == 0:
            return None
        client = client_of(address)
        now = self.clock.now()
        with self._lock:
            failures = self._failures.get(client)
            if failures is None or len(failures) < self.max_failures:
                return None
            _not_after(failures, now)
            wait = failures[0] + self.window_seconds - now
        return wait if wait > 0 else None

    def check(self, address: str | None, what: str = "failed authentications") -> None:
        """TooManyAttempts (saying when to try again) if ``address``'s client is over its limit."""
        wait = self.retry_after(address)
        if wait is None:
            return
        seconds = max(1, math.ceil(wait))
        at = iso(self.clock.now() + seconds)
        raise TooManyAttempts(
            f"too many {what} from your address ({self.max_failures} within {self.window_seconds:g} s): "
            f"try again in {seconds} s (after {at})",
            retry_after_seconds=seconds,
        )

    def failed(self, address: str | None) -> None:
        """Record one failed authentication of ``address``'s client."""
        if self.max_failures == 0:
            return
        client = client_of(address)
        now = self.clock.now()
        with self._lock:
            failures = self._failures.pop(client, None)
            if failures is None:
                failures = deque(maxlen=self.max_failures)
                while len(self._failures) >= self.max_clients:
                    self._failures.popitem(last=False)
            _not_after(failures, now)
            failures.append(now)
            self._failures[client] = failures  # now the most recent


def _not_after(failures: deque[float], now: float) -> None:
    """Count failures the clock puts after ``now`` as made ``now``: the wall clock was set back (NTP, an operator),
    and a client must not wait out the step on top of the window."""
    if failures and failures[-1] > now:
        for index, at in enumerate(failures):
            if at > now:
                failures[index] = now
