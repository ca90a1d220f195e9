"""MCPServerManager: the lifecycle of every MCP server of a run.

Servers are registered from the workflow's `mcp_servers`, started lazily on first use,
initialised (protocol 2026-07-28, falling back to the 2025-era handshake), health-checked on
an interval, restarted with backoff after a crash, and stopped gracefully at the end of the
run (the SDK closes stdin, then terminates, then kills the process group).

Each connection lives in its own task of the manager's task group, so the SDK's context
managers are entered and exited in one task, as anyio requires.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

from engine.errors import ToolError
from engine.mcp._limits import SDK_SSE_EVENT_LIMIT, MessageCap
from engine.mcp._settings import MCPSettings
from engine.mcp._transport import (
    StderrLog,
    http_refusal,
    http_status,
    http_target,
    safe_url,
    stdio_target,
    transport_kind,
)
from engine.sandbox._landlock import ScopeError
from engine.sandbox.base import Runner
from engine.secrets import Redactor
from engine.spec.models import MCPServerSpec

log = logging.getLogger("plait.mcp")

RunnerFor = Callable[[str, MCPServerSpec], "Runner | None"]
ListChanged = Callable[[str], None]
STOP_GRACE_S = 10.0
#: what the sandbox's launcher says when the server's program is not inside the sandbox (the
#: path was found on the host, so the policy's roots do not show it)
_UNSEEN = re.compile(r"(prlimit: failed to execute|bwrap: execvp) .*: No such file or directory")
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0


@dataclass
class _Connection:
    client: Any
    stop: anyio.Event
    done: anyio.Event
    alive: bool = True
    #: the SDK transport it runs on (a streamable HTTP one notes HTTP error statuses)
    target: Any = None


@dataclass
class _Slot:
    name: str
    spec: MCPServerSpec
    target: Any = None
    stderr: StderrLog | None = None
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    conn: _Connection | None = None
    spawns: int = 0
    restarts: int = 0
    #: `restarts` when the latest run began: a server shared across runs (plait batch,
    #: plait mcp serve) has a budget of restarts per run, as a run's own server has
    restarts_before_run: int = 0
    failures: int = 0
    last_error: str | None = None
    #: the last line the server wrote to stdout that is not JSON-RPC (for start-up errors)
    noise: str = ""
    #: the message cap of the current transport, and the client of the last connection that
    #: exceeded one, with its error
    cap: MessageCap | None = None
    too_large: tuple[Any, ToolError] | None = None


@dataclass(frozen=True)
class ServerStatus:
    name: str
    transport: str
    running: bool
    spawns: int
    restarts: int
    last_error: str | None
    protocol_version: str | None


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _not_json_rpc(error: Exception) -> str | None:
    """The start of a stdout line that failed to parse as JSON-RPC, if that is the error."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return None
    try:
        first = errors()[0]
    except Exception:  # not a pydantic ValidationError after all
        return None
    if first.get("type") != "json_invalid" or not isinstance(first.get("input"), str):
        return None
    line: str = first["input"]
    return repr(line[:200] + ("…" if len(line) > 200 else ""))


def _stream_dropped(spec: MCPServerSpec, error: Exception) -> bool:
    """Whether a transport error ended an SSE connection's event stream."""
    if spec.url is None or transport_kind(spec) != "sse":
        return False
    import httpx2

    return isinstance(error, httpx2.TransportError)


