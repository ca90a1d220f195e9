"""plait's stdio transport for the MCP SDK's `Client`: the SDK's `stdio_client`, with the
server's stdout read under a `MessageCap` (imported when a stdio server starts: it imports
the SDK).

The SDK's own transport keeps appending stdout to one string until a newline comes, so a
server that writes a line of gigabytes (or never a newline) fills the engine's memory, and
each chunk re-copies the whole line so far. This one reads the pipe in chunks of at most
`READ_SIZE` bytes into a byte buffer, finds the newlines in each new chunk only, and stops at
the first line longer than the cap: at most the cap plus one chunk is held. The server is
then killed (its whole process group) and the read stream closed, so the requests in flight
fail at once as on a closed connection (the manager words the error).

The rest follows the SDK's transport and the MCP lifecycle: newline-delimited JSON-RPC, a
line that is not JSON-RPC handed to the session as an exception, and on exit stdin closed,
a grace period, SIGTERM then SIGKILL to the process group, every wait bounded and shielded.
Two differences: on trio the server is started from the event loop's thread, not from a
worker thread of trio's, and a scoped sandbox's server from a thread in a Landlock domain of
its own (see `_open`): either way a server that dies with its parent lives on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import IO, Any

import anyio
import anyio.abc
import anyio.lowlevel
import mcp_types
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from engine.mcp._limits import MessageCap

READ_SIZE = 65536
#: the SDK's figures: the grace for a server to exit once its stdin closes, the time from
#: SIGTERM to SIGKILL, and for the event loop to see a killed process go
EXIT_GRACE_S = 2.0
TERM_GRACE_S = 2.0
REAP_S = 2.0
FLUSH_S = 0.5
_POLL_S = 0.01


def _parse(line: bytes) -> Any:
    """One stdout line as a SessionMessage, or the exception that says why it is none."""
    try:
        text = line.decode("utf-8")
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(text,
                                                                              by_name=False))
    except ValueError as exc:  # UnicodeDecodeError and pydantic's ValidationError are both
        return exc


class _Reader:
    """Splits the server's stdout into lines of at most `cap.limit` bytes."""

    def __init__(self, process: anyio.abc.Process, cap: MessageCap,
                 send: anyio.abc.ObjectSendStream[Any]) -> None:
        self.process = process
        self.cap = cap
        self.send = send
        self.buffer = bytearray()

    async def run(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        async with self.send:
            with contextlib.suppress(anyio.EndOfStream, anyio.ClosedResourceError,
                                     anyio.BrokenResourceError, OSError):
                while True:
                    chunk = await stdout.receive(READ_SIZE)
                    if not await self._feed(chunk):
                        break
        if self.cap.error is None:
            await _drain(stdout)  # the session is gone: let the server finish its writes

    async def _feed(self, chunk: bytes) -> bool:
        """Deliver the complete lines of `chunk`; False once reading must stop."""
        limit = self.cap.limit
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            if len(self.buffer) + end - start > limit:
                return self._too_large()
            if self.buffer:
                self.buffer += chunk[start:end]
                line = bytes(self.buffer)
                self.buffer.clear()
            else:
                line = chunk[start:end]
            start = end + 1
            if line and not line.isspace():
                try:
                    await self.send.send(_parse(line))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return False
        if len(self.buffer) + len(chunk) - start > limit:
            return self._too_large()
        self.buffer += memoryview(chunk)[start:]
        return True

    def _too_large(self) -> bool:
        self.buffer = bytearray()
        self.cap.trip(f"a stdout line of more than {self.cap.limit} bytes")
        _signal_group(self.process, signal.SIGKILL)
        return False


async def _drain(stdout: anyio.abc.ByteReceiveStream) -> None:
    """Read and drop what is left on stdout, until the pipe closes."""
    with anyio.CancelScope(shield=True), contextlib.suppress(
            anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        while True:
            await stdout.receive(READ_SIZE)


def _signal_group(process: anyio.abc.Process, sig: signal.Signals) -> None:
    """Signal the server's process group (it leads one: started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(sig)


async def _exited(process: anyio.abc.Process, within: float) -> bool:
    """Whether the process exits within `within` seconds (polled: `wait()` would also wait
    for a grandchild that kept the pipes open)."""
    with anyio.move_on_after(within):
        while process.returncode is None:
            await anyio.sleep(_POLL_S)
    return process.returncode is not None


async def _stop(process: anyio.abc.Process) -> None:
    """Close stdin, give the server its grace, then SIGTERM and SIGKILL its group."""
    assert process.stdin is not None and process.stdout is not None
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    if not await _exited(process, EXIT_GRACE_S):
        _signal_group(process, signal.SIGTERM)
        if not await _exited(process, TERM_GRACE_S):
            _signal_group(process, signal.SIGKILL)
            await _exited(process, REAP_S)
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdout.aclose()
    _close_transport(process)


def _close_transport(process: anyio.abc.Process) -> None:
    """Close asyncio's subprocess transport, as the SDK's transport does: left open (a
    grandchild may hold a pipe end) it warns when collected, possibly after the loop closed.
    anyio has no public handle on it; on trio there is none."""
    transport = getattr(getattr(process, "_process", None), "_transport", None)
    close = getattr(transport, "close", None)
    if callable(close):
        with contextlib.suppress(PermissionError):  # re-killing a setuid child, on <= 3.12
            close()


#: what starts a server when the transport's default must not: subprocess.Popen's signature
PopenFn = Callable[..., "subprocess.Popen[bytes]"]


def _on_trio() -> bool:
    """Is this trio's event loop? trio needs sniffio; anyio no longer installs it, and without
    it (plait's own install: no trio) the loop is asyncio's."""
    try:
        import sniffio
    except ImportError:
        return False
    return bool(sniffio.current_async_library() == "trio")


async def _open(argv: list[str], *, env: dict[str, str], cwd: str, errlog: IO[str],
                popen: PopenFn | None) -> Any:
    """Start the server in a new session: with `popen` when given (a scoped sandbox's runner
    passes one that starts it from a thread in a Landlock domain of its own, which stays as
    long as the server), else from the event loop's own thread.

    Either way not from a worker thread that may exit: PR_SET_PDEATHSIG (bwrap's
    --die-with-parent: every high/critical server) fires when the *thread* that forked the
    child exits, and anyio on trio starts a process from a worker thread of trio's, which
    exits after 10 s idle: such a server was SIGKILLed about 10 s after it started. So on
    trio the server is started here, as asyncio does anyway."""
    if popen is None:
        if not _on_trio():
            return await anyio.open_process(argv, env=env, cwd=cwd, stderr=errlog,
                                            start_new_session=True)
        popen = subprocess.Popen
    started = popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=errlog, start_new_session=True)
    try:
        return _PopenProcess(started)
    except BaseException:  # no descriptor left for its pipes: it must not run unseen
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(started.pid, signal.SIGKILL)
        started.kill()
        started.wait()
        raise


class _PopenProcess:
    """The part of anyio's Process that this transport uses, for a process this module
    started with subprocess.Popen (on trio, or in a scoped domain): its pipes as anyio
    byte streams."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdin is not None and popen.stdout is not None
        self._popen = popen
        self.pid = popen.pid
        self.stdin = _FdPipe(popen.stdin)
        self.stdout = _FdPipe(popen.stdout)

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()  # reaps it (no event loop waits for it)

    def send_signal(self, sig: int) -> None:
        self._popen.send_signal(sig)  # not once it is reaped: its pid may be reused


class _FdPipe:
    """One end of a pipe to the server as an anyio byte stream (receive, send, aclose) on
    either backend: a non-blocking descriptor, waited for with anyio.wait_readable or
    wait_writable. A wait in progress is cancelled, and has left, before the descriptor is
    closed (on asyncio, anyio.notify_closing does not reach a wait of another task)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._fd = os.dup(file.fileno())
        file.close()
        os.set_blocking(self._fd, False)
        self._closed = False
        self._waiting: tuple[anyio.CancelScope, anyio.Event] | None = None

    async def _wait(self, ready: Callable[[int], Awaitable[None]]) -> None:
        left = anyio.Event()
        with anyio.CancelScope() as scope:
            self._waiting = (scope, left)
            try:
                await ready(self._fd)
            finally:
                self._waiting = None
                left.set()
        if self._closed:
            raise anyio.ClosedResourceError

    async def receive(self, max_bytes: int = READ_SIZE) -> bytes:
        await anyio.lowlevel.checkpoint_if_cancelled()
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._fd, max_bytes)
                break
            except BlockingIOError:
                await self._wait(anyio.wait_readable)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, data: bytes) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        while view:
            if self._closed:
                raise anyio.ClosedResourceError
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                await self._wait(anyio.wait_writable)
            except BrokenPipeError:
                raise anyio.BrokenResourceError from None
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._waiting is not None:
                scope, left = self._waiting
                scope.cancel()
                with anyio.CancelScope(shield=True):
                    await left.wait()
        finally:
            os.close(self._fd)


@asynccontextmanager
async def stdio_transport(argv: list[str], *, env: dict[str, str], cwd: str, errlog: IO[str],
                          cap: MessageCap, popen: PopenFn | None = None) -> AsyncIterator[Any]:
    """Start the server (with `popen` when given: see `_open`) and yield the (read, write)
    streams the SDK's session runs on."""
    process = await _open(argv, env=get_default_environment() | env, cwd=cwd, errlog=errlog,
                          popen=popen)
    # no await until the task group is entered, or a cancellation would leak the process
    read_send, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_receive = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    async def stdin_writer() -> None:
        stdin = process.stdin
        assert stdin is not None
        try:
            async with write_receive:
                async for message in write_receive:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await stdin.send(data.encode("utf-8") + b"\n")
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            await read_send.aclose()  # the session must see the connection end
        finally:
            writer_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(_Reader(process, cap, read_send).run)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                read_stream.close()
                write_stream.close()
                with anyio.move_on_after(FLUSH_S):
                    await writer_done.wait()
                await _stop(process)
                for stream in (read_stream, write_stream, read_send, write_receive):
                    await stream.aclose()
            tg.cancel_scope.cancel()
