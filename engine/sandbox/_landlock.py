"""Landlock scoping for the bubblewrap sandbox: a sandboxed process tree cannot connect to the
host's abstract unix sockets (X11, D-Bus, ...) nor signal processes outside it.

With ``network: true`` the sandbox shares the host's network namespace, and abstract unix
sockets live in the network namespace (they have no file to hide behind a mount), so bwrap
alone cannot keep a command away from them. Since Landlock ABI 6 (Linux 6.12) a ruleset may
be *scoped*: ``LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`` refuses (EPERM) a connect or send to an
abstract socket created outside the process's Landlock domain, and ``LANDLOCK_SCOPE_SIGNAL``
a signal to a process outside it. The ruleset handles no filesystem or network access (bwrap
already confines those), so nothing else changes.

The domain is entered in the child between fork and exec (a ``preexec_fn``: no extra process
per command), before ``env`` and bwrap run, so bwrap, its namespace init, the lifeline guard
and the command all inherit it. A launcher that cannot run a ``preexec_fn`` (the MCP SDK
starting a stdio server) puts :func:`launcher_words` in front of bwrap instead: a short
Python program that enters the domain and execs the rest of its argv.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable

log = logging.getLogger("plait.sandbox")

#: Landlock's ABI that introduced scoped rulesets (abstract unix sockets and signals)
MIN_ABI = 6
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1
LANDLOCK_SCOPE_SIGNAL = 2
SCOPES = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL
PR_SET_NO_NEW_PRIVS = 38
#: exit status of a child that could not enter the domain (it never runs the command)
SCOPE_FAILED_EXIT = 126
#: (landlock_create_ruleset, landlock_restrict_self): the unified syscall table numbers,
#: checked for these machines; elsewhere the scope is reported unavailable, never guessed
_SYSCALLS = {machine: (444, 446) for machine in (
    "x86_64", "amd64", "aarch64", "arm64", "armv7l", "armv8l", "i386", "i686", "riscv64",
    "ppc64le", "ppc64", "s390x")}


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
def landlock_abi() -> int | None:
    """The kernel's Landlock ABI version, or None when it has none (not built in, not in the
    boot's `lsm=` list, or an architecture whose syscall numbers are not known here)."""
    libc, numbers = _libc(), _numbers()
    if libc is None or numbers is None:
        return None
    abi = libc.syscall(ctypes.c_long(numbers[0]), None, ctypes.c_long(0),
                       ctypes.c_long(LANDLOCK_CREATE_RULESET_VERSION))
    return int(abi) if abi > 0 else None


def _unavailable(abi: int | None) -> str | None:
    """Why this kernel cannot scope a domain (None if it can)."""
    if _numbers() is None:
        return f"Landlock's system calls are not known for {platform.machine()!r}"
    if abi is None:
        return ("the kernel has no Landlock (Linux 6.12 or later with Landlock enabled, "
                "CONFIG_SECURITY_LANDLOCK=y and `landlock` in the boot's lsm= list, is needed)")
    if abi < MIN_ABI:
        return (f"the kernel's Landlock is ABI {abi}; scoping abstract unix sockets needs "
                f"ABI {MIN_ABI} (Linux 6.12 or later)")
    return None


def scope_hook() -> Callable[[], None]:
    """A preexec_fn that puts the child into a new Landlock domain scoping abstract unix
    sockets and signals (no_new_privs first, which Landlock requires of an unprivileged
    process). If that fails the child writes why to its stderr and exits with
    SCOPE_FAILED_EXIT without running the command: never a silently weaker sandbox."""
    libc, numbers = _libc(), _numbers()
    assert libc is not None and numbers is not None, "scope_hook() without scope_problem()"
    create, restrict = (ctypes.c_long(n) for n in numbers)
    attr = _RulesetAttr(0, 0, SCOPES)
    size = ctypes.c_long(ctypes.sizeof(attr))
    zero = ctypes.c_long(0)
    one, nil = ctypes.c_ulong(1), ctypes.c_ulong(0)

    def hook() -> None:
        if libc.prctl(PR_SET_NO_NEW_PRIVS, one, nil, nil, nil) != 0:
            _die(b"prctl(PR_SET_NO_NEW_PRIVS)")
        fd = libc.syscall(create, ctypes.byref(attr), size, zero)
        if fd < 0:
            _die(b"landlock_create_ruleset")
        if libc.syscall(restrict, ctypes.c_long(fd), zero) != 0:
            _die(b"landlock_restrict_self")
        os.close(fd)

    return hook


def _die(call: bytes) -> None:
    err = os.strerror(ctypes.get_errno()).encode()
    os.write(2, b"plait: cannot enter the sandbox's Landlock domain: " + call + b": " + err
             + b"\n")
    os._exit(SCOPE_FAILED_EXIT)


def _launcher_code(create: int, restrict: int) -> str:
    """scope_hook as a program: enter the domain, then exec argv[1:]."""
    return f"""\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
U, L = ctypes.c_ulong, ctypes.c_long
attr = (ctypes.c_uint64 * 3)(0, 0, {SCOPES})
def die(call):
    sys.stderr.write("plait: cannot enter the sandbox's Landlock domain: " + call + ": "
                     + os.strerror(ctypes.get_errno()) + "\\n")
    sys.exit({SCOPE_FAILED_EXIT})
if libc.prctl({PR_SET_NO_NEW_PRIVS}, U(1), U(0), U(0), U(0)) != 0:
    die("prctl(PR_SET_NO_NEW_PRIVS)")
fd = libc.syscall(L({create}), attr, L(ctypes.sizeof(attr)), L(0))
if fd < 0:
    die("landlock_create_ruleset")
if libc.syscall(L({restrict}), L(fd), L(0)) != 0:
    die("landlock_restrict_self")
os.close(fd)
os.execvp(sys.argv[1], sys.argv[1:])
"""


def launcher_words() -> list[str]:
    """argv words that enter the domain and then exec the words that follow them (for a
    launcher that cannot run a preexec_fn: one Python start, isolated mode, no site)."""
    numbers = _numbers()
    assert numbers is not None, "launcher_words() without scope_problem()"
    return [sys.executable, "-I", "-S", "-c", _launcher_code(*numbers)]


def _setuid(bwrap: str) -> bool:
    path = bwrap if os.sep in bwrap else shutil.which(bwrap)
    try:
        return path is not None and bool(os.stat(path).st_mode & stat.S_ISUID)
    except OSError:
        return False


def _trial() -> str | None:
    """Enter a domain in a real child (`true`): None if that works, else why not."""
    true = shutil.which("true", path=os.defpath) or "/bin/true"
    try:
        done = subprocess.run([true], preexec_fn=scope_hook(), capture_output=True, timeout=10,
                              check=False, env={})
    except (OSError, subprocess.SubprocessError) as exc:
        return f"a child could not enter a Landlock domain: {exc}"
    if done.returncode != 0:
        return done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
    return None


@functools.lru_cache(maxsize=8)
def scope_problem(bwrap: str) -> str | None:
    """None if sandboxes started with `bwrap` can be put into a scoped Landlock domain here,
    else why not (logged once as a warning: the sandbox still runs, without the scope).
    Cached per process."""
    why = _unavailable(landlock_abi())
    if why is None and _setuid(bwrap):
        why = (f"{bwrap} is setuid root, and the no_new_privs flag Landlock needs would stop "
               "it from gaining its privileges")
    if why is None:
        why = _trial()
    if why is not None:
        log.warning("the sandbox at level high/critical cannot block the host's abstract unix "
                    "sockets or signals to host processes: %s", why)
    return why
