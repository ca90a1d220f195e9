"""The Scheduler on a virtual clock: ordering, bounds, no overlap, failures, cancellation."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from runners.schedule import ScheduleEntry, Scheduler, SystemClock
from tests.schedule.schedule_clock import VirtualClock

pytestmark = pytest.mark.anyio
UTC = dt.UTC
START = dt.datetime(2026, 11, 23, 6, 59, 30, tzinfo=UTC)


async def serve(scheduler: Scheduler, clock: VirtualClock) -> None:
    with anyio.fail_after(5):  # real seconds: everything here is virtual time
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.drive)
            await scheduler.serve()
            tg.cancel_scope.cancel()


def recorder(clock: VirtualClock, calls: list[tuple[str, dict[str, Any], dt.datetime]]
             ) -> Callable[[Path, dict[str, Any]], Awaitable[None]]:
    async def run(path: Path, inputs: dict[str, Any]) -> None:
        calls.append((str(path), inputs, clock.now()))
        await anyio.lowlevel.checkpoint()
    return run


async def test_runs_start_at_fire_times_in_order_with_inputs() -> None:
    clock = VirtualClock(START)
    calls: list[tuple[str, dict[str, Any], dt.datetime]] = []
    entries = [ScheduleEntry(Path("a.yaml"), 0, "*/20 * * * *", "UTC", {"who": "a"}),
               ScheduleEntry(Path("b.yaml"), 0, "30 8 * * *", "Europe/Berlin", {"who": "b"})]
    scheduler = Scheduler(entries, recorder(clock, calls), clock, max_runs=5)
    await serve(scheduler, clock)
    assert [(p, i["who"], t.strftime("%H:%M")) for p, i, t in calls] == [
        ("a.yaml", "a", "07:00"), ("a.yaml", "a", "07:20"), ("b.yaml", "b", "07:30"),
        ("a.yaml", "a", "07:40"), ("a.yaml", "a", "08:00")]
    assert [e.outcome for e in scheduler.history].count("succeeded") == 5
    assert all(e.outcome in ("started", "succeeded") for e in scheduler.history)


async def test_until_bounds_the_schedule() -> None:
    clock = VirtualClock(START)
    calls: list[tuple[str, dict[str, Any], dt.datetime]] = []
    entry = ScheduleEntry(Path("a.yaml"), 0, "0 * * * *")
    until = dt.datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    await serve(Scheduler([entry], recorder(clock, calls), clock, until=until), clock)
    assert [t.hour for _, _, t in calls] == [7, 8, 9, 10]


async def test_a_run_still_going_is_not_overlapped(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(START)
    starts: list[dt.datetime] = []

    async def slow(path: Path, inputs: dict[str, Any]) -> None:
        starts.append(clock.now())
        # the first run lasts 2.5 minutes of virtual time, the others finish at once
        if len(starts) == 1:
            await clock.sleep_until(clock.now() + dt.timedelta(minutes=2, seconds=30))

    entries = [ScheduleEntry(Path("slow.yaml"), 0, "* * * * *"),
               ScheduleEntry(Path("other.yaml"), 0, "* * * * *")]
    scheduler = Scheduler(entries, slow, clock,
                          until=dt.datetime(2026, 11, 23, 7, 4, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="plait.schedule"):
        await serve(scheduler, clock)
    slow_events = [(e.fire_time.strftime("%H:%M"), e.outcome) for e in scheduler.history
                   if e.entry is entries[0]]
    assert slow_events == [
        ("07:00", "started"), ("07:01", "skipped"), ("07:02", "skipped"),
        ("07:00", "succeeded"), ("07:03", "started"), ("07:03", "succeeded"),
        ("07:04", "started"), ("07:04", "succeeded")]
    other = [e.fire_time.minute for e in scheduler.history
             if e.entry is entries[1] and e.outcome == "started"]
    assert other == [0, 1, 2, 3, 4]  # the other entry is not held back
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert "slow.yaml: on.schedule[0]" in skipped[0] and "still going" in skipped[0]


async def test_a_failing_run_does_not_stop_the_schedule(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(START)
    count = 0

    async def flaky(path: Path, inputs: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        if count == 1:
            raise RuntimeError("provider down")

    scheduler = Scheduler([ScheduleEntry(Path("f.yaml"), 2, "*/5 * * * *")], flaky, clock,
                          max_runs=3)
    with caplog.at_level(logging.ERROR, logger="plait.schedule"):
        await serve(scheduler, clock)
    assert [e.outcome for e in scheduler.history if e.outcome != "started"] == [
        "failed", "succeeded", "succeeded"]
    assert scheduler.history[1].detail == "RuntimeError: provider down"
    assert any("on.schedule[2]" in r.getMessage() and "provider down" in r.getMessage()
               for r in caplog.records)


async def test_late_wake_fires_once_not_a_burst() -> None:
    clock = VirtualClock(START)
    calls: list[tuple[str, dict[str, Any], dt.datetime]] = []
    clock.jump_on_sleep = dt.timedelta(hours=3)  # the machine slept through 180 fires
    scheduler = Scheduler([ScheduleEntry(Path("a.yaml"), 0, "* * * * *")],
                          recorder(clock, calls), clock, max_runs=2)
    await serve(scheduler, clock)
    assert [t.strftime("%H:%M:%S") for _, _, t in calls] == ["09:59:30", "10:00:00"]


async def test_a_late_wake_says_how_late_and_how_many_fires_it_missed(
        caplog: pytest.LogCaptureFixture) -> None:
    """A machine that slept through 179 fires started the run once, logged exactly like an
    on-time run: nothing said it was hours late or that fires were skipped."""
    clock = VirtualClock(START)
    calls: list[tuple[str, dict[str, Any], dt.datetime]] = []
    clock.jump_on_sleep = dt.timedelta(hours=3)
    scheduler = Scheduler([ScheduleEntry(Path("a.yaml"), 0, "* * * * *")],
                          recorder(clock, calls), clock, max_runs=2)
    with caplog.at_level(logging.INFO, logger="plait.schedule"):
        await serve(scheduler, clock)
    starts = [r.getMessage() for r in caplog.records if "starting run" in r.getMessage()]
    assert len(starts) == 2
    assert starts[0].endswith("starting run due at 2026-11-23 07:00:00+00:00, late by "
                              "2:59:30 (the machine slept or the clock jumped); 179 later "
                              "fire time(s) missed meanwhile, not replayed")
    assert starts[1].endswith("starting run due at 2026-11-23 10:00:00+00:00")
    started = [e for e in scheduler.history if e.outcome == "started"]
    assert started[0].detail.startswith("late by 2:59:30") and started[1].detail == ""


async def test_cancel_stops_cleanly_and_cancels_the_run_in_flight() -> None:
    clock = VirtualClock(START)
    seen: list[str] = []

    async def forever(path: Path, inputs: dict[str, Any]) -> None:
        seen.append("started")
        try:
            await anyio.sleep_forever()
        finally:
            seen.append("cancelled")

    scheduler = Scheduler([ScheduleEntry(Path("a.yaml"), 0, "* * * * *")], forever, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(clock.drive)
            tg.start_soon(scheduler.serve)
            await clock.sleep_until(dt.datetime(2026, 11, 23, 7, 2, 30, tzinfo=UTC))
            tg.cancel_scope.cancel()
    assert seen == ["started", "cancelled"]
    assert [e.outcome for e in scheduler.history] == ["started", "skipped", "skipped"]


async def test_no_entries_returns_at_once() -> None:
    async def never(path: Path, inputs: dict[str, Any]) -> None:
        raise AssertionError("no run expected")

    with anyio.fail_after(1):
        await Scheduler([], never).serve()


async def test_system_clock_sleeps_until_the_time() -> None:
    clock = SystemClock()
    target = clock.now() + dt.timedelta(milliseconds=30)
    with anyio.fail_after(2):
        await clock.sleep_until(target)
    assert clock.now() >= target
    assert clock.now().tzinfo is not None


async def test_a_long_lived_scheduler_keeps_a_bounded_history(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon fires for months: it keeps its last events, and counts every failure."""
    import runners.schedule

    monkeypatch.setattr(runners.schedule, "HISTORY", 10)
    clock = VirtualClock(START)

    async def fails_every_other(path: Path, inputs: dict[str, Any]) -> None:
        await anyio.lowlevel.checkpoint()
        if clock.now().minute % 2:
            raise RuntimeError("odd minute")

    entries = [ScheduleEntry(Path("a.yaml"), 0, "* * * * *", "UTC")]
    scheduler = Scheduler(entries, fails_every_other, clock, max_runs=40)
    await serve(scheduler, clock)
    assert scheduler.started == 40
    assert scheduler.failed == 20
    assert len(scheduler.history) == 10  # started + outcome of the last 5 runs
    assert scheduler.history[-1].fire_time.strftime("%H:%M") == "07:39"
