"""Start-up cost of a command step: plain subprocess vs each runner, running `true`.

Usage: PYTHONPATH=. python bench/sandbox.py [N] [TEXT]   (default N=50; prints medians in
ms; with TEXT only the rows whose name contains it, plus the plain baseline)

The high and critical runners run in a scoped Landlock domain when the kernel allows it; the
"unscoped" rows are the same runners without it (what an older kernel gets), and the
"bwrap argv" rows are what a stdio MCP server's start costs without the domain and in a
domain of its own (`scoped_popen_apart`: a new thread enters it and starts bwrap).

The rows are interleaved (one sample of each row per round), so a change in machine load
during the run affects every row alike.
"""

from __future__ import annotations

import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from engine.policy import resolve_policy
from engine.sandbox import BwrapRunner, runner_for
from engine.sandbox._landlock import scope_problem, scoped_popen, scoped_popen_apart
from engine.spec.models import PolicySpec

PLAIN = "subprocess.run(['true'])"
BWRAP = shutil.which("bwrap") or "bwrap"


def _policy(level: str, base: Path):  # type: ignore[no-untyped-def]
    return resolve_policy(PolicySpec(level=level), name=level, base_dir=base, env={})


def _rows(base: Path) -> dict[str, Callable[[], Awaitable[None]]]:
    high = runner_for(_policy("high", base))
    assert isinstance(high, BwrapRunner)
    bare = high.prepare(["true"])

    async def plain() -> None:
        subprocess.run(["true"], check=True)

    async def plain_scoped() -> None:
        proc = scoped_popen(["true"])
        assert proc.wait() == 0

    async def raw_bwrap() -> None:
        subprocess.run(bare.argv, env=bare.env, check=True)

    async def apart_bwrap() -> None:
        proc = scoped_popen_apart(bare.argv, env=bare.env)
        assert proc.wait() == 0

    rows: dict[str, Callable[[], Awaitable[None]]] = {
        PLAIN: plain, "subprocess.run(bwrap argv of high, no engine)": raw_bwrap}
    if high.scoped:
        rows["scoped_popen(['true']).wait(): the scoped thread's hop"] = plain_scoped
        rows["scoped_popen_apart(bwrap argv of high).wait(): stdio MCP server"] = apart_bwrap
    runners = {f"{level} runner": runner_for(_policy(level, base))
               for level in ("low", "medium", "high", "critical")}
    for level in ("high", "critical"):
        scoped = runners[f"{level} runner"]
        if isinstance(scoped, BwrapRunner) and scoped.scoped:
            runners[f"{level} runner, unscoped"] = BwrapRunner(scoped.policy, bwrap=scoped.bwrap,
                                                               scoped=False)
    for name, runner in runners.items():

        async def run(runner=runner) -> None:  # type: ignore[no-untyped-def]
            result = await runner.run(["true"])
            assert result.exit_code == 0, result

        scope = " scoped" if getattr(runner, "scoped", False) else ""
        rows[f"{name} ({runner.name}{scope})"] = run
    return rows


def _detection_ms(bwrap: str) -> float:
    """The once-per-process Landlock check, cold (ABI query, setuid check, the scoped
    spawner thread entering its domain): call before anything else uses the sandbox."""
    start = time.perf_counter()
    scope_problem(bwrap)
    return (time.perf_counter() - start) * 1000


async def _measure(n: int, base: Path, only: str) -> dict[str, list[float]]:
    rows = {name: row for name, row in _rows(base).items() if only in name or name == PLAIN}
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(n):
        for name, step in rows.items():
            start = time.perf_counter()
            await step()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    detection = _detection_ms(BWRAP)
    with tempfile.TemporaryDirectory() as tmp:
        rows = anyio.run(_measure, n, Path(tmp), sys.argv[2] if len(sys.argv) > 2 else "")
    base = statistics.median(rows[PLAIN])
    print(f"# {platform.platform()}, {n} interleaved runs each, times in ms")
    print(f"Landlock detection, once per process: {detection:.1f} ms\n")
    print("| what | median | p90 | added vs plain (median) |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        med = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"| {name} | {med * 1000:.1f} | {p90 * 1000:.1f} | {(med - base) * 1000:+.1f} |")


if __name__ == "__main__":
    main()
