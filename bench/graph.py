"""Benchmark: building, checking, ordering and drawing a generated 5,000-step DAG.

Each step depends on 1-3 random steps of the previous layer (50 layers of 100 steps).
Prints the median wall time of 7 runs per operation. Not a test: nothing is asserted.
Record the figures in bench/results-graph.md. Run: python bench/graph.py [steps]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from engine.graph import (
    build,
    critical_path,
    layers,
    render_dot,
    render_json,
    render_mermaid,
    topological_order,
)


def generate(steps: int, width: int = 100, seed: int = 1) -> dict[str, dict[str, list[str]]]:
    rng = random.Random(seed)
    deps: dict[str, dict[str, list[str]]] = {}
    previous: list[str] = []
    for i in range(steps):
        name = f"step-{i:05d}"
        refs = rng.sample(previous, k=min(len(previous), rng.randint(1, 3)))
        deps[name] = {"needs": refs[:1], "prompt": refs[1:]}
        if (i + 1) % width == 0:
            previous = [f"step-{j:05d}" for j in range(i + 1 - width, i + 1)]
    return deps


def median_ms(func: Callable[[], Any], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    deps = generate(steps)
    graph, problems = build(deps)
    if problems:
        raise SystemExit(f"generated graph has problems: {problems[:3]}")
    kinds = dict.fromkeys(graph, "llm")

    def check_all() -> None:
        g, _ = build(deps)
        layers(g)

    cyclic = {k: {f: list(v) for f, v in fields.items()} for k, fields in deps.items()}
    for i in range(0, steps - 200, max(1, steps // 50)):
        # the first step of every 100th... layer now also needs a step two layers later
        cyclic[f"step-{i:05d}"]["needs"].append(f"step-{i + 200:05d}")
    found = [p for p in build(cyclic)[1] if p.code == "cycle"]

    rows = [
        ("build + check (cycles, unknown ids)", lambda: build(deps)),
        ("build + check + layers", check_all),
        ("topological_order", lambda: topological_order(graph)),
        ("layers", lambda: layers(graph)),
        ("critical_path", lambda: critical_path(graph)),
        ("render_mermaid", lambda: render_mermaid(graph, kinds)),
        ("render_dot", lambda: render_dot(graph, kinds)),
        ("render_json", lambda: render_json(graph, kinds)),
        (f"build + check, {len(found)} cycle problem(s) injected", lambda: build(cyclic)),
    ]
    print(f"{steps} steps, {graph.number_of_edges()} edges")
    for label, func in rows:
        print(f"{label:40} {median_ms(func):8.1f} ms")


if __name__ == "__main__":
    main()
