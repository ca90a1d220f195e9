"""Launch a prepared command, capture capped output, enforce the wall clock, and make sure no
process of the step survives it.

Every process started here is marked with a random PLAIT_SANDBOX_TOKEN in its environment and
starts in its own session (process group). At the wall-clock limit and at the end of the step
the group is SIGKILLed and then every process still carrying the token or descending from the
command is SIGKILLed too (this catches `setsid` escapes that keep the environment). Under
bubblewrap the command also lives in its own PID namespace, which dies with the sandbox.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import anyio

from engine.sandbox._guard import TOKEN_VAR, engine_prefix
from engine.sandbox.base import CommandResult, PreparedCommand

__all__ = ("TOKEN_VAR", "kill_step", "new_token", "run_prepared", "step_processes",
           "token_processes")
_PR_SET_PDEATHSIG = 1
_POLL = 0.05
_READ = 65536
_PIPE_GRACE = 5.0


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once (ctypes.util.find_library runs ldconfig: too slow per step)."""
    for name in ("libc.so.6", ctypes.util.find_library("c")):
        if name:
            try:
                return ctypes.CDLL(name, use_errno=True).prctl  # type: ignore[no-any-return]
            except (OSError, AttributeError):
                continue
    return None


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A preexec_fn making the child SIGKILLed when the engine dies, set before exec."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the engine died before prctl: do not start at all
            os._exit(137)

    return hook


def new_token() -> str:
    """A token for the processes of one step (or stdio MCP server): this engine's prefix (the
    first token also starts the engine's guard, see engine.sandbox._guard), then its own."""
    return engine_prefix() + secrets.token_hex(16)


@dataclass
class _State:
    timed_out: bool = False
    limit_hit: str | None = None
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    dropped: int = 0


def _read(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, _READ):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _processes() -> Iterator[tuple[int, int, bytes]]:
    """(pid, ppid, environ) of every process we can see."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = _read(f"/proc/{name}/stat")
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            environ = _read(f"/proc/{name}/environ")
        except (OSError, ValueError, IndexError):
            continue
        yield int(name), ppid, environ


def _carriers(procs: list[tuple[int, int, bytes]], token: str) -> set[int]:
    marker = f"{TOKEN_VAR}={token}".encode()
    return {pid for pid, _, env in procs if marker in env and marker in env.split(b"\0")}


def token_processes(token: str) -> set[int]:
    """Pids of the processes that carry `token` in their environment (not this one)."""
    return _carriers(list(_processes()), token) - {os.getpid()}


def step_processes(root: int, token: str) -> set[int]:
    """Pids belonging to a step: descendants of `root` and carriers of its token."""
    procs = list(_processes())
    found = _carriers(procs, token)
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in procs:
        children.setdefault(ppid, []).append(pid)
    stack = [root]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    found.discard(os.getpid())
    return found


def kill_step(root: int, token: str, *, scan: bool = True) -> None:
    """SIGKILL the step's process group, then (with `scan`) every process of the step, in a
    few rounds so processes forked while we scan are caught too."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, signal.SIGKILL)
    for _ in range(5 if scan else 0):
        pids = step_processes(root, token) - {root}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)


async def _drain(fd: int, buf: bytearray, cap: int, state: _State, done: anyio.Event) -> None:
    os.set_blocking(fd, False)
    while True:
        try:
            data = os.read(fd, _READ)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        if not data:
            done.set()
            return
        room = max(0, cap - len(state.out) - len(state.err))
        buf += data[:room]
        state.dropped += max(0, len(data) - room)


async def _feed(fd: int, data: bytes) -> None:
    os.set_blocking(fd, False)
    view = memoryview(data)
    try:
        while view:
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                await anyio.wait_writable(fd)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        os.close(fd)


async def _timer(root: int, token: str, timeout: float, state: _State) -> None:
    await anyio.sleep(timeout)
    state.timed_out = True
    kill_step(root, token)


async def _watchdog(root: int, token: str, limit: int, overhead: int, state: _State) -> None:
    """Kill the step when it has more than `limit` processes (RLIMIT_NPROC does nothing for
    uid 0, so this is the process limit that always applies)."""
    while True:
        await anyio.sleep(_POLL)
        count = len(step_processes(root, token) | {root}) - overhead
        if count > limit:
            state.limit_hit = "max_processes"
            kill_step(root, token)
            return


async def run_prepared(prepared: PreparedCommand, *, token: str, stdin: bytes | None,
                       timeout: float | None, max_output_bytes: int,
                       max_processes: int | None = None, overhead: int = 0,
                       pass_fds: tuple[int, ...] = (), pdeathsig: bool = True,
                       popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
                       ) -> CommandResult:
    """Run `prepared` to completion under the wall clock; nothing of it survives the call.
    `pass_fds` are inherited by the child (the bwrap lifeline). With `pdeathsig` the child is
    SIGKILLed when the engine dies (not for bwrap: killing bwrap half-way through its set-up
    orphans its namespace init, which then waits forever; its lifeline guard is used instead).
    `popen` starts the process (bwrap's runner passes one that starts it in its Landlock
    domain)."""
    env = {**prepared.env, TOKEN_VAR: token}
    start = time.monotonic()
    try:
        proc = popen(
            prepared.argv, env=env, cwd=prepared.cwd, start_new_session=True, close_fds=True,
            preexec_fn=_pdeathsig_hook() if pdeathsig else None, pass_fds=pass_fds,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return CommandResult(127, "", f"cannot start {prepared.argv[0]!r}: {exc}\n",
                             time.monotonic() - start)
    state = _State()
    assert proc.stdout is not None and proc.stderr is not None
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    pidfd = os.pidfd_open(proc.pid)
    try:
        done = (anyio.Event(), anyio.Event())
        async with anyio.create_task_group() as io:
            io.start_soon(_drain, out_fd, state.out, max_output_bytes, state, done[0])
            io.start_soon(_drain, err_fd, state.err, max_output_bytes, state, done[1])
            if stdin is not None and proc.stdin is not None:
                io.start_soon(_feed, os.dup(proc.stdin.fileno()), stdin)
                proc.stdin.close()
            await _wait(proc.pid, pidfd, token, timeout, max_processes, overhead, state)
            # a process that escaped every kill may hold the pipes open: do not wait forever
            with anyio.move_on_after(_PIPE_GRACE):
                await done[0].wait()
                await done[1].wait()
            io.cancel_scope.cancel()
    finally:
        os.close(pidfd)
        kill_step(proc.pid, token, scan=False)  # _wait already scanned
        rusage = _reap(proc)
        proc.stdout.close()
        proc.stderr.close()
    return CommandResult(
        exit_code=proc.returncode, stdout=state.out.decode(errors="replace"),
        stderr=state.err.decode(errors="replace"), duration_s=time.monotonic() - start,
        timed_out=state.timed_out, truncated=state.dropped > 0, max_rss_kb=rusage,
        killed_by=state.limit_hit or ("max_execution_time" if state.timed_out else None))


async def _wait(root: int, pidfd: int, token: str, timeout: float | None,
                max_processes: int | None, overhead: int, state: _State) -> None:
    try:
        async with anyio.create_task_group() as guards:
            if timeout is not None:
                guards.start_soon(_timer, root, token, timeout, state)
            if max_processes is not None:
                guards.start_soon(_watchdog, root, token, max_processes, overhead, state)
            await anyio.wait_readable(pidfd)
            guards.cancel_scope.cancel()
    finally:
        # the command has exited (or we are cancelled): end the step so the pipes close
        kill_step(root, token)


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.returncode = proc.returncode if proc.returncode is not None else -9
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return int(usage.ru_maxrss)
