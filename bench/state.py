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


if __name__ == "__main__":
    main()
