"""Group commit of step records for the executor: durable before dependants start, but cheap.

A finished step calls ``await writer.save(record)``; it returns once the record is committed.
Every step that finishes while a commit is being prepared joins the same transaction, so a burst
of N finished steps costs one commit, not N (see bench/results-state.md for the numbers).

The commit runs inline on the event loop by default: for the batch sizes a run produces it is
cheaper (tens of µs) than a hop to a worker thread. ``in_thread=True`` moves it to a worker
thread for slow disks or ``PLAIT_STATE_SYNC=full``.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread

from engine.errors import StateError
from engine.state.records import StepRecord
from engine.state.store import RunStore


class _Batch:
    __slots__ = ("done", "error", "records")

    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self.done = anyio.Event()
        self.error: BaseException | None = None


class StepWriter:
    """Batches step records into group commits. Use as ``async with StepWriter(store) as w``."""

    def __init__(self, store: RunStore, *, in_thread: bool = False,
                 max_batch: int = 1000) -> None:
        self._store = store
        self._in_thread = in_thread
        self._max_batch = max_batch
        self._batch = _Batch()
        self._wake = anyio.Event()
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = False
        #: number of commits made and records written (for tests and benchmarks)
        self.commits = 0
        self.records = 0

    async def __aenter__(self) -> StepWriter:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._flusher)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> bool | None:
        self._closed = True
        self._wake.set()
        assert self._tg is not None
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._flush_leftovers()

    def _flush_leftovers(self) -> None:
        """Commit what a cancelled flusher left behind (Ctrl-C must leave a resumable run)."""
        batch, self._batch = self._batch, _Batch()
        if not batch.records:
            return
        try:
            self._store.save_steps(batch.records)
            self.commits += 1
            self.records += len(batch.records)
        except Exception as exc:
            batch.error = exc
        finally:
            batch.done.set()

    async def save(self, record: StepRecord) -> None:
        """Queue a record and return once it is committed. Raises StateError if the commit
        failed."""
        await self.save_many([record])

    async def save_many(self, records: Sequence[StepRecord]) -> None:
        if self._closed or self._tg is None:
            raise StateError("the step writer is not running (use it in `async with`)")
        batch = self._batch
        batch.records.extend(records)
        self._wake.set()
        await batch.done.wait()
        if batch.error is not None:
            raise StateError(f"step records were not saved: {batch.error}") from batch.error

    async def _flusher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            # let every task that is ready to finish a step add its record first
            await anyio.lowlevel.cancel_shielded_checkpoint()
            batch, self._batch = self._batch, _Batch()
            if batch.records:
                await self._commit(batch)
            if self._closed and not self._batch.records:
                return

    async def _commit(self, batch: _Batch) -> None:
        try:
            for start in range(0, len(batch.records), self._max_batch):
                chunk = batch.records[start:start + self._max_batch]
                if self._in_thread:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._store.save_steps, chunk)
                else:
                    self._store.save_steps(chunk)
                self.commits += 1
                self.records += len(chunk)
        except Exception as exc:  # handed to every waiter of this batch
            batch.error = exc
        finally:
            batch.done.set()
