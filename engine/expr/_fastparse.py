"""A shortcut parser for the commonest expressions: ``a.b['c'] | f | g``.

Jinja's lexer and parser cost about 40 µs per expression; most workflow expressions are plain
lookups with perhaps a filter or two, and a 5,000-step workflow has many thousands of them.
For exactly that shape this module builds the same AST Jinja's parser would (a test compares
them node for node); anything else returns None and goes through Jinja's parser.
"""

from __future__ import annotations

import re

from jinja2 import nodes

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_WS = r"[ \t]*"
_STEP = re.compile(
    rf"{_WS}(?:\.{_WS}(?P<attr>{_NAME})"
    rf"|\[{_WS}(?:'(?P<sq>[^'\\\n]*)'|\"(?P<dq>[^\"\\\n]*)\"){_WS}\]"
    rf"|\|{_WS}(?P<filter>{_NAME}))")
_HEAD = re.compile(rf"{_WS}(?P<name>{_NAME})")
_TAIL = re.compile(rf"{_WS}")
#: names Jinja's parser does not turn into a Name node
_SPECIAL = frozenset({"true", "false", "True", "False", "none", "None", "not"})


def fast_parse(source: str) -> nodes.Expr | None:
    """The AST of ``source`` if it is a lookup chain with optional bare filters, else None."""
    head = _HEAD.match(source)
    if head is None or head.group("name") in _SPECIAL:
        return None
    node: nodes.Expr = nodes.Name(head.group("name"), "load", lineno=1)
    pos = head.end()
    filtering = False
    while True:
        step = _STEP.match(source, pos)
        if step is None:
            break
        pos = step.end()
        if step.group("filter") is not None:
            filtering = True
            node = nodes.Filter(node, step.group("filter"), [], [], None, None, lineno=1)
        elif filtering:
            return None  # `x | f.y` means something else: leave it to Jinja
        elif step.group("attr") is not None:
            node = nodes.Getattr(node, step.group("attr"), "load", lineno=1)
        else:
            key = step.group("sq") if step.group("sq") is not None else step.group("dq")
            if not key.isascii():
                return None
            node = nodes.Getitem(node, nodes.Const(key, lineno=1), "load", lineno=1)
    tail = _TAIL.match(source, pos)
    if tail is None or tail.end() != len(source):
        return None
    return node
