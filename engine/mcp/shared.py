"""MCP runtimes kept open across the runs of one process (`plait batch`): a server is started
once, not once per run.

A runtime owns task groups, which must be entered and left by the same task; a run's task does
not live long enough. So a keeper task, started when the pool is entered, opens every runtime
and closes them all when the pool closes; runs ask it for a runtime by key and wait.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

    from engine.mcp.runtime import MCPRuntime

_Request = tuple[str, Callable[[], "MCPRuntime"], anyio.Event]


class SharedRuntimes:
    """`async with SharedRuntimes() as pool:` then `await pool.get(key, make)` from any run:
    the runtime made for `key` the first time, open until the pool closes."""

    def __init__(self) -> None:
        self._runtimes: dict[str, MCPRuntime] = {}
        self._errors: dict[str, BaseException] = {}
        self._lock = anyio.Lock()
        self._send: ObjectSendStream[_Request] | None = None
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> SharedRuntimes:
        send, receive = anyio.create_memory_object_stream[_Request](max_buffer_size=16)
        self._send = send
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._keeper, receive)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._send is not None and self._tg is not None
        await self._send.aclose()  # the keeper leaves its loop and closes every runtime
        await self._tg.__aexit__(None, None, None)

    async def get(self, key: str, make: Callable[[], MCPRuntime]) -> MCPRuntime:
        async with self._lock:
            if key not in self._runtimes and key not in self._errors:
                assert self._send is not None, "enter the pool first"
                done = anyio.Event()
                await self._send.send((key, make, done))
                await done.wait()
            if key in self._errors:
                raise self._errors.pop(key)
            return self._runtimes[key]

    async def _keeper(self, receive: ObjectReceiveStream[_Request]) -> None:
        async with AsyncExitStack() as stack, receive:
            async for key, make, done in receive:
                try:
                    self._runtimes[key] = await stack.enter_async_context(make())
                except Exception as exc:
                    self._errors[key] = exc
                finally:
                    done.set()

    def stats(self) -> dict[str, Any]:
        return {key: runtime.stats() for key, runtime in self._runtimes.items()}
