"""A reference problem (an unknown step, an undeclared input or secret, `item` outside a
foreach, a step naming itself) is reported at the ``${{`` that makes it: inside a multi-line
prompt, a `with:` mapping written in flow style, a `needs:` list; not at the start of the
field that holds it."""

from __future__ import annotations

import pytest

from engine.errors import SpecError, SpecIssue
from engine.spec.loader import load_text

HEAD = """\
version: 1
name: refs
inputs:
  topic: {type: string, default: x}
providers:
  p: {kind: echo, model: echo}
mcp_servers:
  files: {command: plait-mcp-files}
steps:
  ok: {llm: p, prompt: hi}
"""


def issue_of(body: str, needle: str) -> SpecIssue:
    with pytest.raises(SpecError) as info:
        load_text(HEAD + body, "wf.yaml")
    found = [i for i in info.value.issues if needle in i.message]
    assert len(found) == 1, [i.format() for i in info.value.issues]
    return found[0]


def at(body: str, text: str, nth: int = 1) -> tuple[int, int]:
    """Line and column (1-based) of the `nth` `text` in the whole file."""
    whole = HEAD + body
    index = -1
    for _ in range(nth):
        index = whole.index(text, index + 1)
    return whole.count("\n", 0, index) + 1, index - whole.rfind("\n", 0, index)


def where(issue: SpecIssue) -> tuple[int, int]:
    return issue.location.line, issue.location.column


PROMPT = """\
  a:
    llm: p
    prompt: |
      Read this first.
      Then ${{ ok.output }} and ${{ THING }}.
"""


@pytest.mark.parametrize(("thing", "needle"), [
    ("steps.zz.output", "unknown step 'zz'"),
    ("inputs.topc", "input 'topc' is used but not declared"),
    ("secrets.TOKEN_X", "secret 'TOKEN_X' is used but not declared"),
    ("item.name", "item is used in a step without `foreach:`"),
    ("steps.a.output", "step 'a' refers to itself"),
])
def test_in_a_multi_line_prompt(thing: str, needle: str) -> None:
    body = PROMPT.replace("${{ ok.output }}", "${{ steps.ok.output }}").replace("THING", thing)
    issue = issue_of(body, needle)
    assert where(issue) == at(body, "${{", 2)
    assert issue.path == ("steps", "a", "prompt")


def test_in_a_flow_mapping_of_tool_arguments() -> None:
    body = ('  a: {tool: files.read_file, with: {path: x, n: "${{ inputs.n }}", '
            'q: "see ${{ steps.gone.output }}"}}\n')
    unknown = issue_of(body, "unknown step 'gone'")
    assert where(unknown) == at(body, "${{", 2)
    assert unknown.path == ("steps", "a", "with", "q")
    undeclared = issue_of(body, "input 'n'")
    assert where(undeclared) == at(body, "${{", 1)
    assert undeclared.path == ("steps", "a", "with", "n")


def test_at_the_needs_item_that_names_the_step() -> None:
    body = "  a: {llm: p, prompt: x, needs: [ok, a, gone]}\n"
    assert where(issue_of(body, "refers to itself")) == at(body, "a, gone")
    unknown = issue_of(body, "unknown step 'gone'")
    assert where(unknown) == at(body, "gone")
    assert unknown.path == ("steps", "a", "needs", 2)


def test_an_output_written_as_a_block() -> None:
    body = "outputs:\n  y: |\n    text\n    ${{ steps.nope.output }}\n"
    assert where(issue_of(body, "unknown step 'nope'")) == at(body, "${{")


def test_an_unknown_step_hint_lists_the_other_steps_when_none_is_close() -> None:
    body = "  a: {llm: p, prompt: \"${{ steps.zzz.output }}\"}\n  b: {llm: p, prompt: x}\n"
    issue = issue_of(body, "unknown step 'zzz'")
    assert issue.hint == "expected one of: b, ok"
    close = issue_of(body.replace("zzz", "okk"), "unknown step 'okk'")
    assert close.hint == "did you mean 'ok'?"


@pytest.mark.parametrize("name", ["item", "index"])
def test_item_or_index_in_an_output_is_refused_at_its_expression(name: str) -> None:
    # outputs are evaluated once, after every step: the run would fail at its very end
    body = (f"outputs:\n  all: ${{{{ steps.ok.output }}}}\n"
            f"  one: |\n    first\n    ${{{{ {name} }}}}\n")
    issue = issue_of(body, f"{name} is used in output 'one'")
    assert where(issue) == at(body, "${{", 2)
    assert issue.hint is not None and "foreach" in issue.hint


def test_item_or_a_step_output_in_provider_or_server_settings_is_refused_at_it() -> None:
    # they are rendered once, before any step: the run would stop before its first step
    text = HEAD.replace("  p: {kind: echo, model: echo}",
                        "  p: {kind: echo, model: echo, api_key: 'k ${{ item }}'}").replace(
        "{command: plait-mcp-files}", "{command: x, args: [a, '${{ steps.ok.output }}']}")
    with pytest.raises(SpecError) as info:
        load_text(text, "wf.yaml")
    by_message = {i.message: i for i in info.value.issues}
    item = by_message["item is used in the settings of provider 'p', evaluated once, before "
                      "any step"]
    assert item.path == ("providers", "p", "api_key")
    assert (item.location.line, item.location.column) == _at(text, "${{ item")
    step = by_message["provider and server settings cannot use step outputs (found steps.ok)"]
    assert step.path == ("mcp_servers", "files", "args", 1)
    assert (step.location.line, step.location.column) == _at(text, "${{ steps.ok")


def _at(text: str, needle: str) -> tuple[int, int]:
    index = text.index(needle)
    return text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)
