"""`if:` without ``${{ }}`` is text, and text is true: a condition written the GitHub Actions
way (`if: steps.x.output == 'yes'`) would let the step always run. It is a spec error."""

from __future__ import annotations

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text

HEAD = """\
version: 1
name: plain-if
providers:
  p: {kind: echo, model: echo}
steps:
  check: {llm: p, prompt: hi}
  act:
    llm: p
    prompt: go
"""


def test_a_bare_condition_is_refused_with_the_expression_to_write() -> None:
    text = HEAD + "    if: steps.check.output == 'yes'\n"
    with pytest.raises(SpecError) as info:
        load_text(text, "wf.yaml")
    [issue] = info.value.issues
    assert "`if:` is the plain text" in issue.message
    assert "always true" in issue.message
    assert (issue.location.line, issue.location.column) == (10, 9)
    assert issue.hint is not None
    assert "if: ${{ steps.check.output == 'yes' }}" in issue.hint


@pytest.mark.parametrize("value", ["'false'", "no", "'0'", "true", "yes", "'${{ true }}'",
                                   "\"${{ steps.check.output == 'yes' }}\""])
def test_truth_words_and_expressions_still_load(value: str) -> None:
    wf = load_text(HEAD + f"    if: {value}\n", "wf.yaml")
    assert "act" in wf.spec.steps
