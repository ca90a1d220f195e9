"""Turn an MCPServerSpec into something the SDK's `Client` connects to.

stdio servers are launched with an allowlisted environment (never the parent's whole one),
through the sandbox runner seam when one is given, and their stderr goes to a file (the run's
log directory, or a temporary file) whose tail is kept for error messages (never to the
terminal). The server writes its stderr into a pipe, not into that file: a task reads it and
writes each complete line through the run's secret redactor, so a server that prints a secret
it was given in `env:` never puts it on disk.

When a stdio server has stopped, whatever is left of its process group (children it started
in the background) is killed: the transport (`engine.mcp._stdio`, the SDK's stdio transport
with a bounded stdout reader) kills the group only when the server itself does not exit
after its stdin closes. Every transport made here enforces the connection's `MessageCap`
(`engine.mcp._limits`) on what the server sends.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import anyio
import anyio.abc

from engine.errors import ToolError
from engine.mcp._limits import MessageCap, limited_http_client
from engine.mcp._settings import DEFAULT_MAX_MESSAGE_BYTES
from engine.sandbox import TOKEN_VAR, BwrapRunner, new_token, token_processes
from engine.sandbox.base import Runner
from engine.sandbox.env import minimal_env
from engine.secrets import LineRedactor, Redactor
from engine.spec.models import MCPServerSpec

STDERR_TAIL_CHARS = 2000
#: how long a stopped server's stderr pipe may take to reach end-of-file (a grandchild that
#: kept it open) before the rest is dropped
STDERR_DRAIN_S = 2.0
_READ_SIZE = 65536
log = logging.getLogger(__name__)


def kill_group(pgid: int) -> bool:
    """SIGKILL what is left of process group ``pgid``; False when the group is gone.

    The group is checked first: its id is not reused while any member lives.
    """
    if sys.platform == "win32" or pgid <= 1:  # pragma: no cover - a Job Object there
        return False
    try:
        os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


@dataclass
class StderrLog:
    """A server's stderr, redacted, in a file (temporary unless `to_file`); `tail()` gives the
    last characters of the current process's (a restarted server's file holds its earlier
    processes' too)."""

    file: IO[str] = field(default_factory=lambda: tempfile.TemporaryFile(  # noqa: SIM115
        mode="w+", encoding="utf-8", errors="replace"))
    redactor: Redactor = field(default_factory=Redactor)
    #: set when the current server's stderr reached end-of-file (all of it is in the file)
    eof: anyio.Event | None = field(default=None, repr=False)
    #: where in the file the current process's stderr starts
    start: int = field(default=0, repr=False)

    @classmethod
    def to_file(cls, path: Path, redactor: Redactor | None = None) -> StderrLog:
        """Keep the stderr in `path` (the run's log directory), appended across restarts."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(path.open("a+", encoding="utf-8", errors="replace"),
                   redactor if redactor is not None else Redactor())

    def write(self, text: str) -> None:
        """Append already-redacted text (and flush, so the file can be followed live)."""
        if not text:
            return
        try:
            self.file.seek(0, os.SEEK_END)  # tail() moved the position of a "w+" file
            self.file.write(text)
            self.file.flush()
        except (OSError, ValueError):  # a full disk or a closed log: the server must go on
            pass

    async def pump(self, fd: int, eof: anyio.Event) -> None:
        """Copy the read end `fd` of a server's stderr pipe into the file, line by line through
        the redactor, until end-of-file (or cancellation); a partial last line is redacted and
        written at the end."""
        self.eof = eof
        with contextlib.suppress(OSError, ValueError):  # a closed log: the tail is ""
            self.start = self.file.seek(0, os.SEEK_END)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines = LineRedactor(self.redactor)
        try:
            while True:
                try:
                    await anyio.wait_readable(fd)
                    data = os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.write(lines.feed(decoder.decode(data)))
        finally:
            self.write(lines.feed(decoder.decode(b"", final=True)) + lines.flush())
            eof.set()

    async def final_tail(self, wait: float = 0.5) -> str:
        """The tail once a stopped server's last lines are in (the pump copies them a moment
        after the process dies: they usually say why); waits at most `wait` seconds."""
        if self.eof is not None:
            with anyio.move_on_after(wait):
                await self.eof.wait()
        return self.tail()

    def tail(self, chars: int = STDERR_TAIL_CHARS) -> str:
        try:
            self.file.flush()
            size = self.file.seek(0, os.SEEK_END)
            self.file.seek(max(self.start, size - chars * 4))
            text = self.file.read()
        except (OSError, ValueError):
            return ""
        return text[-chars:].strip()

    def close(self) -> None:
        self.file.close()


def transport_kind(spec: MCPServerSpec) -> str:
    if spec.transport is not None:
        return spec.transport
    return "stdio" if spec.command is not None else "streamable-http"


def _resolve_command(name: str, spec: MCPServerSpec, command: str, env: dict[str, str],
                     cwd: str) -> str:
    if os.sep in command:
        path = Path(cwd, command)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    else:
        # PATH first, then the directory of this Python: plait's bundled servers
        # (plait-mcp-files, ...) are found in an environment that is not activated.
        search = os.pathsep.join([env.get("PATH", os.defpath), str(Path(sys.executable).parent)])
        found = shutil.which(command, path=search)
        if found:
            return found
    raise ToolError(
        f"MCP server '{name}': command {command!r} was not found or is not executable",
        hint="install it, give its full path in `command:`, or put its directory on PATH",
        server=name)


@dataclass(frozen=True)
class _Launch:
    """How a stdio server is started."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    #: what starts it, if not the transport's default: a scoped sandbox's runner starts it
    #: from a thread in a Landlock domain of its own
    popen: Callable[..., subprocess.Popen[bytes]] | None = None


