"""`plait batch` under load: the rows of a long batch do not each hold a task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from runners.batch import BatchControl, Row, run_local

WORKFLOW = """\
version: 1
name: rows
inputs:
  who: {type: string}
steps:
  a: {run: "echo ${{ inputs.who }}"}
"""


def test_a_long_batch_holds_a_task_per_worker_not_per_row(tmp_path: Path) -> None:
    """run_local started one task per row up front (each waiting for the limiter): 200,000
    rows held over a GB before the first ran. Now `concurrency` workers take the rows."""
    wf = tmp_path / "rows.yaml"
    wf.write_text(WORKFLOW)
    rows = [Row(n, {}) for n in range(1, 501)]  # each an input error: no command runs
    tasks: list[int] = []
    got: list[dict[str, Any]] = []

    def on_result(result: dict[str, Any]) -> None:
        tasks.append(len(anyio.get_running_tasks()))
        got.append(result)

    async def main() -> list[dict[str, Any]]:
        with anyio.fail_after(30):
            return await run_local(wf, rows, concurrency=3, control=BatchControl(),
                                   options={"state_location": ":memory:"},
                                   on_result=on_result)

    assert anyio.run(main) == []  # each result went to on_result, none is kept
    assert [r["line"] for r in got] == list(range(1, 501))
    assert all(r["status"] == "error" and "who" in r["error"]["message"] for r in got)
    assert max(tasks) < 20, max(tasks)


def test_results_given_to_on_result_are_not_kept(tmp_path: Path) -> None:
    """run_local kept every result after on_result had written it: a long batch's memory
    grew with all its outputs though the CLI had streamed them out."""
    wf = tmp_path / "rows.yaml"
    wf.write_text(WORKFLOW)
    got: list[int] = []

    async def main(on_result: Any) -> list[dict[str, Any]]:
        with anyio.fail_after(30):
            return await run_local(wf, [Row(n, {}) for n in range(1, 6)], concurrency=2,
                                   options={"state_location": ":memory:"},
                                   on_result=on_result)

    assert anyio.run(main, lambda r: got.append(r["line"])) == []
    assert got == [1, 2, 3, 4, 5]
    kept = anyio.run(main, None)  # without on_result: every result, in row order
    assert [r["line"] for r in kept] == [1, 2, 3, 4, 5]


def test_an_interrupted_batch_still_gives_every_row_a_result(tmp_path: Path) -> None:
    wf = tmp_path / "rows.yaml"
    wf.write_text(WORKFLOW)
    rows = [Row(n, {}) for n in range(1, 41)]
    control = BatchControl()

    results: list[dict[str, Any]] = []

    def on_result(result: dict[str, Any]) -> None:
        results.append(result)
        if result["line"] == 5:
            control.interrupt()

    async def main() -> list[dict[str, Any]]:
        with anyio.fail_after(30):
            return await run_local(wf, rows, concurrency=2, control=control,
                                   options={"state_location": ":memory:"},
                                   on_result=on_result)

    anyio.run(main)
    assert [r["line"] for r in results] == list(range(1, 41))
    statuses = [r["status"] for r in results]
    assert statuses[:5] == ["error"] * 5 and statuses[-1] == "interrupted"
    assert statuses.count("interrupted") >= 30
