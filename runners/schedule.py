"""The cron scheduler behind `plait schedule`: start workflow runs at their `on.schedule` times.

Cron expressions are read in the schedule's IANA time zone, on local wall-clock time:

* **Spring forward** (a wall-clock time that does not exist that day, e.g. 02:30 in
  Europe/Berlin on the last Sunday of March): the run happens at the same instant the clock
  would have shown had it not jumped (02:30 CET = 03:30 CEST). A daily job is never skipped.
* **Fall back** (a wall-clock hour that happens twice): a job with a fixed hour runs once, at the
  first occurrence. A job whose hour field is ``*`` (or another way to write every hour:
  ``*/1``, ``0-23``) runs in both occurrences, so an hourly or every-15-minutes job keeps
  running on real time.
* Fire times only move forward: an instant is never fired twice.

Missed fires (the daemon was down, the machine slept) are not replayed: a late wake-up starts the
run once (logged with how late it is and how many fires it missed), and the next fire is
computed from the current time. A run still going when its
entry fires again is not overlapped: that fire is skipped and logged.
"""

from __future__ import annotations

import datetime as _dt
import heapq
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import anyio

from engine.errors import Location, SpecError, SpecIssue
from engine.spec.models import WorkflowSpec
from engine.spec.triggers import croniter_class, normalise_cron, schedule_problems, zone

log = logging.getLogger("plait.schedule")

UTC = _dt.UTC
RunFunction = Callable[[Path, dict[str, Any]], Awaitable[Any]]

#: events kept in Scheduler.history: a daemon that runs for months must not keep them all
HISTORY = 1000
#: how far a UTC offset can jump at one transition (DST is 1 h; a few zones moved by 2-3 h)
_MAX_SHIFT = _dt.timedelta(hours=3)
_MAX_CANDIDATES = 5_000
#: a fire this late (after its time) is logged as late, with the fire times it missed
LATE = _dt.timedelta(minutes=1)
_MAX_MISSED_COUNTED = 1_000


# ---------------------------------------------------------------- cron arithmetic (pure)


def _instants(naive: _dt.datetime, tz: ZoneInfo, both_folds: bool) -> list[_dt.datetime]:
    """The real instants (in UTC) a local wall-clock time stands for: see the module doc.

    UTC throughout: Python compares two datetimes of the same tzinfo by wall time, ignoring
    ``fold``, and ``astimezone`` to the same zone does not normalise a time in a gap.
    """
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    exists = first.astimezone(tz).replace(tzinfo=None) == naive
    if not exists:  # in a spring-forward gap: the instant the unmoved clock would show
        return [first]
    return [first, second] if both_folds else [first]


