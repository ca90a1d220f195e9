"""Group commit of step records: a finished step is durable before its dependants start, but
steps that finish in the same moment share one SQLite transaction."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from engine.state import RunStore, StepRecord


class RecordWriter:
    """Collects step records and writes them in batches.

    `note()` marks a record dirty without waiting (a step started); `commit()` waits until the
    record is in the database (a step finished). Without a store both are no-ops.
    """

    def __init__(self, store: RunStore | None) -> None:
        self.store = store
        self._dirty: dict[str, StepRecord] = {}
        self._done = anyio.Event()
        self._scheduled = False
        self._error: BaseException | None = None
        self._tg: TaskGroup | None = None

    def bind(self, tg: TaskGroup) -> None:
        self._tg = tg

    def note(self, record: StepRecord) -> None:
        if self.store is not None:
            self._dirty[record.step_id] = record

    async def commit(self, record: StepRecord, *, alone: bool = False) -> None:
        """Return once `record` is in the database. `alone`: no other step is running, so
        nothing could join a batch; write at once instead of waiting a loop turn."""
        if self.store is None:
            return
        self._dirty[record.step_id] = record
        if alone and not self._scheduled:
            self.flush()
            if self._error is not None:
                raise self._error
            return
        done = self._done
        if not self._scheduled:
            self._scheduled = True
            if self._tg is not None:
                self._tg.start_soon(self._flush_soon)
            else:
                await self._flush_soon()
        await done.wait()
        if self._error is not None:
            raise self._error

    async def _flush_soon(self) -> None:
        await anyio.sleep(0)  # let every step finishing in this moment join the batch
        with contextlib.suppress(Exception):
            self.flush()

    def flush(self) -> None:
        """Write everything dirty now (also used at the end of a run)."""
        self._scheduled = False
        done, self._done = self._done, anyio.Event()
        batch, self._dirty = self._dirty, {}
        try:
            if batch and self.store is not None:
                self.store.save_steps(list(batch.values()))
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            done.set()
