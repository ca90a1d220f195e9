"""MCPConnectionManager: pooled sessions, one per server, shared by every step of a run.

A session is opened on first use and reused by every later call; concurrent calls are
multiplexed on it (JSON-RPC ids), bounded by the server's `max_concurrency`. At most
MCP_MAX_CONNECTIONS servers are connected at once: opening one more closes the least recently
used idle one. Stats (calls, errors, latency) are kept per server.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.deadlines import capacity_wait
from engine.errors import ToolError
from engine.mcp.manager import MCPServerManager

LATENCY_SAMPLES = 1000


@dataclass
class _Stats:
    calls: int = 0
    errors: int = 0
    in_flight: int = 0
    last_used: float = 0.0
    latencies: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class ConnectionStats:
    server: str
    calls: int
    errors: int
    spawns: int
    restarts: int
    latency_median_ms: float | None
    latency_max_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class MCPConnectionManager:
    """Hands out the live session of a server for the duration of one request."""

    def __init__(self, manager: MCPServerManager, *, max_connections: int | None = None) -> None:
        self.manager = manager
        self.max_connections = max_connections or manager.settings.max_connections
        self._stats: dict[str, _Stats] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._open_lock = anyio.Lock()

    def _stat(self, server: str) -> _Stats:
        return self._stats.setdefault(server, _Stats())

    def _limiter(self, server: str) -> anyio.CapacityLimiter | None:
        limit = self.manager.spec(server).max_concurrency
        if limit is None:
            return None
        if server not in self._limiters:
            self._limiters[server] = anyio.CapacityLimiter(limit)
        return self._limiters[server]

    async def _client(self, server: str) -> Any:
        if self.manager.is_running(server):
            return await self.manager.client(server)
        async with self._open_lock:
            if not self.manager.is_running(server):
                await self._make_room(server)
            return await self.manager.client(server)

    async def _make_room(self, server: str) -> None:
        running = [name for name in self.manager.names()
                   if name != server and self.manager.is_running(name)]
        if len(running) < self.max_connections:
            return
        idle = [name for name in running if self._stat(name).in_flight == 0]
        if not idle:
            raise ToolError(
                f"cannot connect to MCP server '{server}': {len(running)} servers are connected "
                f"and busy (MCP_MAX_CONNECTIONS={self.max_connections})",
                hint="raise MCP_MAX_CONNECTIONS or lower the run's concurrency", server=server)
        await self.manager.stop(min(idle, key=lambda name: self._stat(name).last_used))

    @asynccontextmanager
    async def session(self, server: str) -> AsyncIterator[Any]:
        """The server's SDK client, counted as one request in flight."""
        limiter = self._limiter(server)
        stat = self._stat(server)
        if limiter is not None:
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                async with capacity_wait():  # not the step's time, nor one of the run's slots
                    await limiter.acquire()
        stat.in_flight += 1
        try:
            yield await self._client(server)
        finally:
            stat.in_flight -= 1
            stat.last_used = time.monotonic()
            if limiter is not None:
                limiter.release()

    def record(self, server: str, *, ok: bool, duration_s: float) -> None:
        stat = self._stat(server)
        stat.calls += 1
        if not ok:
            stat.errors += 1
        if len(stat.latencies) >= LATENCY_SAMPLES:
            del stat.latencies[: LATENCY_SAMPLES // 2]
        stat.latencies.append(duration_s)

    def stats(self) -> dict[str, ConnectionStats]:
        out: dict[str, ConnectionStats] = {}
        for name in self.manager.names():
            stat = self._stat(name)
            status = self.manager.status(name)
            lat = stat.latencies
            out[name] = ConnectionStats(
                server=name, calls=stat.calls, errors=stat.errors, spawns=status.spawns,
                restarts=status.restarts,
                latency_median_ms=statistics.median(lat) * 1000 if lat else None,
                latency_max_ms=max(lat) * 1000 if lat else None)
        return out
