"""Compiling: step refs and names from the AST, and every syntax issue located."""

from __future__ import annotations

from typing import Any

import pytest

import engine.expr
from engine.expr import (
    Compiled,
    ExprSyntaxErrors,
    ExprSyntaxIssue,
    compile_value,
    step_refs,
)


def issues_of(value: Any) -> list[ExprSyntaxIssue]:
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(value)
    assert info.value.issues, "ExprSyntaxErrors without issues"
    return info.value.issues


def test_public_surface_is_locked() -> None:
    assert engine.expr.__all__ == (
        "CONTEXT_NAMES", "STEP_FIELDS", "Compiled", "ExprSyntaxErrors", "ExprSyntaxIssue",
        "compile_value", "quoted_shquotes", "step_refs", "truthy")
    for name in engine.expr.__all__:
        assert getattr(engine.expr, name) is not None


@pytest.mark.parametrize(("value", "refs"), [
    ("${{ steps.ls.output }}", {"ls"}),
    ("${{ steps['fetch-page'].output }}", {"fetch-page"}),
    ('${{ steps["a"].status == "ok" and steps.b.output }}', {"a", "b"}),
    ("x ${{ steps.a.output | tojson }} y ${{ steps.c.error | default('') }}", {"a", "c"}),
    ({"k": ["${{ steps.deep.output.x }}", {"z": "${{ steps.z.usage }}"}]}, {"deep", "z"}),
    ("${{ steps.a.output if inputs.x else steps.b.output }}", {"a", "b"}),
    ("${{ [steps.a.output, {'k': steps.b.output}] }}", {"a", "b"}),
    ("${{ inputs.steps }}", set()),  # not the steps context
    ("${{ item.steps.a }}", set()),
    ("${{ 'steps.fake.output' }}", set()),  # text inside a string literal is not a ref
    ("steps.plain.output without an expression", set()),
    ("${{ steps.a }}", {"a"}),
])
def test_step_refs_come_from_the_ast(value: Any, refs: set[str]) -> None:
    assert step_refs(value) == frozenset(refs)
    assert compile_value(value).refs == frozenset(refs)


def test_names_lists_top_level_context_names() -> None:
    compiled = compile_value(["${{ inputs.a ~ item.b }}", "${{ index + range(2)|length }}",
                              "${{ env.X }} ${{ secrets.Y }} ${{ run.id }}"])
    assert compiled.names == {"inputs", "item", "index", "range", "env", "secrets", "run"}
    assert isinstance(compiled, Compiled) and not compiled.is_literal


def test_secret_names_come_from_the_ast() -> None:
    compiled = compile_value({"h": "Bearer ${{ secrets.TOKEN }}",
                              "k": "${{ secrets['API-KEY'] | default(secrets.B) }}",
                              "x": "${{ inputs.secrets.NOT_ONE ~ 'secrets.NOR_THIS' }}"})
    assert compiled.secrets == {"TOKEN", "API-KEY", "B"}
    assert compile_value("plain").secrets == frozenset()


def test_compiled_is_immutable() -> None:
    compiled = compile_value("${{ inputs.a }}")
    with pytest.raises(AttributeError):
        compiled.refs = frozenset({"x"})  # type: ignore[misc]


@pytest.mark.parametrize(("value", "message", "hint"), [
    ("${{ step.a.output }}", "unknown name 'step'", "did you mean 'steps'?"),
    ("${{ input.name }}", "unknown name 'input'", "did you mean 'inputs'?"),
    ("${{ secret.X }}", "unknown name 'secret'", "did you mean 'secrets'?"),
    ("${{ steps.a.outputs }}", "has no field 'outputs'", "did you mean 'output'?"),
    ("${{ steps.a['stauts'] }}", "has no field 'stauts'", "did you mean 'status'?"),
    ("${{ steps }}", "'steps' must be followed by a step id", "computed id"),
    ("${{ steps[inputs.which].output }}", "'steps' must be followed", None),
    ("${{ steps | tojson }}", "'steps' must be followed", None),
    ("${{ steps[0] }}", "'steps' must be followed", None),
])
def test_name_problems_with_hints(value: str, message: str, hint: str | None) -> None:
    (issue,) = issues_of(value)
    assert message in issue.message
    assert value in issue.message  # the message shows the expression
    if hint is not None:
        assert issue.hint is not None and hint in issue.hint


