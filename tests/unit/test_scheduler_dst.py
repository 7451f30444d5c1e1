"""Daylight-saving days in two time zones, fired by the scheduler hour by hour on a fake clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers.tasks import add
from unified.task_manager import TaskManager
from unified.utils import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def fired_local(cron: str, tz: ZoneInfo, first_day: datetime, days: int, step_seconds: float = 900) -> list[str]:
    """Fire ``cron`` in ``tz`` from local midnight of ``first_day`` to that of ``days`` later; the local times."""
    start = first_day.replace(tzinfo=tz)
    end = (first_day + timedelta(days=days)).replace(tzinfo=tz)  # local midnight: 23, 24 or 25 hours a day
    clock = FakeClock(start)
    with TaskManager(store="memory://", max_workers=0, clock=clock) as tm:
        sid = tm.schedule_task(add, args=(1, 1), cron=cron, timezone=str(tz), max_active_runs=1000)
        while clock.now() < end.timestamp():
            clock.advance(min(step_seconds, end.timestamp() - clock.now()))
        fires = sorted(
            datetime.fromisoformat(t["metadata"]["fire_time"].replace("Z", "+00:00"))
            for t in tm.list_tasks(limit=10_000, schedule_id=sid)
        )
    return [f.astimezone(tz).strftime("%m-%d %H:%M%z") for f in fires]


@pytest.mark.parametrize(
    ("tz", "first_day", "expected"),
    [
        # spring forward 2026-03-29: 02:30 does not exist in Berlin; the job runs at 03:00 CEST, once
        (BERLIN, datetime(2026, 3, 28), ["03-28 02:30+0100", "03-29 03:00+0200", "03-30 02:30+0200"]),
        # fall back 2026-10-25: 02:30 happens twice in Berlin; the job runs once, at the first (CEST)
        (BERLIN, datetime(2026, 10, 24), ["10-24 02:30+0200", "10-25 02:30+0200", "10-26 02:30+0100"]),
        # spring forward 2026-03-08 in New York: 02:30 does not exist; 03:00 EDT, once
        (NEW_YORK, datetime(2026, 3, 7), ["03-07 02:30-0500", "03-08 03:00-0400", "03-09 02:30-0400"]),
    ],
)
def test_a_daily_0230_job_runs_once_on_each_dst_day(tz: ZoneInfo, first_day: datetime, expected: list[str]) -> None:
    assert fired_local("30 2 * * *", tz, first_day, 3) == expected


def test_new_york_fall_back_runs_a_0130_job_once() -> None:
    # 2026-11-01: 01:30 happens at -0400 and again at -0500; once, at the first
    fired = fired_local("30 1 * * *", NEW_YORK, datetime(2026, 10, 31), 3)
    assert fired == ["10-31 01:30-0400", "11-01 01:30-0400", "11-02 01:30-0500"]


def test_jobs_with_a_wildcard_hour_run_in_both_copies_of_the_repeated_hour() -> None:
    fired = fired_local("*/30 * * * *", BERLIN, datetime(2026, 10, 25), 1)
    assert len(fired) == 50, "a 25-hour day has 50 half hours"
    assert fired[3:7] == ["10-25 02:00+0200", "10-25 02:30+0200", "10-25 02:00+0100", "10-25 02:30+0100"]


def test_the_spring_forward_day_has_23_hourly_fires() -> None:
    fired = fired_local("0 * * * *", NEW_YORK, datetime(2026, 3, 8), 1, step_seconds=3600)
    assert len(fired) == 23 and "03-08 02:00" not in " ".join(fired)


def test_next_fire_times_are_aware_datetimes_in_the_schedule_zone() -> None:
    clock = FakeClock(datetime(2026, 3, 27, 12, tzinfo=BERLIN))
    with TaskManager(store="memory://", max_workers=0, clock=clock) as tm:
        sid = tm.schedule_task(add, args=(1, 1), cron="30 2 * * *", timezone="Europe/Berlin")
        times = tm.next_fire_times(sid, 3)
    assert [t.isoformat() for t in times] == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert all(t.tzinfo == BERLIN for t in times)


def test_a_range_that_starts_in_the_repeated_hour_holds_no_earlier_fire_time() -> None:
    # Berlin 2026-10-25: 02:30 CEST is 00:30Z, the repeated hour 02:00-03:00 CET is 01:00Z-02:00Z; from 02:10 CET the
    # daily 02:30 already happened (at 02:30 CEST), so neither a backfill nor a start_at there brings it back
    clock = FakeClock("2026-10-26T12:00:00Z")
    with TaskManager(store="memory://", max_workers=0, clock=clock) as tm:
        daily = tm.schedule_task(add, args=(1, 1), cron="30 2 * * *", timezone="Europe/Berlin", max_active_runs=9)
        assert tm.backfill(daily, "2026-10-25T01:10:00Z", "2026-10-25T23:00:00Z") == []
        late = tm.schedule_task(add, args=(1, 1), cron="30 2 * * *", timezone="Europe/Berlin",
                                start_at="2026-10-25T02:10:00+01:00", catchup=True)  # fmt: skip
        assert tm.get_schedule(late)["next_fire_time"] == "2026-10-26T01:30:00Z", "not before its start_at"
