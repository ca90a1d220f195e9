"""Expression failures of a run, end to end: where they point in the workflow file (the
same place `plait validate` points for a spec error), and values that must render at all."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ExpressionError, SpecError
from engine.executor import run_workflow
from engine.spec.loader import load, load_text

PROMPT = """\
version: 1
name: t
providers:
  m: {kind: echo}
inputs:
  d: {type: object, default: {}}
steps:
  a:
    llm: m
    prompt: |
      Line one ${{ inputs.d | length }}
      Line two ${{ inputs.d | tojson }} and ${{ inputs.d.k | default(1) }}
      Line three ${{ inputs.d.nope }} then ${{ inputs.d | length }}
"""


def at(path: Path, needle: str) -> str:
    """`file:line:col` of the first `needle` in the file at `path`, found in its text."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"{path}:{number}:{line.index(needle) + 1}"
    raise AssertionError(f"{needle!r} is not in {path}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_a_failed_part_of_a_multi_line_prompt_is_located_like_a_spec_error(
        tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(PROMPT)
    result = await run_workflow(load(path), record_state=False)
    error = result.steps["a"].error
    assert error is not None
    message = error["message"]
    assert at(path, "${{ inputs.d.nope") == f"{path}:13:18"
    assert message.startswith(f"{path}:13:18: step 'a', `prompt`: expression "
                              "${{ inputs.d.nope }} failed: no key 'nope'")
    assert "Line" not in message and "length" not in message
    # the same place, as plait validate reports a mistake in that expression
    with pytest.raises(SpecError) as info:
        load_text(PROMPT.replace("inputs.d.nope", "inputs.d | nope"), str(path))
    assert info.value.issues[0].format().startswith(
        f"{path}:13:18: there is no filter named 'nope' in ${{{{ inputs.d | nope }}}}")


@pytest.mark.parametrize("prompt", [
    '"one\\ttwo\\n${{ inputs.d | length }} and \\"q\\" ${{ inputs.d.nope }}"',
    "'it''s ${{ inputs.d | length }} and ''q'' ${{ inputs.d.nope }}'",
    ">-\n      folded ${{ inputs.d | length }}\n      and then ${{ inputs.d.nope }}",
    "plain ${{ inputs.d | length }}\n      and then ${{ inputs.d.nope }}",
], ids=["double-quoted", "single-quoted", "folded", "plain"])
async def test_the_place_is_exact_in_every_style_of_string(tmp_path: Path, prompt: str) -> None:
    """Counting characters from the string's start went wrong where the text differs from
    the file: escapes (``\\n`` pointed at the line below), '' and folded lines."""
    path = tmp_path / "wf.yaml"
    path.write_text(PROMPT.split("    prompt: |")[0] + f"    prompt: {prompt}\n")
    result = await run_workflow(load(path), record_state=False)
    error = result.steps["a"].error
    assert error is not None
    assert error["message"].startswith(f"{at(path, '${{ inputs.d.nope')}: step 'a', `prompt`")
    path.write_text(path.read_text().replace("inputs.d.nope", "inputs.d | nope"))
    with pytest.raises(SpecError) as info:
        load(path)
    assert info.value.issues[0].format().startswith(f"{at(path, '${{ inputs.d | nope')}: ")


async def test_a_nested_value_names_its_key_and_place(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("""\
version: 1
name: t
policies:
  open: {level: low}
defaults:
  policy: open
inputs:
  d: {type: object, default: {}}
steps:
  a:
    run: ["true", "x ${{ inputs.d.gone }}"]
outputs:
  o:
    - fine
    - {deep: "the ${{ steps.a.output.nope }}"}
""")
    result = await run_workflow(load(path), record_state=False)
    error = result.steps["a"].error
    assert error is not None
    where = at(path, "${{ inputs.d.gone")
    assert error["message"].startswith(f"{where}: step 'a', `run[1]`: expression "
                                       "${{ inputs.d.gone }} failed")
    path.write_text(path.read_text().replace("inputs.d.gone", "inputs.d | length"))
    result = await run_workflow(load(path), record_state=False)
    assert result.status == "failed"
    assert result.error is not None
    where = at(path, "${{ steps.a.output.nope")
    assert result.error["message"].startswith(
        f"{where}: output 'o[1].deep': expression ${{{{ steps.a.output.nope }}}} failed")


async def test_a_provider_setting_that_fails_is_located(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("""\
version: 1
name: t
inputs:
  d: {type: object, default: {}}
providers:
  m: {kind: echo, model: "m-${{ inputs.d.model }}"}
steps:
  a: {llm: m, prompt: hi}
""")
    with pytest.raises(ExpressionError) as info:
        await run_workflow(load(path), record_state=False)
    where = at(path, "${{ inputs.d.model")
    assert str(info.value).startswith(f"{where}: provider 'm', `model`: expression "
                                      "${{ inputs.d.model }} failed: no key 'model'")


async def test_folded_nan_and_inf_render_like_computed_ones(tmp_path: Path) -> None:
    """`'nan' | float` is folded into a constant when the expression is compiled; it failed
    with "NameError: name 'nan' is not defined" at run time."""
    path = tmp_path / "wf.yaml"
    path.write_text("""\
version: 1
name: t
providers:
  m: {kind: echo}
inputs:
  s: {type: string, default: nan}
steps:
  a:
    llm: m
    prompt: "${{ 'nan' | float }} ${{ inputs.s | float }} ${{ 1e400 }} ${{ -1e400 }}"
outputs:
  folded: ${{ 'nan' | float }}
  computed: ${{ inputs.s | float }}
  inf: ${{ ['inf' | float, -1e400] }}
""")
    result = await run_workflow(load(path), record_state=False)
    assert result.status == "succeeded", result.error
    assert result.steps["a"].output == "echo: nan nan inf -inf"
    assert math.isnan(result.outputs["folded"]) and math.isnan(result.outputs["computed"])
    assert result.outputs["inf"] == [math.inf, -math.inf]


UNEXPECTED = """\
version: 1
name: t
policies:
  open: {{level: low}}
defaults:
  policy: open
steps:
  a:
    run: cat
    retry: {{attempts: 3, initial: 0, jitter: false, on: [{on}]}}
  b:
    foreach: ${{{{ [1] }}}}
    run: cat
    retry: {{attempts: 3, initial: 0, jitter: false, on: [{on}]}}
    continue_on_error: true
"""


@pytest.mark.parametrize("on", ["error", "step"])
async def test_the_kind_recorded_for_an_unexpected_error_is_the_one_retry_on_matches(
        tmp_path: Path, on: str) -> None:
    """A sandbox runner that breaks with a plain RuntimeError (a bug, not a PlaitError) is
    retried by `on: [error]`, but was recorded as kind `step` (which `on: [step]` did not
    retry). (The error was first an argument with a NUL byte, then stdin holding a lone
    surrogate: both are now a CommandFailed that says so.)"""
    from engine.executor.context import RunOptions
    from engine.executor.services import Services
    from engine.sandbox.base import CommandResult, PreparedCommand, Runner

    class Broken:
        name = "broken"

        def prepare(self, argv: Any, **_kw: Any) -> PreparedCommand:
            raise AssertionError("not called by run:")

        async def run(self, argv: Any, **_kw: Any) -> CommandResult:
            raise RuntimeError("the sandbox broke")

    class BrokenRunner(Services):
        def runner(self, name: str | None) -> Runner:
            return Broken()

    path = tmp_path / "wf.yaml"
    path.write_text(UNEXPECTED.format(on=on))
    wf = load(path)
    opts: dict[str, Any] = {"record_state": False, "keep_going": True}
    result = await run_workflow(wf, services=BrokenRunner(wf, RunOptions(**opts)), **opts)
    for sid in ("a", "b"):
        step = result.steps[sid]
        assert step.error is not None
        assert "RuntimeError: the sandbox broke" in step.error["message"]
        assert step.error["kind"] == "error"
        retried = [note for note in step.notes if note.get("event") == "retry"]
        assert step.attempts == (3 if on == "error" else 1)
        assert [note["kind"] for note in retried] == ["error"] * (step.attempts - 1)
