"""Input errors speak the workflow's language: JSON/YAML type names (string, integer, number,
boolean, array, object, null) and values written as JSON, never Python's (str, dict,
NoneType, True, 'single quotes'). Library calls and sub-workflow `with:` values; the CLI's
-i and --inputs are in tests/cli/test_input_errors.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.executor.test_semantics import workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio

INPUTS = """\
inputs:
  n: {type: integer}
  x: {type: number, default: 1.5}
  flag: {type: boolean, default: false}
  tags: {type: array, default: []}
  opts: {type: object, default: {}}
  who: {type: string, default: you}
  mode: {type: string, enum: [fast, slow], default: fast}
  note: {type: string, required: false}
steps:
  a: {run: 'true'}
"""

#: what a Python message would have said: a type name or a repr that no workflow writes
_PYTHON = re.compile(r"\b(str|int|float|bool|dict|list|NoneType|None|True|False)\b|'")


@pytest.mark.parametrize(("given", "message", "hint"), [
    ({"n": "3"}, "input 'n' must be of type integer, got string \"3\"",
     'write the integer without quotes, e.g. {"n": 3}'),
    ({"n": 3.5}, "input 'n' must be of type integer, got number 3.5", "whole number"),
    ({"n": True}, "input 'n' must be of type integer, got boolean true", "whole number"),
    ({"n": 1, "x": "2.5"}, "input 'x' must be of type number, got string \"2.5\"",
     "without quotes"),
    ({"n": 1, "flag": "yes"}, "input 'flag' must be of type boolean, got string \"yes\"",
     "true"),
    ({"n": 1, "tags": {"a": 1}}, "input 'tags' must be of type array, got object {\"a\": 1}",
     "[1, 2]"),
    ({"n": 1, "opts": ["x"]}, "input 'opts' must be of type object, got array [\"x\"]",
     '{"key": "value"}'),
    ({"n": 1, "who": 7}, "input 'who' must be of type string, got integer 7", "text"),
    ({"n": 1, "mode": "medium"}, "input 'mode' must be one of \"fast\", \"slow\"; got "
                                 "\"medium\"", "one of those"),
    ({"n": None}, "input 'n' is required, got null", "integer"),
    ({"n": 1, "tags": (1, 2)}, "input 'tags' must be of type array, got Python tuple "
                               "(not a JSON value) [1, 2]", "[1, 2]"),
])
async def test_a_library_call_with_a_value_of_the_wrong_type_is_told_in_json_words(
        tmp_path: Path, given: dict[str, Any], message: str, hint: str) -> None:
    path = workflow(tmp_path, INPUTS)
    with pytest.raises(InputError) as caught:
        await run_workflow(load(path), given, record_state=False)
    assert caught.value.message == message
    assert hint in (caught.value.hint or "")
    said = caught.value.message.rpartition("got ")[2].replace("Python tuple", "")
    assert not _PYTHON.search(said), caught.value.message


@pytest.mark.parametrize(("value", "ok"), [([True], False), ([1], True), ([1.0], True),
                                           ({"on": 1}, False), ({"on": True}, True)])
async def test_an_enum_of_arrays_and_objects_tells_true_from_1(
        tmp_path: Path, value: Any, ok: bool) -> None:
    """Python's == holds [true] equal to [1]: the run took a value its enum does not list,
    and its steps rendered `[true]` where the workflow allows only `[1]`."""
    path = workflow(tmp_path, "inputs:\n  v: {type: array, enum: [[1], [2]]}\n"
                              "  o: {type: object, enum: [{on: true}], default: {on: true}}\n"
                              "steps:\n  a: {run: 'true'}\n")
    given = {"v": value} if isinstance(value, list) else {"v": [1], "o": value}
    if ok:
        result = await run_workflow(load(path), given, record_state=False)
        assert result.status == "succeeded"
        return
    with pytest.raises(InputError, match="must be one of"):
        await run_workflow(load(path), given, record_state=False)


async def test_null_is_not_given_for_an_input_that_is_not_required(tmp_path: Path) -> None:
    """JSON null for an input with a default takes the default; for one that is not required
    it stays null (it was a type error, 'got NoneType None')."""
    path = workflow(tmp_path, INPUTS + "outputs:\n  x: ${{ inputs.x }}\n"
                                       "  note: ${{ inputs.note }}\n")
    result = await run_workflow(load(path), {"n": 1, "x": None, "note": None},
                                record_state=False)
    assert result.status == "succeeded"
    assert result.outputs == {"x": 1.5, "note": None}


async def test_a_sub_workflow_given_a_value_of_the_wrong_type_names_the_step_and_the_fix(
        tmp_path: Path) -> None:
    workflow(tmp_path, "inputs:\n  n: {type: integer}\nsteps:\n  a: {run: 'true'}\n",
             name="child")
    path = workflow(tmp_path, "inputs:\n  v: {type: string, default: '3'}\nsteps:\n"
                              "  call:\n    workflow: child.yaml\n"
                              "    with: {n: '${{ inputs.v }}'}\n")
    result = await run_workflow(load(path), record_state=False)
    assert result.status == "failed"
    error = result.steps["call"].error
    assert error is not None
    assert error["message"] == ("sub-workflow child refused its inputs: input 'n' must be of "
                                "type integer, got string \"3\"")
    assert error["hint"].startswith("fix the `with:` of the step that calls it: write the "
                                    "integer without quotes")
