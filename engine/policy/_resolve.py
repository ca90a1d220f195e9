"""The effective policy: a workflow's PolicySpec merged with the documented per-level defaults.

Per-level defaults (a field set in the policy always wins; SECURITY_MAX_EXECUTION_TIME and
SECURITY_MAX_MEMORY_MB replace the level default of their field when set)::

    field               low       medium    high      critical
    network             true      true      false     false (cannot be enabled)
    filesystem          any       any       policy    private temp dir only
    max_execution_time  300 s     120 s     60 s      30 s
    max_memory_mb       none      2048      1024      512
    max_processes       none      256       64        32
    max_output_bytes    10 MiB    10 MiB    4 MiB     1 MiB
    max_file_size_mb    none      1024      256       64
    argument checks     no        yes       yes       yes
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.errors import ConfigError
from engine.spec.durations import parse_duration
from engine.spec.models import PolicySpec

Level = Literal["low", "medium", "high", "critical"]
LEVELS: tuple[Level, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class LevelDefaults:
    network: bool
    max_execution_time: float
    max_memory_mb: int | None
    max_processes: int | None
    max_output_bytes: int
    max_file_size_mb: int | None


MIB = 1024 * 1024
#: beside the workflow: its secrets (`.env`) and its run records and state (`.plait/`)
HIDDEN_NAMES = (".env", ".plait")
LEVEL_DEFAULTS: Mapping[Level, LevelDefaults] = {
    "low": LevelDefaults(True, 300.0, None, None, 10 * MIB, None),
    "medium": LevelDefaults(True, 120.0, 2048, 256, 10 * MIB, 1024),
    "high": LevelDefaults(False, 60.0, 1024, 64, 4 * MIB, 256),
    "critical": LevelDefaults(False, 30.0, 512, 32, 1 * MIB, 64),
}


@dataclass(frozen=True)
class Rule:
    """A user-defined deny rule: `pattern` searched in arguments and/or command words."""

    name: str
    pattern: re.Pattern[str]
    applies_to: Literal["arguments", "command", "both"]
    message: str | None = None


@dataclass(frozen=True)
class Policy:
    """The effective policy a step, command or MCP server runs under."""

    name: str
    level: Level
    network: bool
    read_paths: tuple[Path, ...]
    write_paths: tuple[Path, ...]
    allowed_extensions: frozenset[str] | None
    blocked_operations: frozenset[str]
    max_execution_time: float
    max_memory_mb: int | None
    max_processes: int | None
    max_output_bytes: int
    max_file_size_mb: int | None
    env: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    #: the workflow's secrets file and run records: no command or tool may read or write
    #: them, even under a root (refused at medium and above, masked inside bubblewrap)
    hidden_paths: tuple[Path, ...] = ()

    @property
    def checks_arguments(self) -> bool:
        return self.level != "low"

    @property
    def roots(self) -> tuple[Path, ...]:
        """Every root a path may be under (read or write)."""
        return (*self.read_paths, *self.write_paths)


def _env_level(env: Mapping[str, str]) -> Level:
    raw = env.get("SECURITY_DEFAULT_LEVEL", "medium").strip().lower()
    if raw not in LEVELS:
        raise ConfigError(f"SECURITY_DEFAULT_LEVEL={raw!r} is not a level",
                          hint="use one of low, medium, high, critical")
    return raw  # type: ignore[return-value]


def _env_number(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    time = name.endswith("TIME")
    try:
        numeric = re.fullmatch(r"\s*\d+(\.\d+)?\s*", raw) is not None
        value = parse_duration(raw) if time and not numeric else float(raw)
        if not math.isfinite(value):  # nan, inf: NaN <= 0 is false, and NaN MB crashed later
            raise ValueError(f"expected a finite number, got {raw!r}")
    except ValueError as exc:
        what = "seconds" if time else "MB"
        raise ConfigError(f"{name}={raw!r} is not a number (of {what})",
                          hint=str(exc) if time else "give a number of megabytes, e.g. 512"
                          ) from exc
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _paths(items: list[str], base_dir: Path) -> tuple[Path, ...]:
    return tuple((base_dir / os.path.expanduser(p)).resolve() for p in items)


def _extension(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else "." + ext


def _rules(spec: PolicySpec, name: str) -> tuple[Rule, ...]:
    out = []
    for rule in spec.rules:
        try:
            pattern = re.compile(rule.pattern)
        except re.error as exc:
            raise ConfigError(f"policy {name!r}: rule {rule.name!r} has an invalid regular "
                              f"expression {rule.pattern!r}: {exc}") from exc
        out.append(Rule(rule.name, pattern, rule.applies_to, rule.message))
    return tuple(out)


def resolve_policy(spec: PolicySpec | None, *, name: str | None, base_dir: Path,
                   env: Mapping[str, str] = os.environ) -> Policy:
    """The effective Policy for `spec` (None: the SECURITY_DEFAULT_LEVEL defaults), with paths
    made absolute against `base_dir` (the workflow's directory) and symlinks resolved."""
    policy_name = name or "default"
    spec = spec if spec is not None else PolicySpec()
    level: Level = spec.level if "level" in spec.model_fields_set else _env_level(env)
    defaults = LEVEL_DEFAULTS[level]
    env_time = _env_number(env, "SECURITY_MAX_EXECUTION_TIME")
    env_mem = _env_number(env, "SECURITY_MAX_MEMORY_MB")
    fs = spec.filesystem
    _refuse_unenforceable(spec, level, policy_name)
    exec_time = spec.max_execution_time or env_time or defaults.max_execution_time
    memory = spec.max_memory_mb or (int(env_mem) if env_mem else defaults.max_memory_mb)
    read, write = _paths(fs.read, base_dir), _paths(fs.write, base_dir)
    return Policy(
        name=policy_name,
        level=level,
        network=defaults.network if spec.network is None else spec.network,
        read_paths=read,
        write_paths=write,
        allowed_extensions=(None if spec.allowed_extensions is None
                            else frozenset(_extension(e) for e in spec.allowed_extensions)),
        blocked_operations=frozenset(spec.blocked_operations),
        max_execution_time=float(exec_time),
        max_memory_mb=memory,
        max_processes=spec.max_processes or defaults.max_processes,
        max_output_bytes=spec.max_output_bytes or defaults.max_output_bytes,
        max_file_size_mb=spec.max_file_size_mb or defaults.max_file_size_mb,
        env=tuple(spec.env),
        rules=_rules(spec, policy_name),
        hidden_paths=_hidden(base_dir, (*read, *write)),
    )


def _refuse_unenforceable(spec: PolicySpec, level: Level, name: str) -> None:
    """ConfigError for what the level cannot mean: the same policy means the same thing on
    every machine, or the run does not start."""
    fs = spec.filesystem
    if level == "critical" and (spec.network or fs.read or fs.write):
        raise ConfigError(
            f"policy {name!r} is level critical, which allows no network and no "
            "filesystem beyond a private temp dir",
            hint="remove `network` and `filesystem` from the policy, or use level high")
    if level in ("low", "medium") and spec.network is False:
        raise ConfigError(
            f"policy {name!r} asks for `network: false` at level {level}, which cannot "
            "enforce it (only bubblewrap's network namespace, at high, cuts the network)",
            hint="use level high (or critical), or remove `network: false`")


def _hidden(base_dir: Path, roots: tuple[Path, ...]) -> tuple[Path, ...]:
    """The workflow's `.env` and `.plait/`, except one a root names itself (or lies in): a
    policy that declares `read: [.env]` means it."""
    return tuple(h for h in _paths(list(HIDDEN_NAMES), base_dir)
                 if not any(r == h or r.is_relative_to(h) for r in roots))


def check_planted_roots(policies: Mapping[str, PolicySpec], base_dir: Path) -> None:
    """ConfigError for a root reached through a symlink that lies inside a `write` root of
    any of `policies`: a sandboxed step may have planted it (in an earlier run) so that this
    root mounts the symlink's target, say `/`. Within a run the sandbox refuses a root that
    changed; this covers the symlink that was already there when the run started."""
    base = base_dir.resolve()
    writes = [w for spec in policies.values() for w in _paths(spec.filesystem.write, base)]
    for name, spec in policies.items():
        for raw in (*spec.filesystem.read, *spec.filesystem.write):
            lexical = Path(os.path.normpath(base / os.path.expanduser(raw)))
            for write in writes:
                link = _symlink_between(write, lexical)
                if link is not None:
                    raise ConfigError(
                        f"policy {name!r}: the root {raw!r} goes through the symlink {link} "
                        f"-> {os.readlink(link)}, which lies in the write root {write}: a "
                        "step could have planted it to mount anything in its place",
                        hint=f"declare the target itself (e.g. {str(lexical.resolve())!r}), "
                             "or remove the symlink")


def _symlink_between(top: Path, path: Path) -> Path | None:
    """The first symlink on the way from `top` (excluded) down to `path`, if `path` lies
    under `top`."""
    if path == top or not path.is_relative_to(top):
        return None
    current = top
    for part in path.relative_to(top).parts:
        current = current / part
        if current.is_symlink():
            return current
    return None
