"""Arguments a filter, a test or range() cannot take are found when the file is loaded, not
when the step runs (after the steps before it have run, and been paid for)."""

from __future__ import annotations

import pytest

from engine.expr import ExprSyntaxErrors, compile_value


@pytest.mark.parametrize(("expr", "message", "hint"), [
    ("range(1, 2, 3, 4)", "wrong arguments for range(): too many positional arguments",
     "(start_or_stop, stop=0, step=1)"),
    ("range()", "wrong arguments for range(): missing a required argument", "start_or_stop"),
    ("inputs.s | truncate(1, 2, 3, 4, 5)", "wrong arguments for the truncate filter: too many",
     "(length=255, killwords=False, end='...', leeway=None)"),
    ("inputs.l | join(sep=',')", "the join filter: got an unexpected keyword argument 'sep'",
     "(d='', attribute=None)"),
    ("inputs.s | replace('a')", "the replace filter: missing a required argument: 'new'",
     "(old, new, count=None)"),
    ("inputs.d | tojson(sort=true)", "the tojson filter: got an unexpected keyword", "indent"),
    ("inputs.n is divisibleby(3, 4)", "wrong arguments for the divisibleby test", "(num)"),
])
def test_wrong_arguments_are_a_syntax_issue(expr: str, message: str, hint: str) -> None:
    text = f"Intro ${{{{ inputs.s }}}} then ${{{{ {expr} }}}}"
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(text)
    [issue] = info.value.issues
    assert message in issue.message
    assert issue.offset == text.index("then ${{") + len("then ")
    assert issue.hint is not None and hint in issue.hint


@pytest.mark.parametrize("expr", [
    "range(3) | list", "range(1, 9, 2) | list", "inputs.l | map('upper') | list",
    "inputs.l | map(attribute='a', default=1) | list", "inputs.l | selectattr('a', 'eq', 1)",
    "inputs.d | dictsort(false, 'value')", "inputs.s | default('x', true)",
    "inputs.n | round(2, 'floor')", "inputs.l | sum(attribute='a', start=0)",
    "inputs.s | int(0, 16)", "inputs.s | indent(4, first=true)", "inputs.d | tojson(2)",
    "inputs.d | tojson(indent=2)", "inputs.s | fromjson", "inputs.s | shquote",
    "inputs.l | sort(false, false, 'a')", "inputs.s | length", "inputs.n | abs",
    "inputs.s is defined", "inputs.n is divisibleby 3", "inputs.n is ge(1)",
    "inputs.s is in ['a']", "inputs.l | join(*inputs.l)", "'%s-%s' | format(1, 2)",
])
def test_arguments_a_filter_takes_still_compile(expr: str) -> None:
    compile_value(f"${{{{ {expr} }}}}")
