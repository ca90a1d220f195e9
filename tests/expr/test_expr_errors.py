"""Where a rendering error says it failed: the one ``${{ }}`` that failed (its offset in its
string, and the keys and indexes down to that string), quoted short, with its filter named."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ExpressionError
from engine.expr import ExprSyntaxErrors, compile_value

CTX: dict[str, Any] = {"inputs": {"s": "abc", "d": {"k": 1}, "l": [1, 2]}}

PROMPT = """\
Line one ${{ inputs.s }}
Line two ${{ inputs.s | upper }} and ${{ inputs.d.k }}
Line three ${{ inputs.d.nope }} then ${{ inputs.l | length }}
"""

LONG = ("${{ inputs.s | replace('a', 'b') | replace('c', 'd') | string | replace('1', '2') "
        "| replace('3', '4') | replace('5', '6') | replace('7', '8') | replace('9', '0') "
        "| fromjson }}")


def failure(value: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_value(value).render(CTX)
    return info.value


def test_an_error_in_a_long_template_names_only_the_part_that_failed() -> None:
    exc = failure(PROMPT)
    assert exc.offset == PROMPT.index("${{ inputs.d.nope }}")
    assert exc.subpath == ()
    assert exc.message.startswith("expression ${{ inputs.d.nope }} failed: no key 'nope'")
    for other in ("inputs.s", "upper", "length", "Line"):
        assert other not in exc.message


@pytest.mark.parametrize(("value", "subpath", "offset"), [
    ({"a": {"b": "ok ${{ inputs.s }}", "c": "x ${{ inputs.nope }}"}}, ("a", "c"), 2),
    (["${{ inputs.s }}", ["y", "  ${{ inputs.nope }}"]], (1, 1), 2),
    ({"env": {"K": "${{ inputs.d.k }}", 3: "${{ inputs.d.z }}"}}, ("env", 3), 0),
    ("${{ inputs.nope }}", (), 0),
])
def test_the_error_carries_the_path_and_offset_of_the_expression(
        value: Any, subpath: tuple[str | int, ...], offset: int) -> None:
    exc = failure(value)
    assert (exc.subpath, exc.offset) == (subpath, offset)


def test_an_error_of_the_whole_text_has_no_offset() -> None:
    # the rendered text is too large: no one expression failed
    exc = failure({"k": "${{ inputs.s }}" + "${{ 'x' * 600000 }}" * 2})
    assert exc.offset is None
    assert exc.subpath == ("k",)
    assert "rendered text is larger" in exc.message


def test_a_long_expression_is_quoted_by_its_head_and_tail_and_names_the_failed_filter() -> None:
    exc = failure(f"text before {LONG} and after")
    assert exc.offset == len("text before ")
    quoted = exc.message.split(" failed")[0].removeprefix("expression ")
    assert len(quoted) <= 120
    assert quoted.startswith("${{ inputs.s | replace('a', 'b')")
    assert quoted.endswith("| fromjson }}")
    assert " ... " in quoted
    assert " failed in the fromjson filter: JSONDecodeError: " in exc.message
    assert exc.context["expression"] == LONG  # the record keeps all of it


def test_a_multi_line_expression_is_quoted_on_one_line() -> None:
    exc = failure("${{ inputs.d\n     | attr('nope')\n     | upper }}")
    assert "${{ inputs.d | attr('nope') | upper }} failed" in exc.message


def test_a_spec_error_quotes_a_long_expression_the_same_way() -> None:
    bad = LONG.replace("fromjson", "fromjsn")
    with pytest.raises(ExprSyntaxErrors) as info:
        compile_value(f"x {bad}")
    (issue,) = info.value.issues
    assert issue.offset == 2
    # the filter at the end used to be cut off the quote (it kept the first 100 characters)
    assert issue.message.startswith("there is no filter named 'fromjsn' in ${{ inputs.s | ")
    assert issue.message.endswith("| fromjsn }}")
    assert len(issue.message.split(" in ", 1)[1]) <= 120
