"""Finding ``${{ ... }}`` spans: quotes, brackets and stray braces."""

from __future__ import annotations

import pytest

from engine.expr._scan import scan


@pytest.mark.parametrize(("text", "sources"), [
    ("${{ a }}", [" a "]),
    ("x ${{ a }} y ${{b}} z", [" a ", "b"]),
    ("${{ '}}' }}", [" '}}' "]),
    ('${{ "}}" ~ \'x\' }}', [' "}}" ~ \'x\' ']),
    ("${{ 'it\\'s }}' }}", [" 'it\\'s }}' "]),
    ("${{ {'a': {'b': [1, (2)]}} }}", [" {'a': {'b': [1, (2)]}} "]),
    ("${{ '${{' }} and ${{ 1 }}", [" '${{' ", " 1 "]),
    ("}} and {{ not ours }} ${ x }", []),
    ("${{a}}${{b}}", ["a", "b"]),
    ("line1\n${{ a\n | b }}\n", [" a\n | b "]),
])
def test_spans(text: str, sources: list[str]) -> None:
    spans, errors = scan(text)
    assert errors == []
    assert [s.source for s in spans] == sources
    for span in spans:
        assert text[span.start:span.end] == "${{" + span.source + "}}"


@pytest.mark.parametrize(("text", "offset", "message"), [
    ("${{ a", 0, "not closed"),
    ("ok ${{ a }} then ${{ 'x }}", 17, "string inside the expression is not closed"),
    ("${{ (a }}", 0, "expected ')' before '}'"),
    ("${{ a) }}", 0, "nothing to close"),
    ("${{ [a }} ]", 0, "expected ']' before '}'"),
])
def test_malformed(text: str, offset: int, message: str) -> None:
    _spans, errors = scan(text)
    assert len(errors) == 1
    assert errors[0].offset == offset
    assert message in errors[0].message
