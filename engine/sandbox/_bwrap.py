"""Build the bubblewrap command line for a policy, and probe whether bwrap works here."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.errors import PolicyViolation
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
#: variables the dynamic loader and libc act on (glibc's list of variables unsafe for setuid
#: programs, and every LD_*, MALLOC_* and GLIBC_*): the launcher outside the sandbox (`env`,
#: bwrap) must never see them, or LD_PRELOAD=./out/x.so written by an earlier sandboxed step
#: runs on the host. The command inside gets them through bwrap's --setenv.
LOADER_VARS = frozenset({"GCONV_PATH", "GETCONF_DIR", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH",
                         "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR"})
_LOADER_PREFIXES = ("LD_", "MALLOC_", "GLIBC_")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def host_unsafe(name: str) -> bool:
    """Whether the variable `name` would change what the launcher outside the sandbox runs."""
    return name in LOADER_VARS or name.startswith(_LOADER_PREFIXES)


def launcher_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment the processes outside the sandbox (`env`, then bwrap) get: `env`
    without the loader variables (the command inside still gets them)."""
    return {k: v for k, v in env.items() if not host_unsafe(k)}


@functools.cache
def _env_binary() -> str:
    """`env` by absolute path, looked up on the engine's PATH: a step's own PATH (say
    ./out:/usr/bin) must not choose the program that starts the sandbox on the host."""
    return shutil.which("env", path=os.environ.get("PATH", os.defpath)) or "/usr/bin/env"


def _check_names(env: Mapping[str, str]) -> None:
    for name in env:
        if not _ENV_NAME.fullmatch(name):
            # `env -i NAME=VALUE` would read `-S=...` or `--chdir=...` as its own option
            raise PolicyViolation(
                f"environment variable name {name!r} is not a valid name",
                hint="use letters, digits and _ (not starting with a digit)",
                rule="env", value=name)


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


def open_root(path: Path, policy: Policy, *, create: bool = False) -> int | None:
    """An O_PATH descriptor of the root `path`, reached one component at a time without
    following a symlink (None if it does not exist; with `create`, missing directories are
    made on the way). The policy resolved its roots when the run started, so a symlink now
    means something replaced a directory on the way (say, a step that may write the parent
    of another policy's root): binding it would mount the symlink's target, anywhere on the
    host. That is a PolicyViolation."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in path.parts[1:]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                child = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError):
                os.close(fd)
                return None
            os.close(fd)
            fd = child
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise PolicyViolation(
                    f"policy {policy.name!r} ({policy.level}): the root {path} is no longer "
                    f"the directory it was when the run started ({part!r} is now a symlink); "
                    "it is not mounted", hint="a step that may write its parent replaced "
                    "it; check what changed it, then start a new run",
                    rule="filesystem", value=str(path), policy=policy.name)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_roots(policy: Policy) -> dict[Path, int]:
    """open_root for every root (the write roots are created first); the caller closes them
    and passes them to bwrap, which mounts exactly these directories (no path lookup that a
    concurrent step could race)."""
    fds: dict[Path, int] = {}
    try:
        for path in policy.roots:
            fd = open_root(path, policy, create=path in policy.write_paths)
            if fd is not None:
                fds[path] = fd
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds


def _policy_binds(policy: Policy, fds: Mapping[Path, int] | None) -> list[str]:
    """Bind the roots: by descriptor (race-free) when `fds` is given, else by path after
    checking that no symlink leads there (a stdio server is started without descriptors)."""
    if fds is None:
        checked = open_roots(policy)
        for fd in checked.values():
            os.close(fd)
    args: list[str] = []
    # parents first: a read root inside a write root is mounted on top, so stays read-only
    # (each once: bwrap closes a descriptor once it has mounted it)
    for path in sorted(dict.fromkeys(policy.roots), key=lambda root: len(root.parts)):
        write = path in policy.write_paths
        if fds is None:
            args += ["--bind" if write else "--ro-bind-try", str(path), str(path)]
        elif path in fds:
            args += ["--bind-fd" if write else "--ro-bind-fd", str(fds[path]), str(path)]
    return args + _masks(policy)


def _masks(policy: Policy) -> list[str]:
    """Cover the workflow's `.env` and `.plait/` where a bound root would show them: an empty
    directory over a directory, /dev/null over a file."""
    args: list[str] = []
    for path in policy.hidden_paths:
        if not any(path.is_relative_to(root) for root in policy.roots):
            continue
        if path.is_dir() and not path.is_symlink():
            args += ["--tmpfs", str(path), "--remount-ro", str(path)]
        elif path.exists() or path.is_symlink():
            args += ["--ro-bind", "/dev/null", str(path)]
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
               cwd: Path | None, root_fds: Mapping[Path, int] | None = None) -> list[str]:
    """`env -i <allowlist> bwrap <confinement> -- inner...`: bwrap itself starts with only
    the allowlisted environment, so /proc/1/environ inside holds nothing else."""
    _check_names(env)
    tmp_mb = min(TMP_SIZE_MB, policy.max_file_size_mb or TMP_SIZE_MB)
    outer = launcher_env(env)
    args = [_env_binary(), "-i", *(f"{k}={v}" for k, v in outer.items()), bwrap,
            "--unshare-all", "--unshare-user",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--hostname", "sandbox"]
    if policy.network:
        args.append("--share-net")
    args += _system_binds() + _etc_binds(policy.network)
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
    args += _policy_binds(policy, root_fds)
    for name, value in env.items():
        if name not in outer:
            args += ["--setenv", name, value]
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
