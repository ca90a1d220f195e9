"""Executor benchmark: plait vs a plain-asyncio scheduler on the reference DAGs (W1-W4).

Each plait step is an `echo` LLM step with the workload's latency, its dependencies written
as `${{ steps.X.status }}` references (so expressions are rendered on every step), with run
records ON (SQLite). The asyncio baseline runs the same DAG with the reference `step()` in the
same process. Every figure is the median of --repeat runs, after --warmup seconds of
unmeasured runs of each; each workload runs in a fresh subprocess so peak RSS is its own.

    python bench/executor.py [--repeat 5] [--only W4] [--processes 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench"
sys.path[:0] = [str(ROOT), str(SHARED)]

import workloads  # noqa: E402  (the shared reference DAGs)


def workflow_text(dag: Any) -> str:
    lines = ["version: 1", f"name: bench-{dag.name.lower()}", "concurrency: 100000",
             "providers:", "  m:", "    kind: echo",
             f"    options: {{latency: {dag.latency}}}", "steps:"]
    for i, preds in enumerate(dag.preds):
        refs = " ".join(f"${{{{ steps.n{p}.status }}}}" for p in preds)
        lines += [f"  n{i}:", "    llm: m", f'    prompt: "n{i} {refs}"']
    return "\n".join(lines) + "\n"


async def asyncio_baseline(dag: Any) -> float:
    workloads.STEP_CALLS[0] = 0
    futures: list[asyncio.Future[Any]] = []
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(dag.n)]

    async def node(i: int) -> None:
        preds = [await futures[p] for p in dag.preds[i]]
        futures[i].set_result(await workloads.step(i, preds, dag.latency))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for i in range(dag.n):
            tg.create_task(node(i))
    wall = time.perf_counter() - started
    workloads.verify(dag, {i: futures[i].result() for i in dag.sinks}, workloads.STEP_CALLS[0])
    return wall


async def plait_run(dag: Any, db: Path, **options: Any) -> float:
    from engine.executor import run_workflow
    from engine.spec.loader import load_text
    from engine.state import RunStore

    wf = load_text(workflow_text(dag), str(db.parent / "bench.yaml"))
    store = RunStore.open(db)
    try:
        started = time.perf_counter()
        result = await run_workflow(wf, {}, store=store, **options)
        wall = time.perf_counter() - started
        _verify(dag, result, store)
    finally:
        store.close()
    return wall


def _verify(dag: Any, result: Any, store: Any) -> None:
    """Every step ran once and succeeded, after all of its dependencies finished."""
    assert result.status == "succeeded", result.error
    records = {r.step_id: r for r in store.steps(result.run_id)}
    assert len(records) == dag.n and all(r.status == "succeeded" for r in records.values())
    for i, preds in enumerate(dag.preds):
        step = result.steps[f"n{i}"]
        assert step.attempts == 1
        for p in preds:
            assert result.steps[f"n{p}"].finished_at <= step.started_at  # type: ignore[operator]


def one_workload(name: str, repeat: int, warmup: float) -> dict[str, Any]:
    dag = workloads.get(name)
    plait_walls, base_walls = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # unmeasured runs of each first, for at least `warmup` seconds: the first plait run
        # in a process also pays for importing the provider layer (~40 ms, which W0 measures
        # on its own), and on the project's VM the first seconds of a process run 10-20 %
        # slower for plait (not for the mostly sleeping baseline); see bench/README.md
        until = time.perf_counter() + warmup
        while True:
            asyncio.run(asyncio_baseline(dag))
            asyncio.run(plait_run(dag, Path(tmp) / "warm-up.db"))
            if time.perf_counter() >= until:
                break
        for i in range(repeat):  # interleaved, so drift hits both alike
            base_walls.append(asyncio.run(asyncio_baseline(dag)))
            plait_walls.append(asyncio.run(plait_run(dag, Path(tmp) / f"runs{i}.db")))
    plait_s, base_s = statistics.median(plait_walls), statistics.median(base_walls)
    return {
        "workload": name, "description": dag.description, "steps": dag.n,
        "ideal_s": round(dag.ideal_s, 4), "asyncio_s": round(base_s, 4),
        "plait_s": round(plait_s, 4), "ratio": round(plait_s / base_s, 3) if base_s else None,
        "overhead_us_per_step": round((plait_s - base_s) / dag.n * 1e6, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def cold_start(repeat: int) -> dict[str, Any]:
    """`plait run` of a one-step offline workflow (W0): process wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w0.yaml"
        path.write_text(workflow_text(workloads.get("W0")))
        walls = []
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "runners.cli.main", "run", str(path)],
                           check=True, capture_output=True, cwd=tmp,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
            walls.append(time.perf_counter() - started)
    return {"workload": "W0", "description": "plait run of a one-step offline workflow "
            "(process wall, records on)", "plait_s": round(statistics.median(walls), 3)}


def _over_processes(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a workload measured in several processes: medians over the processes'
    medians, the range of their ratios, the largest peak RSS."""
    row = dict(runs[0])
    for key in ("asyncio_s", "plait_s", "ratio", "overhead_us_per_step"):
        row[key] = round(statistics.median(r[key] for r in runs), 4)
    ratios = sorted(r["ratio"] for r in runs)
    row["ratio_range"] = [ratios[0], ratios[-1]]
    row["ratios"] = [r["ratio"] for r in runs]
    row["processes"] = len(runs)
    row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", help="one workload: W0..W4")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of unmeasured runs before the measured ones")
    parser.add_argument("--processes", type=int, default=1,
                        help="run each of W1-W4 in this many fresh processes, one after the "
                        "other, and report the median over them (and the range of ratios): "
                        "on a noisy machine one process can sit a few per cent off")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_workload(args.child, args.repeat, args.warmup)))
        return
    names = [args.only] if args.only else ["W0", "W1", "W2", "W3", "W4"]
    rows = []
    for name in names:
        if name == "W0":
            rows.append(cold_start(args.repeat))
            continue
        runs = []
        for _ in range(max(1, args.processes)):
            out = subprocess.run([sys.executable, __file__, "--child", name, "--repeat",
                                  str(args.repeat), "--warmup", str(args.warmup)],
                                 check=True, capture_output=True, text=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        rows.append(runs[0] if len(runs) == 1 else _over_processes(runs))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