def stdio_target(name: str, spec: MCPServerSpec, *, base_dir: Path, runner: Runner | None,
                 errlog: StderrLog, cap: MessageCap | None = None) -> Any:
    """The SDK transport for a stdio server (spawned when entered), its stdout read under
    `cap` (default: the spec's `max_message_bytes`, else 16 MiB)."""
    quiet_sdk_tracebacks()
    if cap is None:
        cap = MessageCap(name, spec.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES)

    assert spec.command is not None
    cwd = str((base_dir / spec.cwd).resolve()) if spec.cwd else str(base_dir.resolve())
    # every process of the server carries a token of its own (the SDK does not tell us the
    # server's pid): what is left of it once it stops is found by the token
    token = new_token()
    env = {**minimal_env(spec.env), TOKEN_VAR: token}
    command = _resolve_command(name, spec, spec.command, env, cwd)
    argv = [command, *spec.args]
    cleanup: list[str] = []
    popen = None
    if runner is not None:
        prepared = runner.prepare(argv, env=env, cwd=cwd)
        argv, env, cwd = list(prepared.argv), dict(prepared.env), prepared.cwd or cwd
        cleanup = list(prepared.cleanup)
        if isinstance(runner, BwrapRunner) and runner.scoped:
            popen = runner.popen_apart
    transport = _PipedStdio(_Launch(argv, env, cwd, popen), errlog, token, cap)
    return _WithCleanup(transport, cleanup) if cleanup else transport


class _PipedStdio:
    """plait's stdio transport (`engine.mcp._stdio`) with the server's stderr connected to a
    pipe that `StderrLog.pump` empties, in a task group held from enter to exit."""

    def __init__(self, launch: _Launch, log: StderrLog, token: str, cap: MessageCap) -> None:
        self._launch = launch
        self._log = log
        self._token = token
        self._cap = cap
        self._transport: Any = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._read_fd = -1
        self._eof: anyio.Event | None = None
        #: the pump's own scope, shielded: the startup timeout (or any cancellation of the
        #: task that entered this transport) must not stop the copy of the server's stderr
        #: before its last lines are in, which is what a start-up error quotes; `_close`
        #: ends it once the pipe has reached end-of-file or after STDERR_DRAIN_S
        self._pump_scope: anyio.CancelScope | None = None

    async def __aenter__(self) -> Any:
        from engine.mcp._stdio import stdio_transport

        self._eof = anyio.Event()
        self._pump_scope = anyio.CancelScope(shield=True)
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        self._read_fd = read_fd
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            self._tg.start_soon(self._pump, read_fd, self._eof)
            # the parent's copy of the write end is closed once the server holds its own, so
            # the pipe ends when the server does
            with os.fdopen(write_fd, "w") as errlog:
                launch = self._launch
                self._transport = stdio_transport(launch.argv, env=launch.env, cwd=launch.cwd,
                                                  errlog=errlog, cap=self._cap,
                                                  popen=launch.popen)
                return await self._transport.__aenter__()
        except BaseException:
            self._transport = None
            self.kill_leftovers()
            await self._close()
            raise

    async def _pump(self, read_fd: int, eof: anyio.Event) -> None:
        assert self._pump_scope is not None
        with self._pump_scope:
            await self._log.pump(read_fd, eof)

    async def __aexit__(self, *exc: Any) -> None:
        if exc[0] is not None and issubclass(exc[0], anyio.get_cancelled_exc_class()):
            # abandoned (e.g. the startup timeout): no grace period for a server that may
            # never read its closed stdin
            self.kill_leftovers()
        try:
            if self._transport is not None:
                await self._transport.__aexit__(*exc)
        finally:
            self.kill_leftovers()
            await self._close()

    def kill_leftovers(self) -> None:
        """Kill what is left of the server: every process that carries its token, and the
        process groups they are in (one scan of /proc; a group is only killed while a
        carrier is in it, so its id cannot have been reused by another process)."""
        pids = token_processes(self._token)
        groups = set()
        for pid in pids:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        for group in groups - {os.getpgrp()}:
            kill_group(group)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    async def _close(self) -> None:
        """Let the pump read the stopped server's last lines, then stop it."""
        assert self._tg is not None and self._eof is not None and self._pump_scope is not None
        try:
            with anyio.move_on_after(STDERR_DRAIN_S, shield=True):
                await self._eof.wait()
            self._pump_scope.cancel()
            self._tg.cancel_scope.cancel()
            await self._tg.__aexit__(None, None, None)
        finally:
            self._tg = None
            os.close(self._read_fd)


