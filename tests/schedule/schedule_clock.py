"""A virtual clock for scheduler tests (imported by the tests; not a conftest)."""

from __future__ import annotations

import datetime as dt

import anyio


class VirtualClock:
    """Virtual time that jumps forward whenever every task is blocked (like trio's autojump).

    Any number of tasks may sleep on it; nothing really waits.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._now = start
        self._sleepers: list[tuple[dt.datetime, anyio.Event]] = []
        self.jump_on_sleep: dt.timedelta | None = None  # simulate a suspend: time leaps

    def now(self) -> dt.datetime:
        return self._now

    async def sleep_until(self, when: dt.datetime) -> None:
        if when <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        self._sleepers.append((when, event))
        await event.wait()

    async def drive(self) -> None:
        """Run beside the code under test; cancel it when done."""
        while True:
            await anyio.wait_all_tasks_blocked()
            if not self._sleepers:
                await anyio.sleep(0.001)
                continue
            target = min(when for when, _ in self._sleepers)
            if self.jump_on_sleep is not None:
                target = max(target, self._now + self.jump_on_sleep)
                self.jump_on_sleep = None
            self._now = max(self._now, target)
            due = [s for s in self._sleepers if s[0] <= self._now]
            self._sleepers = [s for s in self._sleepers if s[0] > self._now]
            for _, event in due:
                event.set()
