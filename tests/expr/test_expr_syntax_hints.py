"""An expression written in another language's syntax (GitHub Actions' `&&`, `||`, `!`,
`null`; JavaScript's `? :` and `===`) or cut short gets a hint that says how to write it."""

from __future__ import annotations

import pytest

from engine.expr import ExprSyntaxErrors, compile_value


def hint_of(expr: str) -> str | None:
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(f"${{{{ {expr} }}}}")
    [issue] = info.value.issues
    return issue.hint


@pytest.mark.parametrize(("expr", "hint"), [
    ("inputs.a && inputs.b", "write `and` instead of &&"),
    ("inputs.a || inputs.b", "write `or` instead of ||"),
    ("!inputs.a", "write `not x` instead of !x"),
    ("inputs.a ? 1 : 2", "write `a if condition else b` instead of condition ? a : b"),
    ("inputs.a === 1", "write == or != (there is no === or !==)"),
    ("inputs.a = 1", "compare with == (an expression cannot assign)"),
    ("{{ inputs.a }}", "write the expression once between ${{ and }}, without inner {{ }}"),
    ("inputs.a == null", "write none for null (and true, false for booleans)"),
    ("inputs.a.", "a dot is followed by a key, e.g. steps.fetch.output.title"),
    ("inputs.a +", "the expression ends too early: something is missing after its last "
                   "operator, filter bar or dot"),
    ("inputs.a | ", "the expression ends too early: something is missing after its last "
                    "operator, filter bar or dot"),
])
def test_the_hint_says_how_to_write_it(expr: str, hint: str) -> None:
    assert hint_of(expr) == hint


def test_operators_inside_a_string_are_text() -> None:
    assert hint_of("inputs.a ~ 'x && y = z' +") == (
        "the expression ends too early: something is missing after its last operator, "
        "filter bar or dot")


@pytest.mark.parametrize("expr", ["inputs.a != 1", "inputs.a if inputs.b else none",
                                  "not inputs.a and inputs.b or true", "inputs.a >= 2"])
def test_the_same_meaning_written_as_jinja_compiles(expr: str) -> None:
    compile_value(f"${{{{ {expr} }}}}")
