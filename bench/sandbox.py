"""Start-up cost of a command step: plain subprocess vs each runner, running `true`.

Usage: PYTHONPATH=. python bench/sandbox.py [N]   (default N=50; prints medians in ms)

The rows are interleaved (one sample of each row per round), so a change in machine load
during the run affects every row alike.
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from engine.policy import resolve_policy
from engine.sandbox import runner_for
from engine.spec.models import PolicySpec

PLAIN = "subprocess.run(['true'])"


def _policy(level: str, base: Path):  # type: ignore[no-untyped-def]
    return resolve_policy(PolicySpec(level=level), name=level, base_dir=base, env={})


def _rows(base: Path) -> dict[str, Callable[[], Awaitable[None]]]:
    bwrap = runner_for(_policy("high", base)).prepare(["true"])

    async def plain() -> None:
        subprocess.run(["true"], check=True)

    async def raw_bwrap() -> None:
        subprocess.run(bwrap.argv, env=bwrap.env, check=True)

    rows: dict[str, Callable[[], Awaitable[None]]] = {
        PLAIN: plain, "subprocess.run(bwrap argv of high, no engine)": raw_bwrap}
    for level in ("low", "medium", "high", "critical"):
        runner = runner_for(_policy(level, base))

        async def run(runner=runner) -> None:  # type: ignore[no-untyped-def]
            result = await runner.run(["true"])
            assert result.exit_code == 0, result

        rows[f"{level} runner ({runner.name})"] = run
    return rows


async def _measure(n: int, base: Path) -> dict[str, list[float]]:
    rows = _rows(base)
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(n):
        for name, step in rows.items():
            start = time.perf_counter()
            await step()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as tmp:
        rows = anyio.run(_measure, n, Path(tmp))
    base = statistics.median(rows[PLAIN])
    print(f"# {platform.platform()}, {n} interleaved runs each, times in ms")
    print("| what | median | p90 | added vs plain (median) |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        med = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"| {name} | {med * 1000:.1f} | {p90 * 1000:.1f} | {(med - base) * 1000:+.1f} |")


if __name__ == "__main__":
    main()
