"""Landlock scoping for the bubblewrap sandbox: a sandboxed process tree cannot connect to the
host's abstract unix sockets (X11, D-Bus, ...) nor signal processes outside it.

With ``network: true`` the sandbox shares the host's network namespace, and abstract unix
sockets live in the network namespace (they have no file to hide behind a mount), so bwrap
alone cannot keep a command away from them. Since Landlock ABI 6 (Linux 6.12) a ruleset may
be *scoped*: ``LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`` refuses (EPERM) a connect or send to an
abstract socket created outside the process's Landlock domain, and ``LANDLOCK_SCOPE_SIGNAL``
a signal to a process outside it. The ruleset handles no filesystem or network access (bwrap
already confines those), so nothing else changes.

A sandbox is started from an engine thread that has entered a domain (Landlock and
no_new_privs are per thread: the rest of the engine stays outside), so `env`, bwrap, its
namespace init, the lifeline guard and the command or server inherit the domain from their
first instruction, with no extra process and no preexec_fn:

- every command step from one long-lived daemon thread (`scoped_popen`): the commands share
  its domain;
- each stdio MCP server (`engine.mcp._stdio`, handed `BwrapRunner.popen_apart`) from a thread
  of its own that enters a fresh domain (`scoped_popen_apart`), so a server and the commands,
  or two servers, cannot reach each other's abstract sockets.

Either thread lives at least as long as what it started, which bwrap's --die-with-parent
needs (it fires when the forking *thread* exits): a sandbox dies with the engine, on asyncio
and trio alike, and not when some worker thread goes idle. A thread that could not enter its
domain starts nothing (ScopeError): a runner told it is scoped never starts a sandbox
unscoped.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import platform
import queue
import select
import shutil
import stat
import subprocess
import threading
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("plait.sandbox")

#: Landlock's ABI that introduced scoped rulesets (abstract unix sockets and signals)
MIN_ABI = 6
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1
LANDLOCK_SCOPE_SIGNAL = 2
SCOPES = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL
PR_SET_NO_NEW_PRIVS = 38
#: (landlock_create_ruleset, landlock_restrict_self): the unified syscall table numbers,
#: checked for these machines; elsewhere the scope is reported unavailable, never guessed
_SYSCALLS = {machine: (444, 446) for machine in (
    "x86_64", "amd64", "aarch64", "arm64", "armv7l", "armv8l", "i386", "i686", "riscv64",
    "ppc64le", "ppc64", "s390x")}


class ScopeError(RuntimeError):
    """A sandbox could not be put in its Landlock domain, so it was not started."""


class _RulesetAttr(ctypes.Structure):
    """struct landlock_ruleset_attr (include/uapi/linux/landlock.h)."""

    _fields_ = (("handled_access_fs", ctypes.c_uint64),
                ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def _numbers() -> tuple[int, int] | None:
    return _SYSCALLS.get(platform.machine().lower())


@functools.cache
def _query() -> tuple[int | None, int]:
    """(the kernel's Landlock ABI or None, the errno when None)."""
    libc, numbers = _libc(), _numbers()
    if libc is None or numbers is None:
        return None, errno.ENOSYS
    abi = libc.syscall(ctypes.c_long(numbers[0]), None, ctypes.c_long(0),
                       ctypes.c_long(LANDLOCK_CREATE_RULESET_VERSION))
    return (int(abi), 0) if abi > 0 else (None, ctypes.get_errno())


def landlock_abi() -> int | None:
    """The kernel's Landlock ABI version, or None when it has none (not built in, not in the
    boot's `lsm=` list, blocked by a container's seccomp profile, or an architecture whose
    syscall numbers are not known here). Asked once per process."""
    return _query()[0]


def _unavailable(abi: int | None, err: int = errno.ENOSYS) -> str | None:
    """Why this kernel cannot scope a domain (None if it can); `err` is why the ABI query
    failed."""
    if _numbers() is None:
        return f"Landlock's system calls are not known for {platform.machine()!r}"
    if abi is None and err == errno.EOPNOTSUPP:
        return ("Landlock is built into the kernel but not enabled: add `landlock` to the "
                "lsm= boot parameter (Linux 6.12 or later is needed for scoping)")
    if abi is None:
        return ("the kernel has no Landlock system calls (Linux 6.12 or later with "
                "CONFIG_SECURITY_LANDLOCK=y is needed; in a container, a seccomp profile may "
                f"block them: {os.strerror(err)})")
    if abi < MIN_ABI:
        return (f"the kernel's Landlock is ABI {abi}; scoping abstract unix sockets needs "
                f"ABI {MIN_ABI} (Linux 6.12 or later)")
    return None


def _enter_domain() -> str | None:
    """Put the calling thread into a new Landlock domain scoping abstract unix sockets and
    signals (no_new_privs first, which Landlock requires of an unprivileged process): None,
    or which call failed and why. Both are per thread: the rest of the engine is untouched.
    Never raises: the thread that calls it must answer its caller either way."""
    try:
        return _restrict_self()
    except Exception as exc:
        return f"entering the domain failed: {exc}"


def _scope_error(problem: str) -> ScopeError:
    return ScopeError(f"cannot enter the sandbox's Landlock domain ({problem}); nothing was "
                      "started")


def _restrict_self() -> str | None:
    libc, numbers = _libc(), _numbers()
    if libc is None or numbers is None:
        return "libc or Landlock's system calls are not available"
    create, restrict = (ctypes.c_long(n) for n in numbers)
    nil = ctypes.c_ulong(0)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), nil, nil, nil) != 0:
        return f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}"
    attr = _RulesetAttr(0, 0, SCOPES)
    fd = libc.syscall(create, ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)),
                      ctypes.c_long(0))
    if fd < 0:
        return f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}"
    try:
        if libc.syscall(restrict, ctypes.c_long(fd), ctypes.c_long(0)) != 0:
            return f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(fd)
    return None


