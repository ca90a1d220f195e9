"""Helpers of the security suite (imported by its tests)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.policy import Policy, resolve_policy
from engine.sandbox import runner_for
from engine.sandbox.base import Runner
from engine.spec.models import PolicySpec


def make_policy(level: str, base: Path, **spec: Any) -> Policy:
    return resolve_policy(PolicySpec(level=level, **spec), name=f"{level}-test", base_dir=base,
                          env={})


def make_runner(level: str, base: Path, **spec: Any) -> tuple[Policy, Runner]:
    policy = make_policy(level, base, **spec)
    return policy, runner_for(policy)


async def assert_healthy(runner: Runner, cwd: Path | None = None) -> None:
    """A normal command right after an attack still works."""
    result = await runner.run(["sh", "-c", "echo ok"], cwd=str(cwd) if cwd else None)
    assert (result.exit_code, result.stdout) == (0, "ok\n"), result


def live_processes(marker: str, comm: str | None = None) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains `marker` (and whose
    executable name is `comm`, if given)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ")
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        state = stat[stat.rindex(")") + 2]
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        if marker.encode() in cmdline and state not in "ZX" and comm in (None, name):
            found.append(int(entry.name))
    return found


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@dataclass
class Canary:
    """A TCP and a UDP listener on 127.0.0.1 that record anything that reaches them."""

    tcp_port: int
    udp_port: int
    received: list[bytes] = field(default_factory=list)
