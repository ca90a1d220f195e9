"""Find the ``${{ ... }}`` spans in a string.

The end of an expression is the first ``}}`` outside quotes and outside brackets, the rule
Jinja's own lexer uses, so ``${{ {'a': {'b': 1}} }}`` and ``${{ '}}' }}`` work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN = "${{"
CLOSE = "}}"
_PAIRS = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Span:
    """One expression: ``text[start:end]`` is ``${{ ... }}``, ``source`` the inside."""

    start: int
    end: int
    source: str


@dataclass(frozen=True)
class ScanError:
    offset: int
    message: str


def _skip_string(text: str, i: int) -> int:
    """``text[i]`` is a quote; return the index after the closing quote, or -1."""
    quote = text[i]
    i += 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == quote:
            return i + 1
        i += 1
    return -1


_SPECIAL = re.compile(r"""['"()\[\]{}]""")


def _find_end(text: str, start: int) -> int | str:
    """Index of the closing ``}}`` for an expression whose body begins at ``start``.

    Returns an error message instead when the expression is not closed.
    """
    stack: list[str] = []
    i = start
    while True:
        found = _SPECIAL.search(text, i)
        if found is None:
            return "the expression is not closed: '}}' is missing"
        i = found.start()
        char = text[i]
        if char in "'\"":
            i = _skip_string(text, i)
            if i < 0:
                return "a string inside the expression is not closed"
            continue
        if not stack and text.startswith(CLOSE, i):
            return i
        if char in _PAIRS:
            stack.append(_PAIRS[char])
        else:
            if not stack:
                return f"unbalanced {char!r} in the expression: nothing to close"
            expected = stack.pop()
            if expected != char:
                return f"a bracket is not closed: expected {expected!r} before {char!r}"
        i += 1


def scan(text: str) -> tuple[list[Span], list[ScanError]]:
    """Every expression span in ``text``, and every malformed one."""
    spans: list[Span] = []
    errors: list[ScanError] = []
    pos = text.find(OPEN)
    while pos >= 0:
        body = pos + len(OPEN)
        end = _find_end(text, body)
        if isinstance(end, str):
            errors.append(ScanError(pos, end))
            break
        spans.append(Span(pos, end + len(CLOSE), text[body:end]))
        pos = text.find(OPEN, end + len(CLOSE))
    return spans, errors


_SHQUOTE = re.compile(r"\|\s*shquote\b")


def quoted_shquotes(command: str) -> list[int]:
    """Where a ``| shquote`` expression stands inside shell quotes in the `run:` string
    `command` (the offsets of its ``${{``). There the quotes shquote adds are literal (inside
    ``"..."``) or close the quote around them (inside ``'...'``), so ``$(...)`` in the value
    runs: ``echo "${{ x | shquote }}"`` with x ``$(touch p)`` touches p."""
    spans, _ = scan(command)
    found: list[int] = []
    quote = ""
    pos = 0
    for span in [*spans, Span(len(command), len(command), "")]:
        i = pos
        while i < span.start:
            char = command[i]
            if char == "\\" and quote != "'":
                i += 2
                continue
            if quote == "" and char in "'\"":
                quote = char
            elif char == quote:
                quote = ""
            i += 1
        if quote and _SHQUOTE.search(span.source):
            found.append(span.start)
        pos = span.end
    return found