@pytest.mark.parametrize(("value", "message"), [
    ("${{ }}", "the expression is empty"),
    ("${{ a + }}", "invalid expression"),
    ("${{ 1 2 }}", "after the expression"),
    ("${{ inputs.a", "not closed"),
    ("${{ 'abc }}", "string inside the expression is not closed"),
    ("${{ (1 }}", "not closed"),
    ("${{ 1) }}", "unbalanced ')'"),
    ("${{ inputs.a | nofilter }}", "there is no filter named 'nofilter'"),
    ("${{ inputs.a is notatest }}", "there is no test named 'notatest'"),
    ("${{ {% raw %} }}", "invalid expression"),
])
def test_malformed_expressions(value: str, message: str) -> None:
    (issue,) = issues_of(value)
    assert message in issue.message


def test_all_issues_are_collected_with_paths_and_offsets() -> None:
    value = {
        "ok": "${{ inputs.a }}",
        "prompt": "line one\nsee ${{ step.x.output }} and ${{ 1 + }}",
        "list": ["fine", {"deep": "abc ${{ nope }}"}],
        "open": "xy ${{ inputs.a",
    }
    issues = issues_of(value)
    located = sorted((i.subpath, i.offset) for i in issues)
    prompt = value["prompt"]
    assert located == sorted([
        (("prompt",), prompt.index("${{ step")),
        (("prompt",), prompt.index("${{ 1 +")),
        (("list", 1, "deep"), 4),
        (("open",), 3),
    ])


def test_several_problems_in_one_expression_are_all_reported() -> None:
    issues = issues_of("${{ stepz.a ~ inptus.b ~ steps.c.outptu }}")
    messages = " | ".join(i.message for i in issues)
    assert "'stepz'" in messages and "'inptus'" in messages and "'outptu'" in messages
    assert len(issues) == 3


def test_error_str_joins_messages() -> None:
    with pytest.raises(ExprSyntaxErrors, match="unknown name 'x'"):
        compile_value("${{ x }}")


def test_dollar_without_braces_and_plain_jinja_are_literal() -> None:
    for text in ["$5 and {{ x }}", "{% if x %}", "${ not_an_expression }", "$ {{ y }}"]:
        compiled = compile_value(text)
        assert compiled.is_literal
        assert compiled.render({}) == text


def test_absurdly_nested_values_are_an_issue_not_a_crash() -> None:
    deep: Any = "${{ inputs.a }}"
    for _ in range(5000):
        deep = [deep]
    (issue,) = issues_of(deep)
    assert "nested too deeply" in issue.message
    shallow: Any = "${{ inputs.a }}"
    for _ in range(100):
        shallow = {"k": shallow}
    assert compile_value(shallow).names == {"inputs"}


def test_deep_but_compilable_values_fail_cleanly_when_too_deep_to_render() -> None:
    from engine.errors import ExpressionError

    deep: Any = "${{ inputs.a }}"
    for _ in range(600):
        deep = {"k": [deep]}
    try:
        compiled = compile_value(deep)
    except ExprSyntaxErrors:
        return  # refused earlier: also fine
    try:
        rendered = compiled.render({"inputs": {"a": 1}})
    except ExpressionError as exc:
        assert "nested too deeply" in exc.message
    else:
        for _ in range(600):
            rendered = rendered["k"][0]
        assert rendered == 1


@pytest.mark.parametrize("text", ["${{ env.OPENAI_API_KEY }}", "${{ env['GITHUB_TOKEN'] }}",
                                  "${{ env.db_password | default('') }}"])
def test_a_secret_named_env_variable_is_a_spec_error(text: str) -> None:
    """Such a variable is kept out of `env`: it used to fail at run time with `no key`, and a
    hint to use `default`, which could only ever give the default."""
    [issue] = issues_of(text)
    name = issue.message.split(" ", 1)[0].removeprefix("env.")
    assert issue.message.startswith(f"env.{name} cannot be read: variables whose name looks "
                                    f"like a secret's are kept out of `env` in {text}")
    assert issue.hint == f"declare it under `secrets:` and read secrets.{name}"


def test_other_env_variables_are_fine() -> None:
    assert compile_value("${{ env.HOME ~ env['LANG'] ~ env.CI }}").is_literal is False
