"""The three runners: PlainRunner (low), LimitedRunner (medium), BwrapRunner (high, critical)."""

from __future__ import annotations

import fcntl
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from engine.policy import Policy
from engine.sandbox._bwrap import SYSTEM_DIRS, bwrap_argv, launcher_env, open_roots
from engine.sandbox._landlock import scope_problem, scoped_popen, scoped_popen_apart
from engine.sandbox._process import new_token, run_prepared
from engine.sandbox.base import CommandResult, PreparedCommand
from engine.sandbox.env import minimal_env

MIB = 1024 * 1024


class _Runner:
    """Shared behaviour: allowlisted env, wall clock = min(timeout, max_execution_time)."""

    name = "base"
    #: processes the runner itself adds to the step (not counted against max_processes)
    overhead = 0

    def __init__(self, policy: Policy, *, weaker: bool = False,
                 weaker_reason: str | None = None) -> None:
        self.policy = policy
        #: True when this runner enforces less than the policy's level asks (allow_weaker,
        #: or bubblewrap without the Landlock scope on a kernel that lacks it)
        self.weaker = weaker or weaker_reason is not None
        #: what is missing, when the runner knows it better than by its name
        self.weaker_reason = weaker_reason

    def __repr__(self) -> str:
        extra = ", weaker" if self.weaker else ""
        extra += f" ({self.weaker_reason})" if self.weaker_reason else ""
        return f"{type(self).__name__}(policy={self.policy.name!r}{extra})"

    def child_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        """The complete child environment: the minimal allowlist, the policy's `env`
        passthrough names, then the variables the step declared (`env`)."""
        return minimal_env(env, passthrough=self.policy.env)

    def prepare(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> PreparedCommand:
        return PreparedCommand(list(argv), self.child_env(env), cwd)

    def effective_timeout(self, timeout: float | None) -> float:
        limit = self.policy.max_execution_time
        return limit if timeout is None else min(timeout, limit)

    async def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                  cwd: str | None = None, stdin: bytes | None = None,
                  timeout: float | None = None) -> CommandResult:
        for path in self.policy.write_paths:  # declared output directories exist
            path.mkdir(parents=True, exist_ok=True)
        prepared = self.prepare(argv, env=env, cwd=cwd)
        return await run_prepared(
            prepared, token=new_token(), stdin=stdin, timeout=self.effective_timeout(timeout),
            max_output_bytes=self.policy.max_output_bytes,
            max_processes=self.policy.max_processes, overhead=self.overhead)


class PlainRunner(_Runner):
    """low: runs the command as asked (own process group, killed at the wall clock)."""

    name = "plain"


def prlimit_path() -> str | None:
    return shutil.which("prlimit") or next(
        (p for p in ("/usr/bin/prlimit", "/bin/prlimit") if os.access(p, os.X_OK)), None)


def _user_process_count() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def rlimit_args(policy: Policy, prlimit: str = "prlimit", *, overhead: int = 0) -> list[str]:
    """`prlimit ... --` applying the policy's rlimits to the command it executes.

    RLIMIT_NPROC counts every process of the real uid, so for a non-root user it is set to the
    user's current process count plus max_processes (plus the runner's own `overhead`
    processes, which run as the same user); for uid 0 the kernel ignores it and the
    process watchdog enforces max_processes instead."""
    p = policy
    args = [prlimit, "--core=0"]
    args.append(f"--cpu={math.ceil(p.max_execution_time) + 1}")
    if p.max_memory_mb:
        args.append(f"--as={p.max_memory_mb * MIB}")
    if p.max_file_size_mb:
        args.append(f"--fsize={p.max_file_size_mb * MIB}")
    if p.max_processes:
        base = 0 if os.getuid() == 0 else _user_process_count()
        args.append(f"--nproc={base + p.max_processes + overhead}")
    return [*args, "--"]


def _system_program(name: str) -> str:
    """`name` by its absolute path when the engine finds it in a system dir (bound at the same
    place inside the sandbox), else the bare name."""
    found = shutil.which(name, path=os.environ.get("PATH", os.defpath))
    if found and any(found.startswith(d + "/") for d in SYSTEM_DIRS):
        return found
    return name


