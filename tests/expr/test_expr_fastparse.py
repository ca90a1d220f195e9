"""The shortcut parser builds exactly the AST Jinja's parser builds, or steps aside."""

from __future__ import annotations

import random

import pytest
from jinja2 import nodes
from jinja2.parser import Parser

from engine.expr._compile import _ENV
from engine.expr._fastparse import fast_parse


def jinja_ast(source: str) -> nodes.Expr:
    parser = Parser(_ENV, source, state="variable")
    expr = parser.parse_expression()
    assert parser.stream.eos
    return expr


@pytest.mark.parametrize("source", [
    "item", " steps.ls.output ", "steps['fetch-page'].output", 'a["b"].c | tojson',
    "x | length | default", "a . b|f|g", "inputs.n | int", "a.and.or.not.in.if",
    "steps.a['x y'].z", "_a._b", "a['']",
])
def test_same_ast_as_jinja(source: str) -> None:
    fast = fast_parse(source)
    assert fast is not None
    assert fast == jinja_ast(source)


@pytest.mark.parametrize("source", [
    "true", "None", "not x", "a.b()", "a | f(1)", "a.b == 1", "a | f.b", "x['a\\'b']",
    "a\n.b", "a.1", "a[0]", "x['é']", "a.béta", "a | f['k']", "a b", "a.", "a[", "a | ",
    "'s'", "1", "a ~ b", "(a)", "a.b.c if d else e", "-a",
])
def test_other_shapes_are_left_to_jinja(source: str) -> None:
    assert fast_parse(source) is None


def test_random_chains_match_jinja() -> None:
    rng = random.Random(3)
    names = ["a", "steps", "x_1", "_p", "output", "and", "true", "None", "Z9"]
    for _ in range(500):
        parts = [rng.choice(names[:5])]
        for _ in range(rng.randint(0, 5)):
            kind = rng.random()
            space = rng.choice(["", " ", "  ", "\t"])
            if kind < 0.4:
                parts.append(f"{space}.{space}{rng.choice(names)}")
            elif kind < 0.6:
                parts.append(f"{space}['{rng.choice(names)}-{rng.randint(0, 9)}']")
            else:
                parts.append(f"{space}|{space}{rng.choice(['length', 'tojson', 'list'])}")
        source = "".join(parts)
        fast = fast_parse(source)
        if fast is not None:
            assert fast == jinja_ast(source), source
