"""Tracing overhead: the executor benchmark's 2,000-step workload (W4) with tracing off and
on (spans to a JSON-lines file through the runner's exporter setup), interleaved run by run,
median of --repeat. "on" includes flushing the file at the end.

"sdk_floor" is what the OpenTelemetry SDK alone takes to make as many spans as the traced run
wrote (tracer.start_span with four attributes under a parent, then end, into a span processor
that does nothing: no plait code, no exporter), as a share of the untraced run: the least any
tracing built on the SDK's spans can add.

    PYTHONPATH=. python bench/tracing.py [--repeat 5] [--workload W4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import executor  # noqa: E402  (bench/executor.py: workflow_text, plait_run)
import workloads  # noqa: E402


def traced(dag: Any, db: Path, trace_file: Path) -> tuple[float, float, int]:
    """(run wall, wall including the flush, spans written)."""
    from runners.tracing_setup import TraceConfig, start_tracing

    session = start_tracing(TraceConfig(file=trace_file), environ={})
    assert session is not None
    run_wall = asyncio.run(executor.plait_run(dag, db, tracer=session.tracer))
    started = time.perf_counter()
    warnings = session.shutdown()
    total = run_wall + time.perf_counter() - started  # the run plus the final flush
    assert not warnings, warnings
    with trace_file.open() as spans:
        count = sum(1 for _ in spans)
    return run_wall, total, count


def sdk_floor(spans: int) -> float:
    """Seconds the SDK takes to start and end `spans` spans (see the module docstring)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())  # the base class: every hook does nothing
    tracer = provider.get_tracer("plait.bench")
    attributes = {"plait.step.id": "n1", "gen_ai.operation.name": "chat",
                  "gen_ai.provider.name": "echo", "gen_ai.request.model": "echo"}
    parent = tracer.start_span("plait.run")
    context = trace.set_span_in_context(parent)
    started = time.perf_counter()
    for _ in range(spans):
        tracer.start_span("plait.step", context=context, attributes=attributes).end()
    elapsed = time.perf_counter() - started
    parent.end()
    provider.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workload", default="W4")
    args = parser.parse_args()
    os.environ.pop("OTEL_SDK_DISABLED", None)
    dag = workloads.get(args.workload)
    off: list[float] = []
    on_run: list[float] = []
    on_total: list[float] = []
    spans = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            off.append(asyncio.run(executor.plait_run(dag, Path(tmp) / f"off{i}.db")))
            run_wall, total, spans = traced(dag, Path(tmp) / f"on{i}.db",
                                            Path(tmp) / f"t{i}.jsonl")
            on_run.append(run_wall)
            on_total.append(total)
    base = statistics.median(off)
    floor = statistics.median(sdk_floor(spans) for _ in range(args.repeat))
    row = {"workload": args.workload, "steps": dag.n, "repeat": args.repeat,
           "off_s": round(base, 4), "on_run_s": round(statistics.median(on_run), 4),
           "on_with_flush_s": round(statistics.median(on_total), 4),
           "overhead_run_pct": round((statistics.median(on_run) / base - 1) * 100, 1),
           "overhead_with_flush_pct": round((statistics.median(on_total) / base - 1) * 100, 1),
           "spans": spans, "sdk_floor_s": round(floor, 4),
           "sdk_floor_pct": round(floor / base * 100, 1)}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