class LimitedRunner(_Runner):
    """medium: rlimits (address space, CPU, file size, processes) through `prlimit`, an
    allowlisted environment and its own session; no namespaces."""

    name = "limited"

    def prepare(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> PreparedCommand:
        prlimit = prlimit_path() or "prlimit"
        return PreparedCommand([*rlimit_args(self.policy, prlimit), *argv],
                               self.child_env(env), cwd)


class BwrapRunner(_Runner):
    """high / critical: bubblewrap with every namespace unshared, a non-root uid inside, all
    capabilities dropped, read-only system dirs and only the policy's paths bound. When
    `scoped` the whole sandbox (bwrap included) also runs in a Landlock domain that refuses
    the host's abstract unix sockets and signals to processes outside it: by default
    whenever this machine allows it, else the runner says it is weaker and why."""

    name = "bwrap"
    overhead = 4  # the outer bwrap, the namespace's init, the lifeline guard and its `cat`

    def __init__(self, policy: Policy, *, bwrap: str, scoped: bool | None = None,
                 weaker: bool = False) -> None:
        problem = scope_problem(bwrap) if scoped is None else None
        if scoped is False:
            problem = "turned off by the caller"
        super().__init__(policy, weaker=weaker,
                         weaker_reason=f"no Landlock scope: {problem}" if problem else None)
        self.bwrap = bwrap
        self.scoped = problem is None

    @property
    def popen(self) -> Callable[..., subprocess.Popen[bytes]]:
        """What starts a prepared command: subprocess.Popen from the engine's scoped thread
        when `scoped` (the sandbox then runs in the Landlock domain), else subprocess.Popen."""
        return scoped_popen if self.scoped else subprocess.Popen

    @property
    def popen_apart(self) -> Callable[..., subprocess.Popen[bytes]]:
        """What starts a prepared long-lived process (a stdio MCP server) when `scoped`: in a
        Landlock domain of its own, so it and the commands cannot reach each other's abstract
        sockets; else subprocess.Popen."""
        return scoped_popen_apart if self.scoped else subprocess.Popen

    def child_env(self, env: Mapping[str, str] | None) -> dict[str, str]:
        child = super().child_env(env)
        child.setdefault("HOME", "/tmp")
        if not Path(child["HOME"]).is_relative_to("/tmp") and not any(
                Path(child["HOME"]).is_relative_to(r) for r in self.policy.roots):
            child["HOME"] = "/tmp"
        child["TMPDIR"] = "/tmp"
        return child

    def prepare(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None, lifeline_fd: int | None = None,
                root_fds: Mapping[Path, int] | None = None) -> PreparedCommand:
        """With `lifeline_fd` (the read end of a pipe the engine holds open) a guard inside the
        sandbox kills every process there once the pipe reaches EOF, i.e. when the engine dies
        even before bwrap's own --die-with-parent is in place (bwrap sets it only after it has
        started, and its namespace init can be orphaned in that window). Start the result
        with `self.popen` (or `self.popen_apart`): when the runner is `scoped`, that is what
        puts it in a Landlock domain (the argv itself has no launcher)."""
        child = self.child_env(env)
        # the sandbox's own programs by absolute path (the system dirs are bound at the same
        # place): a step's PATH=./out:... must not swap in a prlimit without the limits, or a
        # lifeline `cat` that never returns
        inner = [*rlimit_args(self.policy, _system_program("prlimit"),
                              overhead=self.overhead), *argv]
        if lifeline_fd is not None:
            cat = _system_program("cat")
            # dash only redirects fds 0-9, so the guard opens the pipe through /proc
            guard = (f"({cat} /proc/self/fd/{lifeline_fd} >/dev/null 2>&1; kill -KILL -1) "
                     '</dev/null & exec "$@"')
            inner = ["/bin/sh", "-c", guard, "plait-guard", *inner]
        full = bwrap_argv(self.bwrap, self.policy, inner, env=child,
                          cwd=Path(cwd) if cwd else None, root_fds=root_fds)
        # what launches bwrap gets no loader variables (bwrap hands them to the command)
        return PreparedCommand(full, launcher_env(child), None)

    async def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                  cwd: str | None = None, stdin: bytes | None = None,
                  timeout: float | None = None) -> CommandResult:
        roots = open_roots(self.policy)  # creates the write roots; bound by descriptor
        low_read, write_end = os.pipe()
        # never 0-2 (a process whose stdin is closed would get fd 0, and the guard would eat
        # the command's stdin); above the stdio numbers Popen rewires in the child
        read_end = fcntl.fcntl(low_read, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(low_read)
        try:
            prepared = self.prepare(argv, env=env, cwd=cwd, lifeline_fd=read_end,
                                    root_fds=roots)
            return await run_prepared(
                prepared, token=new_token(), stdin=stdin,
                timeout=self.effective_timeout(timeout),
                max_output_bytes=self.policy.max_output_bytes,
                max_processes=self.policy.max_processes, overhead=self.overhead,
                pass_fds=(read_end, *roots.values()), pdeathsig=False,
                popen=self.popen)
        finally:
            os.close(read_end)
            os.close(write_end)
            for fd in roots.values():
                os.close(fd)
