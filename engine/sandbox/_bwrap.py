"""Build the bubblewrap command line for a policy, and probe whether bwrap works here."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.policy import Policy

#: env var naming the bwrap binary (tests point it at a missing path to check fail-closed)
BWRAP_ENV = "PLAIT_BWRAP"
SANDBOX_UID = 65534
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: the minimal /etc: users, the dynamic linker, time zone, certificates, alternatives
ETC_FILES = ("/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ld.so.cache",
             "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives",
             "/etc/ssl", "/etc/ca-certificates")
NETWORK_ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf")
TMP_SIZE_MB = 256


def bwrap_path(env: Mapping[str, str] | None = None) -> str | None:
    """The bwrap binary: $PLAIT_BWRAP if set (even when it does not exist), else on PATH."""
    source = os.environ if env is None else env
    override = source.get(BWRAP_ENV)
    if override:
        return override
    return shutil.which("bwrap")


def _system_binds() -> list[str]:
    args: list[str] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def _etc_binds(network: bool) -> list[str]:
    args: list[str] = []
    for path in (*ETC_FILES, *(NETWORK_ETC if network else ())):
        args += ["--ro-bind-try", path, path]
    return args


def _policy_binds(policy: Policy) -> list[str]:
    args: list[str] = []
    for path in policy.read_paths:
        args += ["--ro-bind-try", str(path), str(path)]
    for path in policy.write_paths:
        path.mkdir(parents=True, exist_ok=True)
        args += ["--bind", str(path), str(path)]
    return args


def _chdir(policy: Policy, cwd: Path | None) -> str:
    """`cwd` if it exists inside the sandbox (a root, under a root, or a parent of a root, which
    bwrap creates holding only the bound roots), else the private /tmp."""
    if cwd is not None:
        resolved = cwd.resolve()
        for root in policy.roots:
            inside = resolved.is_relative_to(root) or root.is_relative_to(resolved)
            if inside and resolved != Path("/"):
                return str(resolved)
    return "/tmp"


def bwrap_argv(bwrap: str, policy: Policy, inner: Sequence[str], *, env: Mapping[str, str],
               cwd: Path | None) -> list[str]:
    """`env -i <allowlist> bwrap <confinement> -- inner...`: bwrap itself starts with only the
    allowlisted environment, so /proc/1/environ inside holds nothing else."""
    tmp_mb = min(TMP_SIZE_MB, policy.max_file_size_mb or TMP_SIZE_MB)
    args = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), bwrap,
            "--unshare-all", "--unshare-user",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox"]
    if policy.network:
        args.append("--share-net")
    args += _system_binds() + _etc_binds(policy.network)
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    args += _policy_binds(policy)
    args += ["--chdir", _chdir(policy, cwd), "--", *inner]
    return args


@functools.lru_cache(maxsize=8)
def probe_bwrap(bwrap: str | None) -> str | None:
    """None if `bwrap` can build a sandbox here, else why not (cached per binary path)."""
    if bwrap is None or not os.access(bwrap, os.X_OK):
        return f"bubblewrap (bwrap) is not installed (looked for {bwrap or 'bwrap on PATH'})"
    argv = ["env", "-i", "PATH=/usr/bin:/bin", bwrap, "--unshare-all", "--unshare-user",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--die-with-parent",
            "--cap-drop", "ALL", *_system_binds(), "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", "--", "true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not be started: {exc}"
    if done.returncode != 0:
        return f"bwrap cannot create a sandbox here: {done.stderr.decode(errors='replace')}"
    return None