class _WithCleanup:
    """A transport that removes the files/dirs its runner created once the process is gone."""

    def __init__(self, transport: Any, paths: list[str]) -> None:
        self._transport = transport
        self._paths = paths

    async def __aenter__(self) -> Any:
        try:
            return await self._transport.__aenter__()
        except BaseException:
            self._remove()
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._transport.__aexit__(*exc)
        finally:
            self._remove()

    def _remove(self) -> None:
        for path in self._paths:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)


class _NoSDKTracebacks(logging.Filter):
    """The SDK's transports log a broken connection (an SSE stream that drops, a stdout
    that closes) with a full traceback, which lands on the user's terminal. plait reports
    the failure itself (the call's ToolError, a "transport error" warning), so such a
    record is passed on as one debug line of plait's own logger instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None or record.exc_info[1] is None:
            return True
        log.debug("%s (%s): %s", record.getMessage(), record.name, record.exc_info[1])
        return False


_SDK_FILTER = _NoSDKTracebacks()
_SDK_LOGGERS = ("mcp.client.sse", "mcp.client.streamable_http", "mcp.client.stdio")


def quiet_sdk_tracebacks() -> None:
    """Install the filter on the SDK's transport loggers (once)."""
    for name in _SDK_LOGGERS:
        logger = logging.getLogger(name)
        if _SDK_FILTER not in logger.filters:
            logger.addFilter(_SDK_FILTER)


def http_target(name: str, spec: MCPServerSpec, *, timeout_s: float, cap: MessageCap) -> Any:
    """The SDK transport for a remote server (streamable HTTP or SSE), on an httpx2 client
    whose transport counts every response against `cap`."""
    assert spec.url is not None
    quiet_sdk_tracebacks()
    if transport_kind(spec) == "sse":
        from mcp.client.sse import sse_client

        def factory(headers: dict[str, str] | None = None, timeout: Any = None,
                    auth: Any = None) -> Any:
            return limited_http_client(cap, headers=headers, timeout=timeout)

        return sse_client(spec.url, headers=dict(spec.headers) or None, timeout=timeout_s,
                          httpx_client_factory=factory)
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    client = limited_http_client(cap, headers=dict(spec.headers) or None,
                                 timeout=httpx2.Timeout(timeout_s, read=300.0))
    # the SDK's own limit on one SSE event (1 MiB by default) set to the cap: plait's count
    # (every byte of the event) trips first, with its own error
    return _OwnedHTTP(client, streamable_http_client(spec.url, http_client=client,
                                                     max_sse_event_size=cap.limit))


def safe_url(url: str) -> str:
    """The URL without any user:password part, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def http_status(exc: BaseException, target: Any) -> int | None:
    """The HTTP error status behind a failed connect: the SSE client raises it; the
    streamable HTTP client turns it into a JSON-RPC error without it, so its transport
    notes the last one it saw."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int) and status >= 400:
        return status
    return getattr(target, "error_status", None)


def http_refusal(name: str, url: str, status: int) -> ToolError:
    """The error for a remote MCP server that answered its connect with an HTTP error."""
    where = f"MCP server '{name}' at {url}"
    if status in (401, 403):
        return ToolError(f"{where} refused the credentials (HTTP {status})",
                         hint="check the server's `headers:` (e.g. Authorization: \"Bearer "
                              "${{ secrets.TOKEN }}\") and that the token is valid",
                         server=name)
    if status in (404, 405):
        return ToolError(f"{where} has no MCP endpoint there (HTTP {status})",
                         hint="check the URL's path (servers usually answer at /mcp for "
                              "streamable HTTP, /sse for SSE) and `transport:`", server=name)
    return ToolError(f"{where} answered the connect with HTTP {status}",
                     hint="is the server healthy, and are the URL and transport right?",
                     server=name)


class _OwnedHTTP:
    """A streamable HTTP transport that also closes the httpx client it was given, and
    notes whether its last POST failed, with which HTTP status (``error_status``, else None;
    a GET answered 405 only means the server has no standalone stream)."""

    def __init__(self, client: Any, transport: Any) -> None:
        self._client = client
        self._transport = transport
        self.error_status: int | None = None
        client.event_hooks["response"].append(self._note)

    async def _note(self, response: Any) -> None:
        if response.request.method == "POST":
            status = int(response.status_code)
            self.error_status = status if status >= 400 else None

    async def __aenter__(self) -> Any:
        await self._client.__aenter__()
        try:
            return await self._transport.__aenter__()
        except BaseException:
            await self._client.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self._transport.__aexit__(*exc)
        finally:
            await self._client.__aexit__(None, None, None)

