"""Benchmark: compiling and rendering ${{ }} expressions (run: python bench/expr.py).

Prints the median of several repeats, per call, for the shapes a workflow uses most.
Not a test: nothing is asserted. Record the figures in bench/results-expr.md.
"""

from __future__ import annotations

import statistics
import timeit
from typing import Any

from engine.expr import compile_value
from engine.expr._compile import _compile_span


def fresh_compile(value: Any) -> Any:
    """Compile without the per-text cache, as for a text seen for the first time."""
    _compile_span.cache_clear()
    return compile_value(value)

CTX: dict[str, Any] = {
    "inputs": {"name": "Ada", "count": 3},
    "steps": {"ls": {"output": {"entries": [{"name": f"f{i}.txt"} for i in range(20)]},
                     "status": "succeeded"}},
    "item": {"name": "a.txt"}, "index": 4, "env": {}, "secrets": {}, "run": {"id": "r"},
}

CASES = [
    ("literal string (no expression)", "You review documents."),
    ("literal dict", {"path": ".", "recursive": True}),
    ("whole lookup  ${{ item.name }}", "${{ item.name }}"),
    ("whole lookup  ${{ steps.ls.output.entries }}", "${{ steps.ls.output.entries }}"),
    ("whole compare ${{ steps.ls.status == 'succeeded' }}",
     "${{ steps.ls.status == 'succeeded' }}"),
    ("interpolated, 2 lookups", "read ${{ item.name }} (#${{ index }})"),
    ("filter        ${{ steps.ls.output.entries | tojson }}",
     "${{ steps.ls.output.entries | tojson }}"),
    ("dict with 2 expressions", {"path": "${{ item.name }}", "n": "${{ index }}", "x": 1}),
]


def per_call_us(func: Any, number: int) -> float:
    runs = timeit.repeat(func, number=number, repeat=7)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    print(f"{'case':58} {'render µs':>10} {'compile µs':>11}")
    for label, value in CASES:
        compiled = compile_value(value)
        compiled.render(CTX)  # first render generates the code
        render = per_call_us(lambda c=compiled: c.render(CTX), 20_000)
        compile_ = per_call_us(lambda v=value: fresh_compile(v), 500)
        print(f"{label:58} {render:10.2f} {compile_:11.1f}")
    values = [{"prompt": f"Summarise ${{{{ steps.s{i}.output | tojson }}}} for "
                         "${{ inputs.topic }}",
               "if": f"${{{{ steps.s{i}.status == 'succeeded' }}}}"} for i in range(5000)]
    _compile_span.cache_clear()
    started = timeit.default_timer()
    for value in values:
        compile_value(value)
    took = timeit.default_timer() - started
    print(f"{'compile 5,000 steps x 3 expressions (2 distinct per step)':58} "
          f"{took * 1e3:10.0f} ms")
    cached = per_call_us(lambda: compile_value(values[0]), 500)
    print(f"{'compile again a value whose texts were seen (cache hit)':58} {cached:10.1f}")
    first = per_call_us(lambda: fresh_compile("${{ inputs.count + 1 }}").render(CTX), 300)
    print(f"{'compile + first render (code generation), an operator':58} {first:10.1f}")


if __name__ == "__main__":
    main()
