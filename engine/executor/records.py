"""Group commit of step records: a finished step is durable before its dependants start, but
steps that finish in the same moment share one SQLite transaction.

A worker hands a finished step to `submit()` and goes on to the next ready step at once; the
batch is written one event-loop turn later, then `on_durable` runs for each of its steps
(the scheduler releases their dependants). Nobody waits per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from engine.state import RunStore, StepRow
    from engine.state.store import ItemRow


def _unbound(item: Any) -> None:
    raise RuntimeError("RecordWriter.on_durable was not set")


class RecordWriter:
    """Collects step records and writes them in batches. Without a store, records are
    dropped and callbacks run at once."""

    def __init__(self, store: RunStore | None) -> None:
        self.store = store
        self._dirty: dict[str, StepRow] = {}
        #: finished foreach items to write with the next batch (nothing waits for them)
        self._items: list[ItemRow] = []
        #: what `on_durable` is called with once the rows written so far are durable
        self._waiting: list[Any] = []
        self.on_durable: Callable[[Any], None] = _unbound
        self._scheduled = False
        self._running = 0
        self._tg: TaskGroup | None = None
        #: released once per batch to schedule (and at close): one semaphore for the run, not
        #: an Event a batch
        self._kick = anyio.Semaphore(0)
        self._closed = False
        #: set when a write failed; the scheduler stops the run with it
        self.error: BaseException | None = None
        self.on_error: Callable[[BaseException], None] | None = None

    def bind(self, tg: TaskGroup) -> None:
        """Write batches from a task in `tg` until `close()`."""
        self._tg = tg
        if self.store is not None:
            tg.start_soon(self._flusher)

    def close(self) -> None:
        """The run is over or stopping: the batch task leaves (`flush()` still works)."""
        self._closed = True
        self._kick.release()

    def detach(self) -> None:
        """The run is over: drop the callbacks into the scheduler. They make a reference
        cycle (run context -> writer -> scheduler -> run context) that would keep the whole
        run (its workflow, plans and results) alive until the garbage collector's next full
        pass: in a long-lived process (`plait schedule`, a test session) runs piled up."""
        self.on_durable, self.on_error, self._tg = _unbound, None, None

    @property
    def pending(self) -> int:
        """Steps whose `on_durable` has not run yet: waiting to be written, or in the batch
        just written whose calls are running (the run is not over before the last one)."""
        return len(self._waiting) + self._running

    def note(self, row: StepRow) -> None:
        """Write `row` (a `step_row`) with the next batch; nothing waits for it."""
        if self.store is not None:
            self._dirty[row[1]] = row

    def note_item(self, row: ItemRow) -> None:
        """Write a finished foreach item with the next batch, which this asks for: nothing
        waits for it, but a run killed later reruns only the items not written."""
        if self.store is None:
            return
        self._items.append(row)
        if not self._scheduled and self._tg is not None and not self._closed:
            self._scheduled = True
            self._kick.release()

    def submit(self, row: StepRow | None, item: Any, *, alone: bool = False) -> None:
        """Call `on_durable(item)` once `row` is in the database. `alone`: nothing else could
        join a batch now (no other step running or ready), so write at once. Without a store
        there is nothing to write: `row` may be None (not worth encoding) and `on_durable`
        runs at once."""
        if self.store is None or row is None:
            self.on_durable(item)
            return
        self._dirty[row[1]] = row
        self._waiting.append(item)
        if alone and not self._scheduled:
            self.flush()
        elif not self._scheduled and self._tg is not None:
            self._scheduled = True
            self._kick.release()
        elif self._tg is None:
            self.flush()

    async def _flusher(self) -> None:
        # one long-lived task, woken per batch: a task per batch cost ~20 µs to spawn
        while not self._closed:
            await self._kick.acquire()
            if self._scheduled:  # every step that finished in the turn that woke us is in
                self.flush()

    def flush(self) -> None:
        """Write everything dirty now, then call `on_durable` for each step written."""
        self._scheduled = False
        batch, self._dirty = self._dirty, {}
        items, self._items = self._items, []
        written, self._waiting = self._waiting, []
        if (batch or items) and self.store is not None and self.error is None:
            try:
                self.store.save_step_rows(list(batch.values()), items)
            except Exception as exc:
                self.error = exc
                if self.on_error is not None:
                    self.on_error(exc)
                return
        self._running = len(written)
        on_durable = self.on_durable
        try:
            for item in written:
                self._running -= 1
                on_durable(item)
        finally:
            self._running = 0
