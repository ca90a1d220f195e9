"""Benchmark of the run record store: step records saved per second by batch size.

    PYTHONPATH=. python bench/state.py [--records 20000] [--repeat 5]

Each record looks like a finished LLM step (rendered messages, a JSON output, usage, one
event). Every batch is one save_steps() call: one BEGIN IMMEDIATE ... COMMIT. The executor's
budget is 25 us of engine overhead per step on a 2,000-step run, so the per-record cost at the
batch sizes it uses (tens of records) is the number to watch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from engine.state import RunRecord, RunStore, StepRecord, new_run_id


def records(run_id: str, count: int) -> list[StepRecord]:
    now = time.time()
    return [StepRecord(
        run_id=run_id, step_id=f"step_{i:06d}", status="succeeded", attempts=1,
        fingerprint="sha256:" + "ab" * 32,
        rendered_input={"messages": [{"role": "user", "content": f"summarise item {i}"}]},
        output={"text": "a short reply " * 8, "index": i},
        usage={"input_tokens": 12, "output_tokens": 30}, cost=0.00012,
        started_at=now, finished_at=now + 0.01, events=[{"attempt": 1}])
        for i in range(count)]


def one(batch: int, total: int, sync: str) -> float:
    os.environ["PLAIT_STATE_SYNC"] = sync
    with tempfile.TemporaryDirectory() as tmp, RunStore.open(Path(tmp) / "runs.db") as store:
        run_id = new_run_id()
        store.create_run(RunRecord(run_id=run_id, workflow_name="bench", workflow_path="b.yaml",
                                   spec_hash="sha256:0", inputs={}, status="running",
                                   started_at=time.time()))
        recs = records(run_id, total)
        start = time.perf_counter()
        for i in range(0, total, batch):
            store.save_steps(recs[i:i + batch])
        return total / (time.perf_counter() - start)


def writer_rate(total: int, concurrent: bool) -> tuple[float, int]:
    """Records/s through StepWriter: all steps finishing at once, or one after another."""
    import anyio

    from engine.state.writer import StepWriter

    async def go(store: RunStore, recs: list[StepRecord]) -> tuple[float, int]:
        async with StepWriter(store) as writer:
            start = time.perf_counter()
            if concurrent:
                async with anyio.create_task_group() as tg:
                    for rec in recs:
                        tg.start_soon(writer.save, rec)
            else:
                for rec in recs:
                    await writer.save(rec)
            return total / (time.perf_counter() - start), writer.commits

    os.environ["PLAIT_STATE_SYNC"] = "normal"
    with tempfile.TemporaryDirectory() as tmp, RunStore.open(Path(tmp) / "runs.db") as store:
        run_id = new_run_id()
        store.create_run(RunRecord(run_id=run_id, workflow_name="bench", workflow_path="b.yaml",
                                   spec_hash="sha256:0", inputs={}, status="running",
                                   started_at=time.time()))
        return anyio.run(go, store, records(run_id, total))


def baseline_rate(total: int) -> float:
    """The same 2,000 concurrent tasks awaiting a bare checkpoint instead of save()."""
    import anyio
    import anyio.lowlevel

    async def noop(_: object) -> None:
        await anyio.lowlevel.checkpoint()

    async def go() -> float:
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(total):
                tg.start_soon(noop, i)
        return total / (time.perf_counter() - start)

    return anyio.run(go)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'sync':6} {'batch':>6} {'records/s (median)':>20} {'us/record':>10}")
    for sync in ("normal", "full"):
        for batch in (1, 10, 50, 500):
            total = min(args.records, 2_000) if sync == "full" and batch == 1 else args.records
            rates = [one(batch, total, sync) for _ in range(args.repeat)]
            rate = statistics.median(rates)
            print(f"{sync:6} {batch:>6} {rate:>20,.0f} {1e6 / rate:>10.1f}")
    print()
    print("StepWriter (asyncio, sync=normal), 2,000 steps, each awaiting its own save():")
    for label, concurrent in (("all finish at once", True), ("one after another", False)):
        results = [writer_rate(2_000, concurrent) for _ in range(args.repeat)]
        rate = statistics.median(r[0] for r in results)
        commits = statistics.median(r[1] for r in results)
        print(f"  {label:20} {rate:>10,.0f} records/s {1e6 / rate:>7.1f} us/record "
              f"{commits:>6.0f} commits")
    rate = statistics.median(baseline_rate(2_000) for _ in range(args.repeat))
    print(f"  {'baseline (no save)':20} {rate:>10,.0f} tasks/s   {1e6 / rate:>7.1f} us/task")


if __name__ == "__main__":
    main()
