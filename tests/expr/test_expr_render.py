"""Rendering compiled values: native types, interpolation, filters, data never re-rendered."""

from __future__ import annotations

import math
from typing import Any

import pytest

from engine.errors import ExpressionError
from engine.expr import compile_value, truthy
from engine.expr._env import const_source


@pytest.fixture
def ctx() -> dict[str, Any]:
    return {
        "inputs": {"name": "Ada", "count": 3, "flag": False, "tags": ["x", "y"]},
        "steps": {
            "ls": {"output": {"entries": [{"name": "a.txt"}, {"name": "b.md"}],
                              "items": 7, "keys": ["k"]},
                   "status": "succeeded", "usage": {"tokens": 12}, "error": None},
            "fetch-page": {"output": "<html>", "status": "failed",
                           "error": "boom"},
        },
        "item": {"name": "a.txt", "size": 10},
        "index": 4,
        "env": {"HOME_DIR": "/home/x"},
        "secrets": {"TOKEN": "s3cret"},
        "run": {"id": "run-1", "started_at": "2026-01-01T00:00:00Z"},
    }


@pytest.mark.parametrize(("value", "expected"), [
    ("${{ steps.ls.output.entries }}", [{"name": "a.txt"}, {"name": "b.md"}]),
    ("${{ inputs.count }}", 3),
    ("${{ inputs.flag }}", False),
    ("${{ steps.ls.error }}", None),
    ("${{ {'a': [1, 2]} }}", {"a": [1, 2]}),
    ("  ${{ inputs.count }}\n", 3),  # surrounding whitespace keeps the native type
    ("${{ inputs.count + 1 }}", 4),
    ("${{ inputs.count > 2 and not inputs.flag }}", True),
    ("${{ item.size * index }}", 40),
    ("${{ inputs.tags | length }}", 2),
    ("${{ inputs.tags | join(', ') }}", "x, y"),
    ("${{ steps.ls.output.entries | map(attribute='name') | list }}", ["a.txt", "b.md"]),
    ("${{ range(3) | list }}", [0, 1, 2]),
    ("${{ '{\"a\": 1}' | fromjson }}", {"a": 1}),
    ("${{ steps['fetch-page'].status }}", "failed"),
    ("${{ steps.ls.usage.tokens }}", 12),
    ("${{ run.id }}", "run-1"),
    ("${{ env.HOME_DIR }}", "/home/x"),
    ("${{ secrets.TOKEN }}", "s3cret"),
    ("${{ '}}' }}", "}}"),
    ("${{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
    ("${{ '${{' }}", "${{"),
])
def test_whole_expression_keeps_its_type(ctx: dict[str, Any], value: str,
                                         expected: Any) -> None:
    result = compile_value(value).render(ctx)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("Hello ${{ inputs.name }}!", "Hello Ada!"),
    ("n=${{ inputs.count }} f=${{ inputs.flag }}", "n=3 f=False"),
    ("files: ${{ steps.ls.output.entries }}", 'files: [{"name": "a.txt"}, {"name": "b.md"}]'),
    ("tags ${{ inputs.tags }}", 'tags ["x", "y"]'),
    ("${{ item.name }}${{ index }}", "a.txt4"),
    ("none: ${{ steps.ls.error }}", "none: None"),
    ("json: ${{ {'k': 'é<b>'} | tojson }}", 'json: {"k": "é<b>"}'),
    ("a ~ b: ${{ 'x' ~ 1 ~ [1] }}", "a ~ b: x1[1]"),
    ("no expression here, just {{ braces }} and $", "no expression here, just {{ braces }} and $"),
])
def test_interpolation(ctx: dict[str, Any], value: str, expected: str) -> None:
    assert compile_value(value).render(ctx) == expected


def test_tojson_is_plain_json_not_html(ctx: dict[str, Any]) -> None:
    rendered = compile_value("${{ \"<script>&'\" | tojson }}").render(ctx)
    assert rendered == '"<script>&\'"'
    assert compile_value("${{ {'a': 1} | tojson(indent=2) }}").render(ctx) == '{\n  "a": 1\n}'


