"""An input used, scheduled or tested but not declared gets a hint that says how to declare
it, also when the workflow declares no input at all (it used to say only "no input is
defined")."""

from __future__ import annotations

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text

WF = """\
version: 1
name: w
{inputs}on:
  schedule:
    - cron: "0 7 * * *"
      inputs: {{foldr: x}}
steps:
  a: {{run: "echo ${{{{ inputs.x }}}}"}}
tests:
  - name: c
    inputs: {{y: 1}}
    assert: [{{max_steps: 1}}]
"""


def _hints(text: str) -> dict[str, str | None]:
    with pytest.raises(SpecError) as excinfo:
        load_text(text, "w.yaml")
    return {issue.dotted_path: issue.hint for issue in excinfo.value.issues}


def test_with_no_inputs_the_hints_say_how_to_declare_one() -> None:
    hints = _hints(WF.format(inputs=""))
    assert hints == {
        "on.schedule[0].inputs.foldr": "declare it: inputs: {foldr: {type: string}}",
        "steps.a.run": "declare it: inputs: {x: {type: string}}",
        "tests[0].inputs.y": "declare it under `inputs:`, or remove it from the case",
    }


def test_with_inputs_the_hints_name_the_closest() -> None:
    hints = _hints(WF.format(inputs="inputs:\n  folder: {default: a}\n  z: {default: b}\n"))
    assert hints["on.schedule[0].inputs.foldr"] == "did you mean 'folder'?"
    assert hints["steps.a.run"] == "expected one of: folder, z"
    assert hints["tests[0].inputs.y"] == "expected one of: folder, z"
