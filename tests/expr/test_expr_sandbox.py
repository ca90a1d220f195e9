"""Hostile expressions: each one really tries, and gets a clean error without running anything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ExpressionError
from engine.expr import ExprSyntaxErrors, compile_value
from engine.expr._analyse import parse
from engine.expr._compile import _ENV, _Expr
from engine.expr._env import PlaitUndefined


class Gadget:
    """An object with the usual escape hatches: a module-level function, an __init__."""

    def __init__(self) -> None:
        self.name = "gadget"
        self._private = "not for expressions"

    def hello(self) -> str:
        return "hi"


def module_function() -> None:
    """Its __globals__ holds `os`: the classic way out of a template sandbox."""


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def ctx(marker: Path) -> dict[str, Any]:
    return {"inputs": {"tags": ["a", "b"], "cmd": f"touch {marker}", "d": {"k": 1}},
            "item": Gadget(), "index": module_function, "steps": {}, "env": {},
            "secrets": {}, "run": {"id": "r"}}


def render(value: str, ctx: dict[str, Any]) -> Any:
    return compile_value(value).render(ctx)


def render_unchecked(value: str, ctx: dict[str, Any]) -> Any:
    """Evaluate one ``${{ }}`` skipping the compile-time checks, to test the sandbox itself."""
    source = value.strip()
    assert source.startswith("${{") and source.endswith("}}")
    found = parse(_ENV, source[3:-2])
    assert found.expr is not None, found.problems
    return _Expr(source, found.expr, found.builds_container).evaluate(ctx)


def fails_cleanly(value: str, ctx: dict[str, Any], marker: Path) -> ExpressionError:
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        render(value, ctx)
    # a bound on hanging, not a benchmark: the real figures are in bench/results-expr.md
    assert time.monotonic() - started < 10, "a hostile expression was not stopped"
    assert not marker.exists(), "a hostile expression executed a command"
    return info.value


UNSAFE_AT_RUNTIME = [
    "${{ item.__class__ }}",
    "${{ item.__class__.__mro__ }}",
    "${{ item.__init__.__globals__ }}",
    "${{ item.__init__.__globals__.os.system(inputs.cmd) }}",
    "${{ item.hello.__func__ }}",
    "${{ item.hello.__globals__['os'].system(inputs.cmd) }}",
    "${{ index.__globals__ }}",
    "${{ index.__globals__.os.system(inputs.cmd) }}",
    "${{ index.__code__ }}",
    "${{ index.__builtins__ }}",
    "${{ ''.__class__.__mro__[1].__subclasses__() }}",
    "${{ [].__class__.__base__.__subclasses__() }}",
    "${{ inputs.__class__ }}",
    "${{ range.__globals__ }}",
    "${{ range.__module__ }}",
    "${{ item['__class__'] }}",
    "${{ index['__globals__'] }}",
    "${{ item | attr('__class__') }}",
    "${{ (index | attr('__globals__'))['os'] }}",
    "${{ inputs.tags | map(attribute='__class__') | list }}",
    "${{ [item] | map(attribute='__init__') | list }}",
    "${{ [item, item] | sort(attribute='__class__') }}",
    "${{ [item] | selectattr('__class__') | list }}",
    "${{ (inputs.tags | map('upper')).gi_frame }}",
    "${{ (inputs.tags | map('upper')).gi_code }}",
    "${{ '{0.__class__}'.format(item) }}",
    "${{ '{0.__init__.__globals__[os]}'.format(item) }}",
    "${{ '{0.__globals__}'.format(index) }}",
    "${{ '{x.__class__}'.format_map({'x': item}) }}",
    "${{ inputs.tags.append('c') }}",
    "${{ inputs.tags.pop() }}",
    "${{ inputs.d.update({'k': 2}) }}",
    "${{ inputs.d.clear() }}",
    "${{ inputs.d.setdefault('z', 1) }}",
]


@pytest.mark.parametrize("value", UNSAFE_AT_RUNTIME)
def test_unsafe_access_is_refused(value: str, ctx: dict[str, Any], marker: Path) -> None:
    """Refused when the file is validated (dunder names) or else when rendered."""
    try:
        compiled = compile_value(value)
    except ExprSyntaxErrors as exc:
        assert "__" in value
        assert all("not allowed" in issue.message for issue in exc.issues)
    else:
        with pytest.raises(ExpressionError) as info:
            compiled.render(ctx)
        assert value in info.value.message
    assert not marker.exists()


@pytest.mark.parametrize("value", UNSAFE_AT_RUNTIME)
def test_the_sandbox_itself_blocks_unsafe_access(value: str, ctx: dict[str, Any],
                                                 marker: Path) -> None:
    """Defence in depth: with the compile-time checks skipped, the sandbox still refuses."""
    started = time.monotonic()
    with pytest.raises(ExpressionError) as info:
        render_unchecked(value, ctx)
    assert time.monotonic() - started < 10
    assert value in info.value.message
    assert not marker.exists(), "a hostile expression executed a command"
    assert ctx["inputs"] == {"tags": ["a", "b"], "cmd": f"touch {marker}", "d": {"k": 1}}


def test_underscore_keys_of_data_are_readable(ctx: dict[str, Any]) -> None:
    """JSON keys such as _id or _source are data, not internals."""
    ctx["steps"] = {"search": {"output": {"_id": 7, "_source": {"title": "t"}}}}
    assert render("${{ steps.search.output._id }}", ctx) == 7
    assert render("${{ steps.search.output['_source'].title }}", ctx) == "t"
    with pytest.raises(ExpressionError, match="unsafe"):
        render("${{ item._private }}", ctx)  # an object's private attribute is not data


REJECTED_AT_COMPILE = [
    "${{ __import__('os').system('true') }}",
    "${{ lipsum.__globals__ }}",
    "${{ lipsum.__globals__.os.popen('id').read() }}",
    "${{ cycler.__init__.__globals__.os }}",
    "${{ joiner.__init__.__globals__.os }}",
    "${{ namespace.__init__.__globals__.os }}",
    "${{ self }}",
    "${{ self._TemplateReference__context }}",
    "${{ config }}",
    "${{ config.items() }}",
    "${{ request.application.__globals__ }}",
    "${{ dict(a=1) }}",
    "${{ os.system('true') }}",
    "${{ open('/etc/passwd').read() }}",
    "${{ eval('1') }}",
    "${{ __builtins__ }}",
]


@pytest.mark.parametrize("value", REJECTED_AT_COMPILE)
def test_names_outside_the_context_are_syntax_issues(value: str) -> None:
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(value)
    assert any("unknown name" in issue.message for issue in info.value.issues)


def test_environment_has_only_the_range_global() -> None:
    assert set(_ENV.globals) == {"range"}
    assert _ENV.sandboxed
    for name in ("lipsum", "cycler", "joiner", "namespace", "dict"):
        assert name not in _ENV.globals


def test_rendering_unknown_names_fails_even_if_the_compiler_were_bypassed() -> None:
    """Defence in depth: the environment itself knows no lipsum/cycler/self/config."""
    for source in ("lipsum", "cycler", "config", "request"):
        template = _ENV.from_string("{{ " + source + " }}")
        with pytest.raises(Exception, match="undefined"):
            template.render()


LIMITS = [
    ("${{ 'a' * 10**9 }}", "too large"),
    ("${{ 10**9 * 'a' }}", "too large"),
    ("${{ ['a'] * 10**9 }}", "too large"),
    ("${{ 10 ** (10 ** 10) }}", "bits"),
    ("${{ 2 ** 100000 }}", "bits"),
    ("${{ (2 ** 4000) * (2 ** 4000) }}", "bits"),
    ("${{ 10.0 ** 1000 }}", "too large"),
    ("${{ range(10**9) }}", "items"),
    ("${{ range(200000) | list }}", "items"),
    ("${{ range(0, 10**6 * 10**3, 1) | list }}", "too large"),
    ("${{ '%999999999d' % 1 }}", "format width"),
    ("${{ '%*d' % (999999999, 1) }}", "'*' widths"),
    ("${{ '%999999999s' | format(1) }}", "format width"),
    ("${{ '{:999999999}'.format(1) }}", "format width"),
    ("${{ '{:{w}}'.format(1, w=5) }}", "nested replacement"),
    ("${{ 'x' | center(10**9) }}", "larger than the limit"),
    ("${{ 'x'.ljust(10**9) }}", "larger than the limit"),
    ("${{ 'x'.zfill(10**9) }}", "larger than the limit"),
    ("${{ ('a' * 1000000) | replace('a', 'aaa') }}", "replaced string"),
    ("${{ ('a' * 1000000).replace('a', 'aa') }}", "replaced string"),
    ("${{ ('\t' * 1000000).expandtabs(64) }}", "expandtabs"),
    ("${{ ('x\n' * 500000) | indent(100) }}", "indent"),
    ("${{ ('a' * 1000000) ~ ('a' * 1000000) }}", "concatenation"),
    ("${{ ('a' * 1000000) + ('a' * 1000000) }}", "concatenation"),
    ("${{ (['a' * 1000000] * 1000) | join }}", "larger than the limit"),
    ("${{ (['a' * 1000000] * 1000) | tojson }}", "larger than the limit"),
    ("${{ (['a' * 1000000] * 1000) | string }}", "larger than the limit"),
    ("${{ ','.join(['a' * 1000000] * 1000) }}", "larger than the limit"),
    ("${{ (['a' * 1000000] * 1000) | select | join }}", "larger than the limit"),
    ("${{ ''.join((['a' * 1000000] * 1000) | select) }}", "larger than the limit"),
    ("${{ (['a' * 1000000] * 1000) | reject('none') | tojson }}", "larger than the limit"),
    ("${{ ([['a'] * 1000000] * 1000) | select | sum(start=[]) }}", "the sum"),
    ("${{ '%s' % [('a' * 1000000)] * 3 }}", "too large"),
    ("${{ '{}{}'.format('a' * 1000000, 'a' * 1000000) }}", "larger than the limit"),
    ("${{ [1] | slice(10**6) | list }}", "items"),
    ("${{ ([[1] * 1000000] * 1000) | sum(start=[]) }}", "the sum"),
    ("${{ ('a' * 1000000).translate({97: 'b' * 1000}) }}", "translated string"),
    ("${{ (1).to_bytes(10**9, 'big') }}", "larger than the limit"),
    ("${{ [1] | batch(10**6) | list }}", "items"),
    ("x ${{ 'a' * 1000000 }} ${{ 'b' * 1000000 }}", "larger than"),
    ("${{ ['a' * 1000000] * 1000 }}", "larger than the limit"),
    # each field is under the width limit; together they are a gigabyte, built before the
    # result's size was checked (and never checked at all under a `| length`)
    ("${{ (('%(a)1000000s' * 1000) % {'a': 1}) | length }}", "formatted string"),
    ("${{ (('%(a)s' * 1000) % {'a': 'x' * 1000000}) | length }}", "formatted string"),
    ("${{ ('%(a)1000000s' * 1000) | format(a=1) | length }}", "formatted string"),
    ("${{ ('%.1000000f' * 1000) | format(*([1.0] * 1000)) | length }}", "formatted string"),
    ("${{ (('{0:1000000}' * 1000).format(1)) | length }}", "formatted string"),
    ("${{ (('{a}' * 1000).format(a='x' * 1000000)) | length }}", "formatted string"),
    ("${{ (('{a}' * 1000).format_map({'a': 'x' * 1000000})) | length }}", "formatted string"),
    # integers of millions of bits, which `//`, `%` and `divisibleby` took seconds each to
    # divide: only `**` and `*` were checked
    ("${{ ('f' * 1000000) | int(base=16) > 1 }}", "bits"),
    ("${{ (0).from_bytes(('f' * 1000000).encode(), 'big') > 1 }}", "bits"),
    # the wrapstring goes between every two lines: 300 MB built before the check
    ("${{ ('a ' * 300) | wordwrap(2, wrapstring='x' * 10**6) | length }}", "its wrapstring"),
    ("${{ ('a ' * 300) | wordwrap(2, False, 'x' * 10**6) | length }}", "its wrapstring"),
    # target and rel go into every link: 300 MB built before the check
    ("${{ ('www.a.com ' * 300) | urlize(target='x' * 10**6) | length }}", "target and rel"),
    ("${{ ('www.a.com ' * 300) | urlize(none, false, none, 'x' * 10**6) | length }}",
     "target and rel"),
    # the indent repeats on every line: 800 MB built before the result's size was checked
    ("${{ ([[1]] * 200) | tojson(indent=1000000) | length }}", "indented JSON"),
    ("${{ ([[1]] * 200) | tojson(indent='x' * 1000000) | length }}", "indented JSON"),
    ("${{ ([[[1] * 100]] * 1000) | tojson(indent=8) | length }}", "indented JSON"),
]


@pytest.mark.parametrize(("value", "needle"), LIMITS)
def test_size_limits_fail_fast(value: str, needle: str, ctx: dict[str, Any],
                               marker: Path) -> None:
    error = fails_cleanly(value, ctx, marker)
    assert needle in str(error)


def test_deeply_nested_data_is_refused_when_serialised(ctx: dict[str, Any],
                                                       marker: Path) -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    ctx["inputs"]["deep"] = deep
    fails_cleanly("${{ inputs.deep | tojson }}", ctx, marker)
    fails_cleanly("text ${{ inputs.deep }}", ctx, marker)
    # passing it through whole, unserialised, is fine: it is only a reference
    assert render("${{ inputs.deep }}", ctx) is deep


@pytest.mark.parametrize("value", [
    "${{ " + "(" * 300 + "1" + ")" * 300 + " }}",
    "${{ " + "[" * 300 + "]" * 300 + " }}",
    "${{ " + "not " * 2000 + "1 }}",
    "${{ " + "-" * 3000 + "1 }}",
    "${{ inputs.tags" + " | first" * 200 + " }}",
    "${{ " + " + ".join(["1"] * 2000) + " }}",
    "${{ " + "1 + " * 5000 + "1 }}",
])
def test_deep_nesting_is_a_syntax_issue(value: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(value)
    assert time.monotonic() - started < 10
    assert any("deep" in i.message or "long" in i.message for i in info.value.issues)


MANY_SMALL_OPERATIONS = [
    "[" + ", ".join(["range(100000) | list | string | length"] * 200) + "]",
    "[" + ", ".join(["range(100000) | list | reverse | sort | length"] * 180) + "]",
    "[" + ", ".join(["range(100000) | max"] * 400) + "]",
    "[" + ", ".join(["('ab' * 500000) | upper | length"] * 250) + "]",
    # each addition copies the growing list: quadratic (60,000 items took 2 s)
    "([[1]] * 300000) | sum(start=[]) | length",
]


#: comparing long strings that differ only at the end costs their length each time; the
#: budget counted one unit per item (a sort of 10,000 items took 30 s, `in` 2 s each)
_LONG = "(('a' * 999999) ~ 'b')"
_OTHER = "(('a' * 999999) ~ 'c')"
COMPARING_LONG_ITEMS = [
    f"('a' * 1000000) in ([{_LONG}] * 100000)",
    f"('a' * 1000000) not in ([{_LONG}] * 100000)",
    f"1 < 2 in ([{_LONG}] * 100000)",
    f"([{_LONG}] * 100000).count('a' * 1000000)",
    f"([{_LONG}] * 100000).index({_OTHER})",
    f"([{_LONG}, {_OTHER}] * 2500) | sort | length",
    f"([{_LONG}, {_OTHER}] * 2500) | select | sort | length",
    f"([{_LONG}] * 5000) | max | length",
    f"([{_LONG}] * 100000) | select('equalto', 'a' * 1000000) | list | length",
    f"([[{_LONG}], [{_OTHER}]] * 2500) | sort | length",
]


@pytest.mark.parametrize("source", COMPARING_LONG_ITEMS)
def test_comparing_long_items_is_charged_by_their_length(source: str, ctx: dict[str, Any],
                                                         marker: Path) -> None:
    error = fails_cleanly("${{ " + source + " }}", ctx, marker)
    assert "too much work" in str(error)


@pytest.mark.parametrize("source", [
    "(('{:c}' * 20000).format(*range(19968, 39968))).encode('punycode') | length",
    "(('{:c}' * 20000).format(*range(19968, 39968))).encode('PunyCode') | length",
    "('a' * 20000 ~ '-').encode().decode(encoding='punycode') | length",
])
def test_punycode_is_charged_by_the_square_of_its_length(source: str, ctx: dict[str, Any],
                                                         marker: Path) -> None:
    """Its time grows with the square of the text: 20,000 characters took a minute."""
    error = fails_cleanly("${{ " + source + " }}", ctx, marker)
    assert "too much work" in str(error)


def test_membership_and_comparisons_still_work(ctx: dict[str, Any]) -> None:
    ctx["inputs"]["big"] = {f"k{i}": "v" * 100 for i in range(20000)}  # 2 MB: one lookup
    assert render("${{ 'k5' in inputs.big and 'zz' not in inputs.big }}", ctx) is True
    assert render("${{ 'b' in 'abc' and 3 not in [1, 2] and 'a' in inputs.tags }}", ctx) is True
    assert render("${{ 1 < 2 in [2, 3] }}", ctx) is True
    assert render("${{ 1 > 2 in 5 }}", ctx) is False  # the chain stops before `2 in 5`
    assert render("${{ 2 in [1, 2] == true }}", ctx) is False  # Python's chain: [1, 2] == true
    assert render("${{ ['b', 'a', 'c'] | sort | join }}", ctx) == "abc"
    assert render("${{ [3, 1, 2] | select('gt', 1) | list }}", ctx) == [3, 2]


@pytest.mark.parametrize("source", MANY_SMALL_OPERATIONS)
def test_many_small_operations_hit_the_work_budget(source: str, ctx: dict[str, Any],
                                                   marker: Path) -> None:
    """Each operation is under the size limits; together they would burn CPU for a minute."""
    error = fails_cleanly("${{ " + source + " }}", ctx, marker)
    assert "too much work" in str(error)


def test_the_work_budget_is_per_evaluation(ctx: dict[str, Any]) -> None:
    """A large but legitimate value still renders, again and again."""
    ctx["inputs"]["big"] = ["x" * 1000] * 900  # about 0.9 MiB of JSON
    compiled = compile_value("${{ inputs.big | tojson }}")
    for _ in range(5):
        assert len(compiled.render(ctx)) > 900_000
    assert len(compile_value("a ${{ 'x' * 1000000 }} b").render(ctx)) == 1_000_004


def test_limits_leave_normal_values_alone(ctx: dict[str, Any]) -> None:
    assert render("${{ 'ab' * 3 }}", ctx) == "ababab"
    assert render("${{ 2 ** 64 }}", ctx) == 2**64
    assert render("${{ '%05d' % 42 }}", ctx) == "00042"
    assert render("${{ '{:>6}'.format('ab') }}", ctx) == "    ab"
    assert render("${{ 'a-b' | replace('-', '+') }}", ctx) == "a+b"
    assert render("${{ range(1000) | list | length }}", ctx) == 1000
    assert render("${{ 'x' | center(5) }}", ctx) == "  x  "
    assert render("${{ [1, 2, 3, 4] | batch(2) | list }}", ctx) == [[1, 2], [3, 4]]
    assert len(render("${{ 'a' * 1000000 }}", ctx)) == 1_000_000
    # big numbers are fine where they do not size anything
    assert render("${{ '{:,}'.format(5000000) }}", ctx) == "5,000,000"
    assert render("${{ ('%s=%s' % ('a' * 600000, 'b')) | length }}", ctx) == 600_002
    assert render("${{ '%(k)s: %(v)05.1f%%' % {'k': 'x', 'v': 2.5} }}", ctx) == "x: 002.5%"
    assert render("${{ '{0}-{name}-{0}'.format('a' * 500000, name='n') | length }}",
                  ctx) == 1_000_003
    assert render("${{ '%s and %s' | format('a', 'b') }}", ctx) == "a and b"
    assert render("${{ '{a}-{b}'.format_map({'a': 1, 'b': 'x'}) }}", ctx) == "1-x"
    assert render("${{ 'ff' | int(base=16) }}", ctx) == 255
    assert 'target="_blank"' in render("${{ 'see www.a.com' | urlize(target='_blank') }}", ctx)
    assert "x" * 100 in render("${{ 'see www.a.com' | urlize(rel='x' * 100) }}", ctx)
    assert render("${{ ([[1, 2]] * 1000) | sum(start=[]) | length }}", ctx) == 2000
    assert render("${{ ('ab ' * 3) | wordwrap(3, wrapstring='<br>') }}", ctx) == "ab<br>ab<br>ab"
    assert render("${{ 'a\0b c' | wordwrap(3, False, '--') }}", ctx) == "a\0b--c"
    assert render("${{ 'bücher'.encode('punycode').decode() }}", ctx) == "bcher-kva"
    assert render("${{ ('é' * 1000).encode('utf-8') | length }}", ctx) == 2000
    for value in ({"a": [1, {"b": []}], "c": {}}, [[1, 2], [], [[3]]], [], 5, "x"):
        ctx["inputs"]["v"] = value
        for indent in (0, 2, "\t"):
            assert render(f"${{{{ inputs.v | tojson(indent={indent!r}) }}}}",
                          ctx) == json.dumps(value, indent=indent)
    assert render("${{ ('f' * 1000) | int(base=16) > 1 }}", ctx) is True
    assert render("${{ inputs.nope | default(10**9) }}", ctx) == 10**9
    assert render("${{ 10**12 + 1 }}", ctx) == 10**12 + 1
    assert render("${{ [10**9, 5] | max }}", ctx) == 10**9
    assert render("${{ range(10**9, 10**9 + 3) | list }}", ctx) == [10**9, 10**9 + 1,
                                                                    10**9 + 2]


def test_no_process_or_file_effects(ctx: dict[str, Any], marker: Path) -> None:
    """A sweep over every hostile payload leaves no trace on disk."""
    for value in UNSAFE_AT_RUNTIME:
        with pytest.raises(ExpressionError):
            render_unchecked(value, ctx)
    assert not marker.exists()
    assert os.path.isdir(marker.parent)


def test_did_you_mean_skips_long_keys() -> None:
    """difflib's time grows with the product of the lengths, and keys and name can both be
    data: a long one gets no suggestion (three 20,000-character keys took 0.4 s, and a
    tool's reply may hold thousands; the message is cut to 300 characters anyway)."""
    long_key = "".join(chr(0x4E00 + (i * 7919) % 2000) for i in range(20000))
    data = {long_key[::-1]: 1, long_key: 2, "title": 3}
    message = PlaitUndefined(obj=data, name=long_key[:-1] + "x")._undefined_message
    assert message.startswith("no key ")
    assert "did you mean" not in message
    message = PlaitUndefined(obj=data, name="titel")._undefined_message
    assert "did you mean 'title'?" in message