def test_nested_structures_render_recursively(ctx: dict[str, Any]) -> None:
    value = {"path": "${{ item.name }}", "meta": {"n": "${{ index }}", "fixed": 1},
             "list": ["${{ inputs.tags }}", "x-${{ index }}", True]}
    compiled = compile_value(value)
    assert not compiled.is_literal
    assert compiled.render(ctx) == {"path": "a.txt", "meta": {"n": 4, "fixed": 1},
                                    "list": [["x", "y"], "x-4", True]}
    # the compiled value itself is untouched
    assert value["path"] == "${{ item.name }}"


@pytest.mark.parametrize("value", [None, 1, 2.5, True, "plain", ["a", {"b": "c"}], {}])
def test_literals_pass_through_untouched(value: Any) -> None:
    compiled = compile_value(value)
    assert compiled.is_literal
    assert compiled.refs == frozenset() and compiled.names == frozenset()
    assert compiled.render({}) is value


def test_rendered_data_is_never_rendered_again(ctx: dict[str, Any]) -> None:
    """Second-order injection: a step output holding ${{ }} text stays literal text."""
    ctx["steps"]["ls"]["output"] = {"text": "${{ secrets.TOKEN }}", "n": "${{ 1 + 1 }}"}
    whole = compile_value("${{ steps.ls.output.text }}").render(ctx)
    inside = compile_value("said: ${{ steps.ls.output.text }} / ${{ steps.ls.output }}")
    assert whole == "${{ secrets.TOKEN }}"
    text = inside.render(ctx)
    assert text == ('said: ${{ secrets.TOKEN }} / '
                    '{"text": "${{ secrets.TOKEN }}", "n": "${{ 1 + 1 }}"}')
    assert "s3cret" not in text
    # same for inputs, item and env values
    ctx["item"] = "${{ secrets.TOKEN }}"
    assert compile_value("x ${{ item }}").render(ctx) == "x ${{ secrets.TOKEN }}"


def test_dict_keys_win_over_dict_methods(ctx: dict[str, Any]) -> None:
    assert compile_value("${{ steps.ls.output.items }}").render(ctx) == 7
    assert compile_value("${{ steps.ls.output.keys }}").render(ctx) == ["k"]
    # without such a key, the method is still there
    assert compile_value("${{ item.items() | list }}").render(ctx) == [
        ("name", "a.txt"), ("size", 10)]


def test_default_filter_handles_missing_values(ctx: dict[str, Any]) -> None:
    assert compile_value("${{ steps.ls.output.missing | default('n/a') }}").render(ctx) == "n/a"
    assert compile_value("${{ inputs.nope | default(0) + 1 }}").render(ctx) == 1
    assert compile_value("${{ inputs.nope is defined }}").render(ctx) is False


@pytest.mark.parametrize(("value", "needle"), [
    ("${{ steps.ls.output.entires }}", "did you mean 'entries'"),
    ("${{ steps.ls.output.missing }}", "no key 'missing'"),
    ("x ${{ inputs.nope }}", "no key 'nope'"),
    ("${{ [inputs.nope] }}", "no key 'nope'"),
    ("${{ {'a': inputs.nope} }}", "no key 'nope'"),
    ("${{ steps.ls.output.entries[5] }}", "index 5 is out of range"),
    ("${{ item.name.nope.deeper }}", "nope"),
    ("${{ inputs.count / 0 }}", "ZeroDivisionError"),
    ("${{ 'x' | fromjson }}", "JSONDecodeError"),
    ("${{ inputs.nope if inputs.nope else 1 }}", "nope"),
])
def test_runtime_errors_name_the_expression(ctx: dict[str, Any], value: str,
                                            needle: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_value(value).render(ctx)
    assert needle in str(info.value)
    assert "${{" in info.value.message
    assert info.value.context["expression"].startswith("${{")


def test_missing_context_name_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="'item' is undefined"):
        compile_value("${{ item.name }}").render({"inputs": {}})
    with pytest.raises(ExpressionError, match="'inputs' is undefined"):
        compile_value("${{ inputs.a + 1 }}").render({})


