"""Resume when the workflow's inputs changed since the run (the CLI's side is
tests/cli/test_resume_new_input.py). The rule: a resume runs with the run's inputs; an input
declared since is taken (given, or its default), as no finished step could have used it; any
other change is refused with a message that points one way (start a new run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError, StateError
from engine.state import RunStore
from tests.executor.test_semantics import run, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio

#: `a` finishes (and counts its runs in a.log), `b` fails until the workflow is changed
STEPS = """\
steps:
  a: {run: "echo ran >> a.log"}
  b:
    needs: [a]
    run: exit 1
"""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    with RunStore.open(tmp_path / "runs.db") as opened:
        yield opened


async def failed_run(tmp_path: Path, store: RunStore, inputs_block: str,
                     given: dict[str, Any]) -> tuple[Path, str]:
    path = workflow(tmp_path, inputs_block + STEPS)
    first = await run(path, given, store=store)
    assert first.status == "failed"
    return path, first.run_id


async def test_a_new_input_with_a_default_is_taken_without_being_given(
        tmp_path: Path, store: RunStore) -> None:
    """It was refused as 'differs from the run's; leave it out to reuse it', though it was
    left out."""
    path, run_id = await failed_run(tmp_path, store, "inputs:\n  n: {type: integer}\n",
                                    {"n": 1})
    path.write_text(path.read_text().replace(
        "  n: {type: integer}\n", "  n: {type: integer, description: how many}\n"
                                  "  level: {type: string, default: high}\n")
        .replace("run: exit 1", "run: test '${{ inputs.level }}' = high"))
    second = await run(path, store=store, resume=run_id)
    assert second.status == "succeeded"
    assert second.steps["a"].reason and "restored" in second.steps["a"].reason
    assert (tmp_path / "a.log").read_text() == "ran\n"
    assert store.get_run(run_id).inputs == {"n": 1, "level": "high"}


async def test_a_run_with_an_optional_input_left_unset_can_be_resumed(
        tmp_path: Path, store: RunStore) -> None:
    """Its recorded null was handed back as a value: 'must be of type string, got NoneType'."""
    path, run_id = await failed_run(
        tmp_path, store, "inputs:\n  note: {type: string, required: false}\n", {})
    path.write_text(path.read_text().replace("run: exit 1", "run: 'true'"))
    second = await run(path, store=store, resume=run_id)
    assert second.status == "succeeded"


@pytest.mark.parametrize(("before", "after", "given", "message", "hint"), [
    # another value for an input the run had
    ("  n: {type: integer}\n", "  n: {type: integer}\n", {"n": 2},
     "input 'n' differs from run {id}'s: the run had 1, given 2",
     "leave them out to reuse the run's values, or start a new run"),
    # an input the run had is no longer declared
    ("  n: {type: integer}\n  old: {type: string, default: x}\n", "  n: {type: integer}\n", {},
     "run {id} had input 'old', which the workflow no longer declares; a resume runs with the "
     "run's inputs", "declare it again to resume, or start a new run"),
    # its type changed: the recorded value does not fit
    ("  n: {type: integer}\n", "  n: {type: string}\n", {},
     "run {id}'s input 'n' does not fit the workflow any more: input 'n' must be of type "
     "string, got integer 1", "undo the change, or start a new run"),
    # it had no value, and now has a default
    ("  n: {type: integer}\n  note: {type: string, required: false}\n",
     "  n: {type: integer}\n  note: {type: string, default: hi}\n", {},
     "run {id} had no value for input 'note', and the workflow now gives it a default",
     "undo the change, or start a new run"),
])
async def test_a_change_to_the_inputs_a_run_had_is_refused_pointing_to_a_new_run(
        tmp_path: Path, store: RunStore, before: str, after: str, given: dict[str, Any],
        message: str, hint: str) -> None:
    path, run_id = await failed_run(tmp_path, store, "inputs:\n" + before, {"n": 1})
    path.write_text(path.read_text().replace(before, after))
    with pytest.raises(InputError) as caught:
        await run(path, given, store=store, resume=run_id)
    assert caught.value.message == message.format(id=run_id)
    assert hint in (caught.value.hint or "")
    assert (tmp_path / "a.log").read_text() == "ran\n"
    assert store.get_run(run_id).status == "failed"  # not claimed


async def test_a_finished_step_changed_to_use_the_new_input_refuses_the_resume(
        tmp_path: Path, store: RunStore) -> None:
    path, run_id = await failed_run(tmp_path, store, "inputs:\n  n: {type: integer}\n",
                                    {"n": 1})
    path.write_text(path.read_text().replace(
        "  n: {type: integer}\n", "  n: {type: integer}\n  extra: {type: string}\n")
        .replace("echo ran >> a.log", "echo ${{ inputs.extra }} >> a.log"))
    with pytest.raises(StateError, match=r"the workflow changed for finished step\(s\) a"):
        await run(path, {"extra": "x"}, store=store, resume=run_id)
