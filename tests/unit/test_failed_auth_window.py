"""The throttle of failed authentications: a sliding window per client, bounded memory, time from the clock."""

from __future__ import annotations

import pytest

from unified.auth_throttle import AuthThrottle, client_of
from unified.errors import TooManyAttempts
from unified.utils import FakeClock


def test_a_client_over_its_failures_waits_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock(1000.0)
    throttle = AuthThrottle(clock, max_failures=3, window_seconds=60)
    for _ in range(3):
        throttle.check("10.0.0.1")
        throttle.failed("10.0.0.1")
        clock.advance(10)
    with pytest.raises(TooManyAttempts, match=r"try again in 30 s \(after .*\)") as refused:
        throttle.check("10.0.0.1")
    assert refused.value.retry_after_seconds == 30
    throttle.check("10.0.0.2")  # another client is not held back
    clock.advance(30)
    throttle.check("10.0.0.1")  # the first failure left the window: one more try
    throttle.failed("10.0.0.1")
    with pytest.raises(TooManyAttempts, match="try again in 10 s"):
        throttle.check("10.0.0.1")


def test_memory_stays_bounded_when_addresses_are_sprayed() -> None:
    clock = FakeClock()
    throttle = AuthThrottle(clock, max_failures=2, window_seconds=60, max_clients=100)
    throttle.failed("192.0.2.1")
    throttle.failed("192.0.2.1")
    for number in range(10_000):
        throttle.failed(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
        assert len(throttle) <= 100
    assert throttle.retry_after("192.0.2.1") is None, "the client that failed least recently was forgotten"
    throttle.failed("10.0.39.15")  # one of the newest: its earlier failure was kept
    assert throttle.retry_after("10.0.39.15") == 60


def test_an_ipv6_host_is_throttled_by_its_64_network() -> None:
    assert client_of("2001:db8:1:2:aaaa::1") == client_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_of("2001:db8:1:3::1") != client_of("2001:db8:1:2::1")
    assert client_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_of("testclient") == "testclient" and client_of(None) == "unknown"
    throttle = AuthThrottle(FakeClock(), max_failures=2)
    throttle.failed("2001:db8::1")
    throttle.failed("2001:db8::2")
    with pytest.raises(TooManyAttempts):
        throttle.check("2001:db8::ffff")


def test_zero_failures_allowed_turns_it_off() -> None:
    throttle = AuthThrottle(FakeClock(), max_failures=0)
    for _ in range(100):
        throttle.failed("10.0.0.1")
    throttle.check("10.0.0.1")
    assert len(throttle) == 0


class SettableClock:
    """A wall clock an operator (or NTP) can set back, which FakeClock refuses to do."""

    def __init__(self, now: float) -> None:
        self.at = now

    def now(self) -> float:
        return self.at

    def on_advance(self, callback: object) -> None:
        """Never called: tests set ``at`` directly."""


def test_a_clock_set_back_holds_a_client_for_one_window_at_most() -> None:
    clock = SettableClock(10_000.0)
    throttle = AuthThrottle(clock, max_failures=2, window_seconds=60)  # type: ignore[arg-type]
    throttle.failed("10.0.0.1")
    throttle.failed("10.0.0.1")
    clock.at -= 3600  # the wall clock was an hour fast, and is corrected
    assert throttle.retry_after("10.0.0.1") == 60  # not 3,660 s: the failures count as just now
    clock.at += 60
    throttle.check("10.0.0.1")
    throttle.failed("10.0.0.1")  # failures after the step count as ever
    assert throttle.retry_after("10.0.0.1") is None
    throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 60