def test_render_many_times_is_independent(ctx: dict[str, Any]) -> None:
    compiled = compile_value("#${{ index }}: ${{ item.name }}")
    results = [compiled.render({**ctx, "index": i, "item": {"name": f"f{i}"}})
               for i in range(50)]
    assert results == [f"#{i}: f{i}" for i in range(50)]


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), (None, False), (0, False), (1, True), (0.0, False),
    ("", False), ("  ", False), ("false", False), ("False", False), (" FALSE ", False),
    ("0", False), ("no", False), ("off", False), ("null", False), ("None", False),
    ("true", True), ("yes", True), ("anything", True), ("00", True),
    ([], False), ([0], True), ({}, False), ({"a": 1}, True),
])
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected


def test_if_expression_results_judged_by_truthy(ctx: dict[str, Any]) -> None:
    compiled = compile_value("${{ steps.ls.status == 'succeeded' }}")
    assert truthy(compiled.render(ctx)) is True
    ctx["steps"]["ls"]["status"] = "failed"
    assert truthy(compiled.render(ctx)) is False
    # a string that rendered to "false" is false too
    assert truthy(compile_value("${{ inputs.flag }}x").render(ctx)) is True
    assert truthy(compile_value("${{ 'false' }}").render(ctx)) is False


@pytest.mark.parametrize("source", [
    "${{ {'a': 1}[('a' * 200000)] }}", "${{ ('a' * 200000) | filesizeformat }}"])
def test_an_error_quotes_a_huge_value_cut_short(source: str) -> None:
    with pytest.raises(ExpressionError) as excinfo:
        compile_value(source).render({})
    assert len(excinfo.value.message) < 1000, len(excinfo.value.message)


def test_wordwrap_of_a_huge_word_is_refused_before_it_runs() -> None:
    """Its lines are counted before textwrap runs (500,000 of them took seconds, then
    passed): refused like any result with too many items."""
    with pytest.raises(ExpressionError, match="the lines of the wordwrap filter"):
        compile_value("${{ ('a' * 500000) | wordwrap(1) }}").render({})
    assert compile_value("${{ 'a b c' | wordwrap(1) }}").render({}) == "a\nb\nc"


# ---------------------------------------------------------------- folded constants


