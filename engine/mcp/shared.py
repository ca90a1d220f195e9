"""MCP runtimes kept open across the runs of one process (`plait batch`, `plait mcp serve`):
a server is started once, not once per run.

A runtime owns task groups, which must be entered and left by the same task; a run's task does
not live long enough. So each runtime is held by a task of the pool's own, started when a run
first asks for it, that opens the runtime and closes it when told to or when the pool closes.
A run gives its runtime back when it ends (`release`); of the runtimes no run is using, only
the `max_idle` used last stay open, so runs whose servers' settings differ (`args:
["${{ inputs.folder }}"]`) do not each leave a server behind for the life of the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from engine.mcp.runtime import MCPRuntime

#: runtimes that no run is using kept open, the ones used last
MAX_IDLE = 4


class SharedRuntimes:
    """`async with SharedRuntimes() as pool:` then `await pool.get(key, make)` from any run
    and `pool.release(key)` when it ends: the runtime made for `key` the first time, open
    while runs use it, and after that while it is one of the `max_idle` idle ones used last
    (at most until the pool closes)."""

    def __init__(self, *, max_idle: int = MAX_IDLE) -> None:
        self._runtimes: dict[str, MCPRuntime] = {}  # in the order they were last used
        self._close: dict[str, anyio.Event] = {}
        self._users: dict[str, int] = {}
        self._errors: dict[str, BaseException] = {}
        self._max_idle = max_idle
        self._lock = anyio.Lock()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> SharedRuntimes:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._tg is not None
        for close in self._close.values():
            close.set()
        self._runtimes.clear()
        await self._tg.__aexit__(None, None, None)

    async def get(self, key: str, make: Callable[[], MCPRuntime]) -> MCPRuntime:
        async with self._lock:
            if key not in self._runtimes and key not in self._errors:
                assert self._tg is not None, "enter the pool first"
                await self._tg.start(self._hold, key, make)
            if key in self._errors:
                raise self._errors.pop(key)
            runtime = self._runtimes.pop(key)
            self._runtimes[key] = runtime  # the one used last
            self._users[key] = self._users.get(key, 0) + 1
            return runtime

    def release(self, key: str) -> None:
        """A run that had `key`'s runtime from `get` has ended: close the idle runtimes
        beyond the `max_idle` used last."""
        self._users[key] = self._users.get(key, 1) - 1
        idle = [k for k in self._runtimes if not self._users.get(k)]
        for stale in idle[:max(len(idle) - self._max_idle, 0)]:
            del self._runtimes[stale]
            self._users.pop(stale, None)
            self._close.pop(stale).set()

    async def _hold(self, key: str, make: Callable[[], MCPRuntime], *,
                    task_status: anyio.abc.TaskStatus[None]) -> None:
        """Open `key`'s runtime, and keep it open until it is told to close."""
        close = anyio.Event()
        opened = False
        try:
            async with make() as runtime:
                opened = True
                self._runtimes[key] = runtime
                self._close[key] = close
                task_status.started()
                await close.wait()
        except Exception as exc:
            if opened:  # it failed to close: as it would have in a run of its own
                raise
            self._errors[key] = exc
            task_status.started()

    def stats(self) -> dict[str, Any]:
        return {key: runtime.stats() for key, runtime in self._runtimes.items()}