def next_fire(cron: str, timezone: str, after: _dt.datetime) -> _dt.datetime:
    """The first fire time of ``cron`` (read in ``timezone``) strictly after ``after``.

    ``after`` must be timezone-aware. The result is aware, in ``timezone``.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError("next_fire needs a timezone-aware 'after'")
    expr = normalise_cron(cron)
    tz = zone(timezone)
    after_utc = after.astimezone(UTC)
    local_after = after_utc.astimezone(tz).replace(tzinfo=None)
    it = croniter_class()(expr, local_after - _MAX_SHIFT)
    both_folds = it.expanded[1] == ["*"]  # every hour: `*`, and also `*/1` or `0-23`
    best: _dt.datetime | None = None
    best_naive = _dt.datetime.max
    for _ in range(_MAX_CANDIDATES):
        try:
            naive = it.get_next(_dt.datetime)
        except Exception as exc:  # CroniterBadDateError: no later date matches
            if best is not None:
                return best.astimezone(tz)
            raise ValueError(f"cron expression {cron!r} never fires after {after}") from exc
        if best is not None and naive > best_naive + _MAX_SHIFT:
            return best.astimezone(tz)
        for instant in _instants(naive, tz, both_folds):
            if instant > after_utc and (best is None or instant < best):
                best, best_naive = instant, naive
    if best is None:  # pragma: no cover - a valid expression always fires within the window
        raise ValueError(f"cron expression {cron!r} never fires")
    return best.astimezone(tz)


def count_fires(cron: str, timezone: str, after: _dt.datetime, until: _dt.datetime,
                most: int) -> int:
    """How many fire times fall in (after, until], counting at most ``most + 1``: one pass
    over the candidates (calling next_fire for each would redo its look-back every time)."""
    expr, tz = normalise_cron(cron), zone(timezone)
    after_utc, until_utc = after.astimezone(UTC), until.astimezone(UTC)
    local_until = until_utc.astimezone(tz).replace(tzinfo=None)
    it = croniter_class()(expr, after_utc.astimezone(tz).replace(tzinfo=None) - _MAX_SHIFT)
    both_folds = it.expanded[1] == ["*"]
    found: set[_dt.datetime] = set()
    while len(found) <= most:
        try:
            naive = it.get_next(_dt.datetime)
        except Exception:  # CroniterBadDateError: no later date matches
            break
        if naive > local_until + _MAX_SHIFT:
            break
        found.update(i for i in _instants(naive, tz, both_folds) if after_utc < i <= until_utc)
    return min(len(found), most + 1)


# ---------------------------------------------------------------- entries


@dataclass(frozen=True)
class ScheduleEntry:
    """One ``on.schedule`` item of one workflow file."""

    workflow: Path
    index: int
    cron: str
    timezone: str = "UTC"
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.workflow}: on.schedule[{self.index}] ({self.cron!r} {self.timezone})"

    def next_fire(self, after: _dt.datetime) -> _dt.datetime:
        return next_fire(self.cron, self.timezone, after)


def entries_from_spec(path: Path, spec: WorkflowSpec) -> list[ScheduleEntry]:
    """The schedule entries of a workflow, each checked; every problem is reported at once."""
    schedules = spec.on.schedule if spec.on is not None else []
    problems = schedule_problems([s.model_dump() for s in schedules],
                                 {k: v.model_dump() for k, v in spec.inputs.items()})
    if problems:
        raise SpecError([SpecIssue(p.message, Location(str(path)), p.path, hint=p.hint,
                                   code="schedule") for p in problems])
    return [ScheduleEntry(path, index, item.cron, item.timezone, dict(item.inputs))
            for index, item in enumerate(schedules)]


# ---------------------------------------------------------------- clocks


class Clock(Protocol):
    def now(self) -> _dt.datetime:
        """The current time, timezone-aware."""
        ...

    async def sleep_until(self, when: _dt.datetime) -> None:
        """Return once ``now() >= when``."""
        ...


class SystemClock:
    """Wall-clock time. Sleeps in slices so a clock change or a suspend is noticed."""

    slice_seconds = 30.0

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(UTC)

    async def sleep_until(self, when: _dt.datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await anyio.sleep(min(remaining, self.slice_seconds))


# ---------------------------------------------------------------- the scheduler


Outcome = Literal["started", "skipped", "succeeded", "failed"]


@dataclass(frozen=True)
class FireEvent:
    """Something the scheduler did, in order: kept in ``Scheduler.history``."""

    entry: ScheduleEntry
    fire_time: _dt.datetime
    outcome: Outcome
    detail: str = ""


class Scheduler:
    """Sleeps until the next fire time of any entry and starts that entry's run.

    ``run(workflow_path, inputs)`` starts one run and returns when it has finished. Runs of
    different entries may overlap; two runs of the same entry never do. ``max_runs`` (runs
    started) and ``until`` (no fire after this time) bound :meth:`serve`; without them it
    runs until cancelled, and cancelling it cancels the runs in flight.
    """

    def __init__(self, entries: Sequence[ScheduleEntry], run: RunFunction,
                 clock: Clock | None = None, *, max_runs: int | None = None,
                 until: _dt.datetime | None = None) -> None:
        self.entries = list(entries)
        self._run = run
        self.clock: Clock = clock or SystemClock()
        self.max_runs = max_runs
        self.until = until
        #: the last HISTORY events, oldest first
        self.history: deque[FireEvent] = deque(maxlen=HISTORY)
        #: runs that failed, all of them (history may have forgotten some)
        self.failed = 0
        self._running: set[int] = set()
        self._started = 0

    @property
    def started(self) -> int:
        """How many runs have been started."""
        return self._started

    def _record(self, entry: ScheduleEntry, when: _dt.datetime, outcome: Outcome,
                detail: str = "") -> None:
        self.history.append(FireEvent(entry, when, outcome, detail))

    def _bounded(self, when: _dt.datetime) -> bool:
        if self.max_runs is not None and self._started >= self.max_runs:
            return True
        return self.until is not None and when > self.until

    async def serve(self) -> None:
        """Run the schedule until a bound is reached (then wait for runs in flight)."""
        now = self.clock.now()
        queue = [(e.next_fire(now).astimezone(UTC), i) for i, e in enumerate(self.entries)]
        heapq.heapify(queue)
        for entry, (when, _) in zip(self.entries, sorted(queue, key=lambda q: q[1]),
                                    strict=True):
            log.info("%s: next run at %s", entry.label, when.astimezone(zone(entry.timezone)))
        async with anyio.create_task_group() as tg:
            while queue:
                when, index = queue[0]
                if self._bounded(when):
                    break
                await self.clock.sleep_until(when)
                late = self._lateness(index, when)
                heapq.heapreplace(queue, (self._after(index, when), index))
                self._fire(tg, index, when, late)

    def _after(self, index: int, fired: _dt.datetime) -> _dt.datetime:
        """The entry's next fire after this one, never in the past (no catch-up burst)."""
        entry = self.entries[index]
        return entry.next_fire(max(fired, self.clock.now())).astimezone(UTC)

    def _lateness(self, index: int, when: _dt.datetime) -> str:
        """'' when the fire is on time; else how late it is and how many later fire times
        passed meanwhile (the machine slept, the clock jumped): they are not replayed."""
        late = self.clock.now() - when
        if late < LATE:
            return ""
        entry = self.entries[index]
        missed = count_fires(entry.cron, entry.timezone, when, self.clock.now(),
                             _MAX_MISSED_COUNTED)
        count = f"over {_MAX_MISSED_COUNTED:,}" if missed > _MAX_MISSED_COUNTED else missed
        return (f", late by {_dt.timedelta(seconds=int(late.total_seconds()))} (the machine "
                f"slept or the clock jumped); {count} later fire time(s) missed meanwhile, "
                "not replayed")

    def _fire(self, tg: anyio.abc.TaskGroup, index: int, when: _dt.datetime,
              late: str = "") -> None:
        entry = self.entries[index]
        local = when.astimezone(zone(entry.timezone))
        if index in self._running:
            log.warning("%s: skipped the run due at %s%s: the previous run is still going",
                        entry.label, local, late)
            self._record(entry, local, "skipped", "previous run still going")
            return
        self._running.add(index)
        self._started += 1
        log.info("%s: starting run due at %s%s", entry.label, local, late)
        self._record(entry, local, "started", late.lstrip(", "))
        tg.start_soon(self._run_one, index, local)

    async def _run_one(self, index: int, local: _dt.datetime) -> None:
        entry = self.entries[index]
        try:
            await self._run(entry.workflow, dict(entry.inputs))
        except Exception as exc:  # one failed run must not stop the schedule
            log.error("%s: the run due at %s failed: %s", entry.label, local, exc)
            self.failed += 1
            self._record(entry, local, "failed", f"{type(exc).__name__}: {exc}")
        else:
            self._record(entry, local, "succeeded")
        finally:
            self._running.discard(index)
