"""The engine's guard: what is left of its steps dies with the engine, even when the engine
is SIGKILLed.

Every process a step or a stdio MCP server starts carries a PLAIT_SANDBOX_TOKEN that begins
with this engine process's own prefix. The first token made starts the guard: a small
process in its own session (a Ctrl-C or a kill of the engine's process group does not reach
it) that holds the read end of a pipe whose write end only the engine holds. When the engine
ends, however it ends, the pipe closes, and the guard SIGKILLs every process still carrying
one of the engine's tokens: a command's background grandchild, which `PR_SET_PDEATHSIG` (set
on the command itself) does not reach. Under bubblewrap the sandbox's own lifeline does this
inside the sandbox; the guard covers the levels without one.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading

#: the environment variable every process of a step carries (see engine.sandbox._process)
TOKEN_VAR = "PLAIT_SANDBOX_TOKEN"

#: run with `python -I -S -c` (no site, no environment): nothing of plait is imported
_GUARD = """\
import os, signal, sys, time
marker = sys.argv[1].encode()  # TOKEN_VAR=prefix
try:
    while os.read(0, 4096):
        pass
except OSError:
    pass
me = os.getpid()
for _ in range(5):
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open("/proc/" + name + "/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if any(entry.startswith(marker) for entry in environ.split(b"\\0")):
            found.append(int(name))
    if not found:
        break
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.05)
"""

_lock = threading.Lock()
#: (the pid it is for, the token prefix, the write end of the guard's lifeline)
_engine: tuple[int, str, int] | None = None


def engine_prefix() -> str:
    """This engine process's token prefix; the first call (in a process, so also in a forked
    child) starts its guard."""
    global _engine
    pid = os.getpid()
    with _lock:
        if _engine is None or _engine[0] != pid:
            prefix = secrets.token_hex(8) + "-"
            _engine = pid, prefix, _start_guard(prefix)
        return _engine[1]


def _start_guard(prefix: str) -> int:
    """Start the guard for `prefix`; the lifeline's write end (never inherited by what the
    engine starts: close-on-exec), or -1 when the guard cannot be started (the steps then
    rely on PR_SET_PDEATHSIG alone)."""
    read_end, write_end = os.pipe()
    try:
        # posix_spawn, not subprocess: no Popen object whose finaliser would want it reaped
        os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", _GUARD,
                                        f"{TOKEN_VAR}={prefix}"],
                       {"PATH": os.defpath},
                       file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0),
                                     # not the engine's stdout: a reader waiting for its
                                     # end would wait for the guard too
                                     (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                                     (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)],
                       setsid=True)
    except (OSError, TypeError, ValueError, NotImplementedError):  # no usable sys.executable
        # (embedded), or no setsid for posix_spawn on this platform
        os.close(write_end)
        return -1
    finally:
        os.close(read_end)
    return write_end
