"""Start-up cost of a command step: plain subprocess vs each runner, running `true`.

Usage: PYTHONPATH=. python bench/sandbox.py [N]   (default N=50; prints medians in ms)
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from engine.policy import resolve_policy
from engine.sandbox import runner_for
from engine.spec.models import PolicySpec


def _plain(n: int, argv: list[str] | None = None, env: dict[str, str] | None = None
           ) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv or ["true"], check=True, env=env)
        times.append(time.perf_counter() - start)
    return times


def _raw_bwrap(n: int, base: Path) -> list[float]:
    """The bwrap command line alone, through subprocess.run (no engine bookkeeping)."""
    runner = runner_for(resolve_policy(PolicySpec(level="high"), name="high", base_dir=base,
                                       env={}))
    prepared = runner.prepare(["true"])
    return _plain(n, prepared.argv, prepared.env)


async def _runner(level: str, n: int, base: Path) -> list[float]:
    runner = runner_for(resolve_policy(PolicySpec(level=level), name=level, base_dir=base,
                                       env={}))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = await runner.run(["true"])
        times.append(time.perf_counter() - start)
        assert result.exit_code == 0, result
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp:
        rows = {"subprocess.run(['true'])": _plain(n),
                "subprocess.run(bwrap argv of high)": _raw_bwrap(n, Path(tmp))}
        for level in ("low", "medium", "high", "critical"):
            rows[f"{level} runner"] = anyio.run(_runner, level, n, Path(tmp))
    base = statistics.median(rows["subprocess.run(['true'])"])
    print(f"# {platform.platform()}, {n} runs each, median (p90) in ms")
    print("| what | median ms | p90 ms | added vs plain ms |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        med = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"| {name} | {med * 1000:.1f} | {p90 * 1000:.1f} | {(med - base) * 1000:+.1f} |")


if __name__ == "__main__":
    main()