def _same(a: Any, b: Any) -> bool:
    """Equal, with nan equal to nan (the value is compared, not its identity)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list | tuple) and type(a) is type(b):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


@pytest.mark.parametrize(("folded", "computed"), [
    ("'nan' | float", "inputs.t.nan | float"),
    ("'inf' | float", "inputs.t.inf | float"),
    ("'-inf' | float", "inputs.t.minf | float"),
    ("1e400", "inputs.t.inf | float"),
    ("-1e400", "inputs.t.minf | float"),
    ("['nan' | float, 1.5]", "[inputs.t.nan | float, 1.5]"),
    ("{'a': ('inf' | float, 'x')}", "{'a': (inputs.t.inf | float, 'x')}"),
    ("-0.0", "inputs.t.zero | float * -1"),
])
def test_a_folded_constant_renders_as_the_same_value_computed_at_run_time(
        folded: str, computed: str) -> None:
    # Jinja folds an expression of constants into one constant written into generated code;
    # nan and inf used to be written as the names `nan` and `inf` (a NameError at run time)
    ctx = {"inputs": {"t": {"nan": "nan", "inf": "inf", "minf": "-inf", "zero": "0"}}}
    whole = compile_value(f"${{{{ {folded} }}}}").render(ctx)
    assert _same(whole, compile_value(f"${{{{ {computed} }}}}").render(ctx))
    text = compile_value(f"x ${{{{ {folded} }}}}").render(ctx)
    assert text == compile_value(f"x ${{{{ {computed} }}}}").render(ctx)
    assert "nan" in text.lower() or "inf" in text.lower() or "-0.0" in text


@pytest.mark.parametrize("value", [
    float("nan"), float("inf"), -float("inf"), -0.0, 1.5, complex(float("inf"), -1.0),
    pytest.param(10 ** 5000, id="5001-digit-int"), pytest.param(-(10 ** 5000), id="-huge-int"),
    True, None, "a'\"\n", (), (1,), [1, [2.5, float("nan")]],
    {1, 2}, set(), frozenset({"a"}), {"k": float("inf"), 2: (float("nan"),)}, range(2, 9, 3),
])
def test_every_constant_jinja_may_fold_is_written_as_source_that_round_trips(
        value: Any) -> None:
    # the types are the ones jinja.compiler.has_safe_repr lets the optimiser fold
    source = const_source(value)
    back = eval(source, {})  # the source is what the function under test wrote
    if isinstance(value, complex):
        assert (back.real, back.imag) == (value.real, value.imag)
    elif isinstance(value, set | frozenset):
        assert back == value
        assert type(back) is type(value)
    else:
        assert _same(value, back) or value == back
    if isinstance(value, float) and value == 0:
        assert math.copysign(1, back) == math.copysign(1, value)


@pytest.mark.parametrize(("value", "expected"), [
    ("${{ inputs.tags | map('upper') }}", ["X", "Y"]),
    ("${{ inputs.tags | reverse }}", ["y", "x"]),
    ("${{ inputs.tags | select('equalto', 'x') }}", ["x"]),
    ("${{ [1, 1, 2] | unique }}", [1, 2]),
    ("${{ range(3) }}", [0, 1, 2]),
    ("${{ item.keys() }}", ["name", "size"]),
    ("${{ item.items() }}", [("name", "a.txt"), ("size", 10)]),
    ("ids: ${{ inputs.tags | map('upper') }}", 'ids: ["X", "Y"]'),
    ("${{ {'k': inputs.tags | reverse, 'n': 1} }}", {"k": ["y", "x"], "n": 1}),
    ("${{ [inputs.tags | map('upper'), (range(2), 'z')] }}", [["X", "Y"], ([0, 1], "z")]),
    ("x ${{ {'k': inputs.tags | reverse} }}", 'x {"k": ["y", "x"]}'),
    ("${{ 'tags: ' ~ inputs.tags | reverse }}", 'tags: ["y", "x"]'),
])
def test_a_lazy_result_is_the_list_it_stands_for(ctx: dict[str, Any], value: str,
                                                 expected: Any) -> None:
    # it was the iterator itself: an output or a prompt read "<generator object
    # sync_do_map at 0x...>", and foreach refused it ("foreach needs a list, got generator")
    result = compile_value(value).render(ctx)
    assert result == expected
    assert type(result) is type(expected)


def test_a_lazy_result_is_bounded_like_a_list(ctx: dict[str, Any]) -> None:
    with pytest.raises(ExpressionError, match="the result would make 100,001 items"):
        compile_value("${{ ('x' * 200000) | map('upper') }}").render(ctx)


@pytest.mark.parametrize(("value", "what"), [
    ("${{ 'abc'.nope }}", "a string value"),
    ("${{ (3).nope }}", "an integer value"),
    ("${{ (2.5).nope }}", "a number value"),
    ("${{ true.nope }}", "a boolean value"),
    ("${{ [1].nope }}", "an array value"),
    ("${{ none.nope }}", "a null value"),
])
def test_no_attribute_names_the_type_as_json_does(value: str, what: str) -> None:
    """`${{ inputs.s.nope }}` on a string said `a str value has no attribute or key
    'nope'`: Python's type name, where plait words types as JSON/YAML do everywhere else."""
    with pytest.raises(ExpressionError) as info:
        compile_value(value).render({})
    assert f"{what} has no attribute or key 'nope'" in info.value.message, info.value.message
