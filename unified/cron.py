"""Fire times of a schedule: a cron expression (evaluated by cronsim) or a fixed interval, in an IANA time zone.

Everything here is a pure function of the times it is given; the scheduler passes ``now`` in. Times are epoch
seconds (UTC) as floats; the time zone only decides which instants a cron expression names. Daylight saving
follows cronsim, which follows Debian's cron: a fixed-time job whose local time does not exist on the
spring-forward day runs at the first minute after the gap (02:30 in Europe/Berlin runs at 03:00 CEST), and one
whose local time happens twice on the fall-back day runs once, at the first occurrence; jobs with ``*`` in
the hour field run in both copies of the repeated hour.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from unified.errors import ValidationError

# the @-macros of Vixie/Debian cron, expanded to the five fields they stand for
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_HELP = (
    "write five fields 'minute hour day-of-month month day-of-week' (ranges, steps, lists and names such as "
    "JAN or MON work), or one of " + ", ".join(ALIASES)
)
_EPOCH_DT = datetime(2026, 1, 1)
LATEST_EPOCH = datetime(9000, 1, 1, tzinfo=UTC).timestamp()  # the last start, end or backfill bound taken
MIN_INTERVAL_SECONDS = 0.01  # shorter ones stop advancing in floating point at today's epoch seconds
MAX_INTERVAL_SECONDS = 31_536_000


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone called ``name``; a ValidationError naming the ``timezone`` field if there is none."""
    try:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, such as 'Europe'
        raise ValidationError(
            f"timezone {name!r} is not an IANA time zone name: use names such as 'UTC', 'Europe/Berlin' "
            "or 'America/New_York'"
        ) from None


def check_cron(expression: str) -> str:
    """``expression`` with @-macros expanded, after cronsim accepted it; a ValidationError naming ``cron`` if not."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError(f"cron expression {expression!r} is empty: {CRON_HELP}")
    text = " ".join(expression.split())
    text = ALIASES.get(text.lower(), text)
    if len(text.split()) != 5:
        raise ValidationError(f"cron expression {expression!r} has {len(text.split())} fields, not 5: {CRON_HELP}")
    try:
        CronSim(text, _EPOCH_DT.replace(tzinfo=ZoneInfo("UTC")))
    except CronSimError as exc:
        raise ValidationError(f"cron expression {expression!r} is invalid ({exc}): {CRON_HELP}") from None
    return text


def to_epoch(value: datetime | float | int | str | None, tz: tzinfo, what: str) -> float | None:
    """Epoch seconds of a datetime (naive ones are read in ``tz``), a number, or ISO-8601 text; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a datetime, epoch seconds or ISO-8601 text, not {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(f"{what} must be a finite number of epoch seconds, not {value!r}")
        return _within_range(float(value), what)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(f"{what} {value!r} is not ISO-8601 text like '2026-03-29T02:30:00+02:00'") from None
    if not isinstance(value, datetime):
        raise ValidationError(f"{what} must be a datetime, epoch seconds or ISO-8601 text, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    try:
        epoch = value.timestamp()
    except (OverflowError, ValueError, OSError):
        epoch = math.inf
    return _within_range(epoch, what)


def check_interval(interval: object) -> None:
    """A ValidationError unless ``interval`` is a number of seconds a new schedule may fire at: from
    MIN_INTERVAL_SECONDS to a year."""
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not (MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS)
    ):
        raise ValidationError(
            f"interval_seconds must be from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS:,} (a year), "
            f"not {interval!r}"
        )


def _within_range(epoch: float, what: str) -> float:
    if not LATEST_EPOCH >= epoch >= 0:  # fire times past it would overflow the date arithmetic of later fires
        raise ValidationError(f"{what} must fall between 1970 and the year 9000")
    return epoch


@dataclass(frozen=True)
class Timing:
    """When a schedule fires: a cron expression or an interval, limited to ``[start_at, end_at]``.

    Interval fire times are ``anchor + k * interval_seconds`` for k = 0, 1, ...; ``anchor`` is a fire time
    (the schedule's start, or one interval after it was created).
    """

    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str = "UTC"
    start_at: float | None = None
    end_at: float | None = None
    anchor: float | None = None
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValidationError("give a schedule exactly one of cron= (an expression) or interval_seconds=")
        object.__setattr__(self, "zone", load_zone(self.timezone))
        if self.cron is not None:
            object.__setattr__(self, "cron", check_cron(self.cron))
        else:
            interval = self.interval_seconds
            # a new schedule takes MIN_INTERVAL_SECONDS to a year (check_interval, in Scheduler._add); one an earlier
            # release stored is taken as long as its fire times advance, else check_interval says what is wanted
            if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval >= 1e-6:
                check_interval(interval)
            if not isinstance(self.anchor, int | float):
                raise ValidationError("an interval schedule needs an anchor time (its start)")
        if self.start_at is not None and self.end_at is not None and self.end_at < self.start_at:
            raise ValidationError("end_at is before start_at: a schedule must end after it starts")

    # -- fire times --------------------------------------------------------------------------------------
    def _unbounded_from(self, t: float) -> Iterator[float]:
        """Fire times at or after ``t``, ignoring start and end."""
        if self.cron is not None:
            # cronsim yields times strictly after its start, at minute precision, by wall clock: from the second copy
            # of a repeated hour (fall back) it also yields that hour's first copy, earlier than ``t``: not ours
            for moment in CronSim(self.cron, datetime.fromtimestamp(t - 0.001, self.zone)):
                if (fire := moment.timestamp()) >= t:
                    yield fire
            return
        interval, anchor = float(self.interval_seconds), float(self.anchor)  # type: ignore[arg-type]
        k = max(0, math.ceil((t - anchor) / interval - 1e-9))
        while True:
            yield anchor + k * interval
            k += 1

    def times_from(self, t: float, bounded: bool = True) -> Iterator[float]:
        """Fire times at or after ``t``, oldest first; within start_at and end_at when ``bounded``."""
        if bounded and self.start_at is not None:
            t = max(t, self.start_at)
        for fire in self._unbounded_from(t):
            if bounded and self.end_at is not None and fire > self.end_at:
                return
            yield fire

    def next_after(self, t: float) -> float | None:
        """The first fire time strictly after ``t``, or None once the schedule has ended."""
        for fire in self.times_from(t):
            if fire > t:
                return fire
        return None

    def first_at_or_after(self, t: float) -> float | None:
        """The first fire time at or after ``t``, or None once the schedule has ended."""
        return next(self.times_from(t), None)

    def between(self, start: float, end: float, bounded: bool = True, limit: int | None = None) -> list[float]:
        """Fire times in ``[start, end]``, oldest first (at most ``limit`` of them)."""
        found: list[float] = []
        for fire in self.times_from(start, bounded):
            if fire > end or (limit is not None and len(found) >= limit):
                break
            found.append(fire)
        return found

    def latest_between(self, start: float, end: float) -> tuple[float | None, int]:
        """The latest fire time in ``[start, end]`` and how many came before it there (counted up to 100,000)."""
        cap = 100_000
        fires = self.between(start, end, limit=cap)
        if len(fires) < cap:
            return (fires[-1], len(fires) - 1) if fires else (None, 0)
        window = 3600.0  # a very long gap: look back from the end in growing windows
        while True:
            recent = self.between(max(start, end - window), end)
            if recent:
                return recent[-1], cap
            window *= 8

    def local(self, t: float) -> datetime:
        """``t`` as an aware datetime in the schedule's time zone."""
        return datetime.fromtimestamp(t, self.zone)
