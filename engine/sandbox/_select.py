"""Pick the runner for a policy, failing closed when its level cannot be enforced here."""

from __future__ import annotations

import logging

from engine.errors import SandboxError
from engine.policy import Policy
from engine.sandbox._bwrap import bwrap_path, probe_bwrap
from engine.sandbox._runners import BwrapRunner, LimitedRunner, PlainRunner, _Runner, prlimit_path

log = logging.getLogger("plait.sandbox")

FIX_BWRAP = ("install bubblewrap: apt-get install bubblewrap (Debian/Ubuntu) or "
             "dnf install bubblewrap (Fedora); if it is installed, enable unprivileged user "
             "namespaces: sysctl -w kernel.unprivileged_userns_clone=1 (Debian) or "
             "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (Ubuntu 24.04), "
             "or in a container run it with --security-opt seccomp=unconfined; "
             "or run with --allow-weaker-sandbox to accept a weaker sandbox")
FIX_PRLIMIT = "install util-linux (it provides prlimit): apt-get install util-linux"


def _problem(policy: Policy) -> tuple[str, str] | None:
    if policy.level in ("high", "critical"):
        why = probe_bwrap(bwrap_path())
        if why is not None:
            return why, FIX_BWRAP
    if policy.level != "low" and prlimit_path() is None:
        return "prlimit is not installed, so resource limits cannot be applied", FIX_PRLIMIT
    return None


def check_enforceable(policy: Policy) -> None:
    """Raise SandboxError (with how to fix it) if `policy`'s level cannot be enforced here."""
    problem = _problem(policy)
    if problem is not None:
        why, fix = problem
        raise SandboxError(
            f"policy {policy.name!r} needs level {policy.level}, which cannot be enforced on "
            f"this machine: {why.strip()}", hint=fix, policy=policy.name, level=policy.level)


def runner_for(policy: Policy, *, allow_weaker: bool = False) -> _Runner:
    """The runner enforcing `policy`. If its level cannot be enforced here: SandboxError, or
    with allow_weaker the strongest runner that works, with ``runner.weaker = True``."""
    try:
        check_enforceable(policy)
    except SandboxError as exc:
        if not allow_weaker:
            raise
        runner: _Runner
        if policy.level in ("high", "critical") and prlimit_path() is not None:
            runner = LimitedRunner(policy, weaker=True)
        else:
            runner = PlainRunner(policy, weaker=policy.level != "low")
        if runner.weaker:  # said where the run is watched, not only in its record
            what = "resource limits only" if isinstance(runner, LimitedRunner) else \
                "no sandbox and no resource limits"
            log.warning("%s; its commands and servers run with %s, as "
                        "--allow-weaker-sandbox allows", exc.message, what)
        return runner
    if policy.level == "low":
        return PlainRunner(policy)
    if policy.level == "medium":
        return LimitedRunner(policy)
    bwrap = bwrap_path()
    assert bwrap is not None
    # scoped by Landlock when the kernel allows; else still bwrap, reported as weaker
    return BwrapRunner(policy, bwrap=bwrap)