class _Spawner:
    """One thread of the engine that lives in the scoped domain for the whole process: a
    child inherits the domain of the thread that forks it, so sandboxes launched from here
    are scoped from their first instruction, with no preexec_fn (which would make Python
    fork instead of vfork: +5 ms per command in an engine-sized process) and no extra
    process. The thread also outlives every sandbox it starts, which matters because
    bwrap's --die-with-parent fires when the forking *thread* exits: it is a daemon thread
    of its own, not a ThreadPoolExecutor's worker, which interpreter shutdown stops as soon
    as the main thread returns (killing the sandboxes of threads still running a workflow,
    and refusing their next command)."""

    def __init__(self) -> None:
        self.problem: str | None = None
        self._jobs: queue.SimpleQueue[tuple[Future[Any], tuple[Any, ...], dict[str, Any]]] = \
            queue.SimpleQueue()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True,
                                        name="plait-scoped")
        self._thread.start()
        ready.wait()  # the domain is entered (or `problem` says why not) once this returns

    def _serve(self, ready: threading.Event) -> None:
        self.problem = _enter_domain()
        ready.set()
        while True:
            future, args, kwargs = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(subprocess.Popen(*args, **kwargs))
            except BaseException as exc:  # the caller's to handle
                future.set_exception(exc)

    def popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        if self.problem is not None:
            raise _scope_error(f"the scoped spawner thread could not: {self.problem}")
        started: Future[subprocess.Popen[bytes]] = Future()
        self._jobs.put((started, args, kwargs))
        return started.result()


_SPAWNER: _Spawner | None = None
_SPAWNER_LOCK = threading.Lock()


def _spawner() -> _Spawner:
    global _SPAWNER
    with _SPAWNER_LOCK:  # threads that ask at once share one
        if _SPAWNER is None:
            _SPAWNER = _Spawner()
        return _SPAWNER


def _forget_spawner() -> None:
    global _SPAWNER, _SPAWNER_LOCK
    _SPAWNER, _SPAWNER_LOCK = None, threading.Lock()


# a forked copy of the engine has no spawner thread (only the forking thread survives a
# fork): it makes its own on first use instead of queueing work for a thread that is gone
# (with a new lock: another thread may have held the old one at the fork)
os.register_at_fork(after_in_child=_forget_spawner)


def scoped_popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(*args, **kwargs) started from the scoped thread: the child and all it
    starts are in the domain (call scope_problem() first; this refuses if it found one)."""
    return _spawner().popen(*args, **kwargs)


def scoped_popen_apart(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen(*args, **kwargs) in a scoped domain of its own (not the one shared
    by every command), for a long-lived child such as a stdio MCP server: started from a new
    daemon thread that enters the domain, forks, and then stays until the child has exited
    (bwrap's --die-with-parent fires when the forking thread exits), waiting on a pidfd so
    that it reaps nothing. Raises ScopeError, starting nothing, if the thread cannot enter
    the domain."""
    started: Future[subprocess.Popen[bytes]] = Future()
    threading.Thread(target=_start_apart, args=(started, args, kwargs), daemon=True,
                     name="plait-scoped-apart").start()
    return started.result()


def _start_apart(started: Future[subprocess.Popen[bytes]], args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:
    problem = _enter_domain()
    if problem is not None:
        started.set_exception(_scope_error(problem))
        return
    try:
        child = subprocess.Popen(*args, **kwargs)
    except BaseException as exc:  # the caller's to handle
        started.set_exception(exc)
        return
    try:
        pidfd = os.pidfd_open(child.pid)  # before the caller can reap it and free the pid
    except OSError as exc:  # no descriptor left: this thread could not outlive the child
        child.kill()
        child.wait()
        started.set_exception(exc)
        return
    started.set_result(child)
    try:
        exited = select.poll()  # not select(): a pidfd may be numbered above FD_SETSIZE
        exited.register(pidfd, select.POLLIN)  # readable once the child has exited
        while not exited.poll():
            pass
    finally:
        os.close(pidfd)


def _setuid(bwrap: str) -> bool:
    path = bwrap if os.sep in bwrap else shutil.which(bwrap)
    try:
        return path is not None and bool(os.stat(path).st_mode & stat.S_ISUID)
    except OSError:
        return False


@functools.lru_cache(maxsize=8)
def scope_problem(bwrap: str) -> str | None:
    """None if sandboxes started with `bwrap` can be put into a scoped Landlock domain here,
    else why not (logged once as a warning: the sandbox still runs, without the scope).
    Cached per process."""
    why = _unavailable(*_query())
    if why is None and _setuid(bwrap):
        why = (f"{bwrap} is setuid root, and the no_new_privs flag Landlock needs would stop "
               "it from gaining its privileges")
    if why is None:
        why = _spawner().problem
    if why is not None:
        log.warning("the sandbox at level high/critical cannot block the host's abstract unix "
                    "sockets or signals to host processes: %s", why)
    return why