class MCPServerManager:
    """Starts, supervises and stops MCP servers. Use as an async context manager."""

    def __init__(self, *, base_dir: Path, runner_for: RunnerFor | None = None,
                 settings: MCPSettings | None = None,
                 on_list_changed: ListChanged | None = None,
                 redactor: Redactor | None = None) -> None:
        self.base_dir = base_dir
        self.settings = settings or MCPSettings.from_env()
        #: masks secrets in what servers write to stderr before it reaches the log file
        self.redactor = redactor if redactor is not None else Redactor()
        self._runner_for = runner_for
        self._on_list_changed = on_list_changed
        self._slots: dict[str, _Slot] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    # ------------------------------------------------------------ registration

    def register(self, name: str, spec: MCPServerSpec, *, target: Any = None) -> None:
        """Declare a server. `target` overrides the spec's transport (an in-process server
        object or an SDK Transport), for tests and embedding."""
        if name in self._slots:
            raise ToolError(f"MCP server '{name}' is registered twice", server=name)
        self._slots[name] = _Slot(name=name, spec=spec, target=target)

    def begin_run(self) -> None:
        """A run begins on these servers (kept up across runs): each of them may be
        restarted `max_restarts` times again, so crashes in earlier runs do not leave it
        down for every run after them."""
        for slot in self._slots.values():
            slot.restarts_before_run = slot.restarts

    def names(self) -> list[str]:
        return list(self._slots)

    def spec(self, name: str) -> MCPServerSpec:
        return self._slot(name).spec

    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            from engine.mcp._names import unknown_server

            raise unknown_server(name, list(self._slots)) from None

    def set_list_changed(self, callback: ListChanged) -> None:
        self._on_list_changed = callback

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MCPServerManager:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        if self.settings.health_interval_s > 0:
            self._tg.start_soon(self._health_loop)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._tg is not None
        try:
            with anyio.CancelScope(shield=True):
                await self.stop_all()
        finally:
            self._tg.cancel_scope.cancel()
            # the body's own exception propagates unchanged (not wrapped in a group): every
            # task of this group handles its own errors
            await self._tg.__aexit__(None, None, None)
            self._tg = None
            for slot in self._slots.values():
                if slot.stderr is not None:
                    tail = slot.stderr.tail()
                    if tail:
                        log.debug("MCP server %s stderr (last lines):\n%s", slot.name, tail)
                    slot.stderr.close()
                    slot.stderr = None

    async def client(self, name: str) -> Any:
        """The live SDK client of `name`, starting (or restarting) the server if needed."""
        slot = self._slot(name)
        conn = slot.conn
        if conn is not None and conn.alive:
            return conn.client
        async with slot.lock:
            if slot.conn is not None and slot.conn.alive:
                return slot.conn.client
            return await self._start(slot)

    def http_error_status(self, name: str) -> int | None:
        """The HTTP error status of the last request to a streamable HTTP server, if it
        failed (the SDK reports such a failure without its status)."""
        conn = self._slot(name).conn
        return getattr(conn.target, "error_status", None) if conn is not None else None

    def is_running(self, name: str) -> bool:
        conn = self._slot(name).conn
        return conn is not None and conn.alive

    async def final_stderr_tail(self, name: str) -> str:
        """The tail of a server that went down, once its last lines are in."""
        slot = self._slot(name)
        return await slot.stderr.final_tail() if slot.stderr is not None else ""

    async def _start(self, slot: _Slot) -> Any:
        if self._tg is None:
            raise RuntimeError("MCPServerManager must be entered (async with) before use")
        if slot.conn is not None:  # a dead connection: wait until its task has wound down
            slot.conn.stop.set()
            with anyio.move_on_after(STOP_GRACE_S):
                await slot.conn.done.wait()
            slot.conn = None
            slot.restarts += 1
        if slot.restarts - slot.restarts_before_run > self.settings.max_restarts:
            raise ToolError(
                f"MCP server '{slot.name}' went down {slot.restarts - slot.restarts_before_run}"
                " times; not restarting it "
                f"again in this run{self._tail_text(slot)}",
                hint="look at the server's stderr and fix the crash", server=slot.name)
        if slot.failures:
            await anyio.sleep(min(BACKOFF_BASE_S * 2 ** (slot.failures - 1), BACKOFF_MAX_S))
        target = self._target(slot)
        stop, done = anyio.Event(), anyio.Event()
        timeout = (slot.spec.startup_timeout if slot.spec.startup_timeout is not None
                   else self.settings.startup_timeout_s)
        slot.spawns += 1
        try:
            with anyio.fail_after(timeout):
                conn: _Connection = await self._tg.start(self._run, slot, target, stop, done)
        except TimeoutError:
            slot.failures += 1
            at = f" at {safe_url(slot.spec.url)}" if slot.spec.url is not None else ""
            # its stderr is all in: the abandoned start waited for the pipe to end
            said = self._tail_text(slot) or (
                "; it wrote nothing to stderr" if slot.stderr is not None else "")
            raise ToolError(
                f"MCP server '{slot.name}'{at} did not finish initialising within {timeout:g}s"
                f"{said}",
                hint="check the command and its arguments, or raise `startup_timeout:`"
                if slot.spec.url is None else "is the server at that URL healthy (and the "
                "transport right)? or raise `startup_timeout:`", server=slot.name) from None
        except Exception as exc:
            slot.failures += 1
            raise self._start_error(slot, _leaf(exc), target) from exc
        slot.failures = 0
        slot.conn = conn
        if slot.spawns > 1 and self._on_list_changed:
            self._on_list_changed(slot.name)  # a new process may list different tools
        return conn.client

    def _target(self, slot: _Slot) -> Any:
        if slot.target is not None:
            return slot.target
        kind = transport_kind(slot.spec)
        cap = slot.cap = self._cap(slot, kind)
        if kind == "stdio":
            if slot.stderr is None:
                log_dir = self.settings.log_dir
                slot.stderr = StderrLog.to_file(log_dir / f"{slot.name}.stderr.log",
                                                self.redactor) \
                    if log_dir is not None else StderrLog(redactor=self.redactor)
            runner = self._runner_for(slot.name, slot.spec) if self._runner_for else None
            return stdio_target(slot.name, slot.spec, base_dir=self.base_dir, runner=runner,
                                errlog=slot.stderr, cap=cap)
        return http_target(slot.name, slot.spec, timeout_s=self._timeout(slot.spec), cap=cap)

    def _cap(self, slot: _Slot, kind: str) -> MessageCap:
        """A fresh message cap for a new connection of `slot`."""
        limit = slot.spec.max_message_bytes or self.settings.max_message_bytes
        if kind == "sse":  # the SDK's own limit there: plait's count trips first, clearly
            limit = min(limit, SDK_SSE_EVENT_LIMIT)
        cap = MessageCap(slot.name, limit, kind)
        cap.on_trip = lambda error: self._message_too_large(slot, cap, error)
        return cap

    def _message_too_large(self, slot: _Slot, cap: MessageCap, error: ToolError) -> None:
        """A connection's server sent a message over the cap: that connection is over."""
        conn = slot.conn
        if conn is not None and slot.cap is cap:
            slot.too_large = (conn.client, error)
            self.mark_dead(slot.name, conn.client, f"it sent a message over the size limit of "
                           f"{cap.limit} bytes")

    def too_large(self, name: str, client: Any) -> ToolError | None:
        """The error of `client`'s connection if it ended on a message over the cap."""
        slot = self._slot(name)
        if slot.too_large is not None and slot.too_large[0] is client:
            return slot.too_large[1]
        return None

    def _timeout(self, spec: MCPServerSpec) -> float:
        return spec.timeout if spec.timeout is not None else self.settings.call_timeout_s

    def _tail_text(self, slot: _Slot) -> str:
        tail = slot.stderr.tail() if slot.stderr is not None else ""
        noise = (f"; it wrote to stdout what is not MCP (JSON-RPC): {slot.noise} (a stdio "
                 "server must log to stderr, never stdout)") if slot.noise else ""
        return noise + (f"; its stderr ended with:\n{tail}" if tail else "")

    def _start_error(self, slot: _Slot, exc: BaseException, target: Any = None) -> ToolError:
        if isinstance(exc, ToolError):
            return exc
        if slot.cap is not None and slot.cap.error is not None:
            return slot.cap.error
        text = str(exc) or type(exc).__name__
        slot.last_error = text
        if slot.spec.url is not None:
            status = http_status(exc, target)
            if status is not None:
                return http_refusal(slot.name, safe_url(slot.spec.url), status)
            return ToolError(
                f"could not connect to MCP server '{slot.name}' at {safe_url(slot.spec.url)}: "
                f"{text}",
                hint="is the server running, and are the URL and transport right?",
                server=slot.name)
        argv = " ".join([str(slot.spec.command), *slot.spec.args])
        if text == "Connection closed":  # the SDK's words for a server that went away
            text = "it exited (or closed its stdout) before answering initialize"
        tail = self._tail_text(slot)
        hint = "run the command by hand to see why it stops"
        if isinstance(exc, ScopeError):
            hint = ("the kernel refused the Landlock domain it offered when plait checked it "
                    "(a container's seccomp profile, or too many nested Landlock domains?): "
                    "fix that, or run the server at level medium")
        elif _UNSEEN.search(tail):  # the sandbox launcher could not find the program
            hint = ("under a policy of level high or critical the server sees only the system "
                    "directories and the policy's roots: add the directories of its program "
                    "(its virtual environment and Python installation) to the policy's "
                    "`filesystem.read`, or run it at level medium")
        return ToolError(f"MCP server '{slot.name}' ({argv}) failed during start-up: {text}"
                         f"{tail}", hint=hint, server=slot.name)

    async def _run(self, slot: _Slot, target: Any, stop: anyio.Event, done: anyio.Event,
                   *, task_status: anyio.abc.TaskStatus[_Connection]) -> None:
        from mcp import Client
        from mcp.types import Implementation
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        started = False

        async def on_message(message: Any) -> None:
            self._on_message(slot.name, message)

        try:
            client_cm = Client(target, mode=self.settings.protocol_mode,
                               message_handler=on_message,
                               client_info=Implementation(name="plait", version="0.1.0"))
            async with client_cm as client, anyio.create_task_group() as listeners:
                conn = _Connection(client=client, stop=stop, done=done, target=target)
                if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                    listeners.start_soon(self._listen, slot.name, client)
                started = True
                task_status.started(conn)
                await stop.wait()
                listeners.cancel_scope.cancel()
        except Exception as exc:
            if not started:
                raise
            log.warning("MCP server %s: connection ended with %s", slot.name, _leaf(exc))
        finally:
            done.set()

    async def _listen(self, name: str, client: Any) -> None:
        """2026-era servers announce tool list changes on a `subscriptions/listen` stream."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    if self._on_list_changed:
                        self._on_list_changed(name)
        except Exception as exc:  # a server without subscriptions: nothing to honour
            log.debug("MCP server %s: no list-changed subscription (%s)", name, _leaf(exc))

    def _on_message(self, name: str, message: Any) -> None:
        from mcp.types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification) and self._on_list_changed:
            self._on_list_changed(name)
        elif isinstance(message, Exception):
            slot = self._slot(name)
            noise = _not_json_rpc(message)
            if noise is not None:
                noise = slot.noise = self.redactor.redact(noise)  # as its stderr is
                log.warning("MCP server %s wrote a line that is not MCP (JSON-RPC) to its "
                            "stdout: %s", name, noise)
            else:
                log.warning("MCP server %s: transport error: %s", name, message)
            if slot.conn is not None and _stream_dropped(slot.spec, message):
                # an SSE session lives on its one stream: the next call must reconnect (it
                # would fail as if the server went down during that call)
                self.mark_dead(name, slot.conn.client, f"its SSE stream dropped: {message}")

    # ------------------------------------------------------------ supervision

    def mark_dead(self, name: str, client: Any, reason: str) -> None:
        """The connection behind `client` is broken (the process crashed, the socket closed):
        it is restarted, with backoff, on next use."""
        slot = self._slot(name)
        if slot.conn is not None and slot.conn.client is client and slot.conn.alive:
            log.warning("MCP server %s is down (%s); restarting on next use", name, reason)
            slot.conn.alive = False
            slot.conn.stop.set()
            slot.failures += 1
            slot.last_error = reason

    async def health_check(self, name: str) -> bool:
        """Ping a running server (`server/discover` on 2026-era connections). A server that
        does not answer within its timeout is marked dead."""
        from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

        slot = self._slot(name)
        conn = slot.conn
        if conn is None or not conn.alive:
            return False
        client = conn.client
        try:
            with anyio.fail_after(min(self._timeout(slot.spec), 10.0)):
                if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
                    await client.session.send_ping()
                else:
                    await client.session.send_discover(client.protocol_version)
        except Exception as exc:
            self.mark_dead(name, client, f"health check failed: {_leaf(exc)}")
            return False
        return True

    async def restart(self, name: str) -> Any:
        slot = self._slot(name)
        if slot.conn is not None:
            self.mark_dead(name, slot.conn.client, "restart requested")
            slot.failures = max(0, slot.failures - 1)
        return await self.client(name)

    async def _health_loop(self) -> None:
        while True:
            await anyio.sleep(self.settings.health_interval_s)
            for name, slot in list(self._slots.items()):
                if slot.conn is not None and slot.conn.alive and not await self.health_check(name):
                    try:
                        await self.client(name)
                    except Exception as exc:
                        log.warning("MCP server %s could not be restarted: %s", name, exc)

    async def stop(self, name: str) -> None:
        slot = self._slot(name)
        conn, slot.conn = slot.conn, None
        if conn is None:
            return
        conn.alive = False
        conn.stop.set()
        with anyio.move_on_after(STOP_GRACE_S):
            await conn.done.wait()

    async def stop_all(self) -> None:
        async with anyio.create_task_group() as tg:
            for name in self._slots:
                tg.start_soon(self.stop, name)

    def status(self, name: str) -> ServerStatus:
        slot = self._slot(name)
        conn = slot.conn
        version = None
        if conn is not None and conn.alive:
            version = conn.client.protocol_version
        return ServerStatus(name=name, transport="in-process" if slot.target is not None
                            else transport_kind(slot.spec), running=conn is not None and conn.alive,
                            spawns=slot.spawns, restarts=slot.restarts,
                            last_error=slot.last_error, protocol_version=version)
