"""Memory of the long-lived commands: does RSS keep growing over many quick runs?

    PYTHONPATH=. python -m bench.ops [--runs 200]   (as a module: bench/mcp.py would shadow mcp)

Three loops, each bounded by --runs and by a wall-clock limit, on an offline echo workflow
(one LLM step and one command step), every run recorded in a temp run database:

* schedule: the real `plait schedule` command in this process on a clock that fires the
  next minute as soon as the previous run has ended (`--max-runs N`);
* batch: `runners.batch.run_local` over N rows (concurrency 4);
* serve: `plait mcp serve` over stdio in a subprocess, called N times by the MCP SDK client.

RSS (VmRSS) is sampled after every run; the report shows it after the first 10% of the
runs (warm-up: imports, caches), at the half and at the end, and the growth from the
warm-up sample to the end per 100 runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 300.0

WORKFLOW = """\
version: 1
name: ops
on:
  schedule: [{cron: "* * * * *", inputs: {who: cron}}]
inputs:
  who: {type: string}
providers:
  local: {kind: echo}
policies:
  lo: {level: low}
steps:
  greet: {llm: local, prompt: "hello ${{ inputs.who }}"}
  shout: {run: "echo ${{ steps.greet.output }}", policy: lo}
outputs:
  said: ${{ steps.shout.output.stdout }}
"""


#: when each sample was taken (monotonic), to see whether runs get slower as they pile up
STAMPS: list[float] = []


def rss_kib(pid: int | str = "self") -> int:
    STAMPS.append(time.monotonic())
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def report(name: str, samples: list[int]) -> None:
    n = len(samples)
    warm, half, end = samples[max(n // 10 - 1, 0)], samples[n // 2 - 1], samples[-1]
    per100 = (end - warm) / max(n - n // 10, 1) * 100
    print(f"{name:9s} runs={n:4d} rss after warm-up={warm / 1024:6.1f} MiB  "
          f"half={half / 1024:6.1f} MiB  end={end / 1024:6.1f} MiB  "
          f"growth={per100:+.0f} KiB/100 runs")
    tenth = max(n // 10, 2)
    first = (STAMPS[tenth - 1] - STAMPS[0]) / (tenth - 1) * 1000
    last = (STAMPS[-1] - STAMPS[-tenth]) / (tenth - 1) * 1000
    print(f"{'':9s} ms per run: first 10% {first:.1f}, last 10% {last:.1f}")
    STAMPS.clear()


class _AfterEachRun:
    """A clock that reaches the next fire time as soon as the run before it has ended."""

    def __init__(self) -> None:
        self._now = dt.datetime.now(dt.UTC)
        self.idle = anyio.Event()
        self.idle.set()

    def now(self) -> dt.datetime:
        return self._now

    async def sleep_until(self, when: dt.datetime) -> None:
        await anyio.lowlevel.checkpoint()  # the run just fired starts (and clears idle)
        await self.idle.wait()
        self._now = max(self._now, when)


def bench_schedule(path: Path, runs: int) -> list[int]:
    import runners.cli.schedule as cli

    clock = _AfterEachRun()
    samples: list[int] = []

    async def run(wf: Path, inputs: dict[str, Any]) -> Any:
        clock.idle = anyio.Event()
        try:
            return await cli.run_workflow_file(wf, inputs)
        finally:
            samples.append(rss_kib())
            clock.idle.set()

    cli.CLOCK, cli.RUN_WORKFLOW = clock, run
    logging.basicConfig(level=logging.WARNING)  # not a line per run on the terminal
    try:
        cli.command([str(path), "--max-runs", str(runs)], standalone_mode=False)
    finally:
        cli.CLOCK = cli.RUN_WORKFLOW = None
    return samples


def bench_batch(path: Path, runs: int) -> list[int]:
    from runners.batch import Row, run_local

    samples: list[int] = []
    rows = [Row(i + 1, {"who": f"row{i}"}) for i in range(runs)]

    def sample(_result: dict[str, Any]) -> None:
        samples.append(rss_kib())

    async def go() -> None:
        with anyio.fail_after(LIMIT_S):
            await run_local(path, rows, concurrency=4, options={}, on_result=sample)

    anyio.run(go)
    return samples


WRAPPER = """
import pathlib, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
pathlib.Path(sys.argv[1], "server.pid").write_text(str(proc.pid))
proc.wait()
"""


def bench_serve(path: Path, runs: int) -> list[int]:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", WRAPPER, str(path.parent), sys.executable, "-m", "runners.cli.main", "mcp",
              "serve", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(path.parent))
    samples: list[int] = []

    async def go() -> None:
        with anyio.fail_after(LIMIT_S):
            async with stdio_client(params) as (read, write), \
                    ClientSession(read, write) as client:
                await client.initialize()
                pid = int((path.parent / "server.pid").read_text())
                for i in range(runs):
                    result = await client.call_tool("ops", {"who": f"call{i}"})
                    assert not result.is_error, result.content
                    samples.append(rss_kib(pid))

    anyio.run(go)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--only", choices=["schedule", "batch", "serve"])
    args = parser.parse_args()
    benches: dict[str, Callable[[Path, int], list[int]]] = {
        "schedule": bench_schedule, "batch": bench_batch, "serve": bench_serve}
    for name, bench in benches.items():
        if args.only and name != args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ops.yaml"
            path.write_text(WORKFLOW)
            os.environ["PLAIT_STATE_URL"] = str(Path(tmp) / "runs.db")
            started = time.monotonic()
            samples = bench(path, args.runs)
            report(name, samples)
            print(f"{'':9s} {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
