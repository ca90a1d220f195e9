"""Diffs a person can read: a replay miss on a long multi-line prompt, and a snapshot of a
multi-line output, show the line that changed, not two copies of one huge JSON string."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cassettes.diff import readable, unified
from engine.executor import run_workflow
from engine.spec.loader import load
from runners.workflow_tests import run_case
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: long
inputs:
  n: {type: integer, default: 3}
providers:
  p: {kind: echo, model: m}
steps:
  big:
    llm: p
    prompt: |
      ${{ range(80) | map('string') | join(' a line of context, long enough to matter\\n') }}
      the number is ${{ inputs.n }}, ünïcödé ✓
      ${{ range(80) | map('string') | join(' a trailing line\\n') }}
outputs:
  text: ${{ steps.big.output }}
tests:
  - name: three
    cassette: tape
"""


def test_readable_keeps_one_line_values_as_json_and_splits_the_others() -> None:
    text = readable({"b": "one line", "a": "first\nsecond\n", "n": [1, None]})
    assert text.splitlines() == [
        "{",
        ' "a": (multi-line text),',
        "   | first",
        "   | second",
        "   | ",
        ' "b": "one line",',
        ' "n": [',
        "  1,",
        "  null",
        " ]",
        "}"]
    # a one-line change inside a long text is one removed and one added line
    lines = unified({"t": "a\nb\nc"}, {"t": "a\nB\nc"}, "old", "new", context=0)
    assert [line for line in lines if line[:1] in "-+" and line[:3] not in ("---", "+++")] \
        == ["-   | b", "+   | B"]


async def test_a_miss_on_a_long_multi_line_prompt_shows_the_changed_line(
        tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, FLOW))
    recorded = await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False)
    assert recorded.ok
    result = await run_workflow(wf, {"n": 4}, replay_dir=tmp_path / "tape",
                                record_state=False)
    error = result.steps["big"].error
    assert error is not None and error["type"] == "ReplayMiss"
    message = error["message"]
    assert "\n-     | the number is 3, ünïcödé ✓\n+     | the number is 4, ünïcödé ✓" \
        in message, message
    assert len(message) < 2000, message


async def test_a_changed_multi_line_output_diffs_line_by_line(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, FLOW))
    assert (await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False)).ok
    case = wf.spec.tests[0]
    assert (await run_case(wf, case, update=True)).status == "updated"
    snapshot = tmp_path / "__plait_snapshots__" / "wf.three.json"
    snapshot.write_text(snapshot.read_text(encoding="utf-8").replace("is 3", "is 2"),
                        encoding="utf-8")
    out = await run_case(wf, case)
    assert out.status == "failed"
    [problem] = out.problems
    assert "\n-      | the number is 2, ünïcödé ✓\n+      | the number is 3, ünïcödé ✓\n" \
        in problem, problem
    assert len(problem) < 2000, problem


async def test_a_snapshot_that_differs_only_in_layout_says_so(
        tmp_path: Path) -> None:
    """A hand-edited snapshot with other indentation holds the same outputs but is not the
    stored text plait writes: the case fails, saying so (no diff of identical values)."""
    wf = load(write_workflow(tmp_path, FLOW))
    assert (await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False)).ok
    case = wf.spec.tests[0]
    assert (await run_case(wf, case, update=True)).status == "updated"
    snapshot = tmp_path / "__plait_snapshots__" / "wf.three.json"
    snapshot.write_text(snapshot.read_text(encoding="utf-8").replace("  ", "    "),
                        encoding="utf-8")
    out = await run_case(wf, case)
    assert out.status == "failed"
    assert out.problems[0].endswith(
        "\nwf.three.json holds these outputs, but not in the layout plait writes (keys "
        "sorted, two-space indent, a final newline)"), out.problems[0]
