"""Parse one expression and read what it refers to, from Jinja's AST (never with regexes)."""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError
from jinja2.parser import Parser

from engine.expr._env import PlaitEnvironment
from engine.expr._fastparse import fast_parse
from engine.secrets import secret_named

#: the names an expression may use at its top level
CONTEXT_NAMES = frozenset({"inputs", "steps", "item", "index", "env", "secrets", "run"})
#: globals the environment provides on top of the context
GLOBAL_NAMES = frozenset({"range"})
#: what a step exposes: steps.<id>.output | status | usage | error
STEP_FIELDS = frozenset({"output", "status", "usage", "error"})
#: longest expression accepted (characters between ${{ and }})
MAX_SOURCE = 10_000
#: deepest expression tree accepted
MAX_DEPTH = 48


@dataclass
class Analysis:
    """What one parsed expression uses, and what is wrong with it."""

    expr: nodes.Expr | None = None
    refs: set[str] = field(default_factory=set)
    #: secret names read as secrets.X / secrets['X']
    secrets: set[str] = field(default_factory=set)
    #: input names read as inputs.X / inputs['X']
    inputs: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    #: (step id, key) read as steps.X.output.key / steps.X.output['key']
    output_keys: set[tuple[str, str]] = field(default_factory=set)
    problems: list[tuple[str, str | None]] = field(default_factory=list)
    #: it builds a list/dict/tuple literal, so an undefined may hide inside the result
    builds_container: bool = False


def _did_you_mean(word: str, choices: frozenset[str]) -> str | None:
    near = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"did you mean {near[0]!r}?" if near else None


def parse(env: PlaitEnvironment, source: str) -> Analysis:
    result = Analysis()
    if len(source) > MAX_SOURCE:
        result.problems.append((f"the expression is {len(source):,} characters long; the "
                                f"limit is {MAX_SOURCE:,}", "move the logic into a step"))
        return result
    if not source.strip():
        result.problems.append(("the expression is empty", "write e.g. ${{ inputs.name }}"))
        return result
    expr = fast_parse(source)
    if expr is not None:
        result.expr = expr
        _walk(expr, env, result)
        return result
    try:
        parser = Parser(env, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            token = parser.stream.current
            raise TemplateSyntaxError(f"unexpected {token.value!r} after the expression",
                                      token.lineno)
    except TemplateSyntaxError as exc:
        result.problems.append((f"invalid expression: {exc.message}",
                                _syntax_hint(source, exc.message or "")))
        return result
    except RecursionError:
        result.problems.append(("the expression is nested too deeply", None))
        return result
    result.expr = expr
    _walk(expr, env, result)
    return result


#: other languages' operators (GitHub Actions', JavaScript's, Python's) and Jinja's words
_FOREIGN = (
    (re.compile(r"&&"), "write `and` instead of &&"),
    (re.compile(r"\|\|"), "write `or` instead of ||"),
    (re.compile(r"===|!=="), "write == or != (there is no === or !==)"),
    (re.compile(r"(?:^|[^=!<>])!(?!=)"), "write `not x` instead of !x"),
    (re.compile(r"\?[^?]*:"), "write `a if condition else b` instead of condition ? a : b"),
    (re.compile(r"^\s*\{\{|\}\}\s*$"), "write the expression once between ${{ and }}, "
                                       "without inner {{ }}"),
    (re.compile(r"(?<![=!<>])=(?!=)"), "compare with == (an expression cannot assign)"),
)


_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _syntax_hint(source: str, message: str) -> str | None:
    """How to write what the parser refused, when it looks like another language's syntax or
    an expression cut short."""
    code = _STRINGS.sub("''", source)  # `'a && b'` is text, not an operator
    for pattern, hint in _FOREIGN:
        if pattern.search(code):
            return hint
    if "expected name or number" in message:
        return "a dot is followed by a key, e.g. steps.fetch.output.title"
    if "end of template" in message:
        return ("the expression ends too early: something is missing after its last "
                "operator, filter bar or dot")
    return None


def _step_ref(node: nodes.Node, root: str = "steps") -> str | None:
    """``steps.X`` or ``steps['X']`` -> ``X`` (or the same under another root name)."""
    if isinstance(node, nodes.Getattr):
        target, key = node.node, node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        target, key = node.node, node.arg.value
    else:
        return None
    if isinstance(target, nodes.Name) and target.name == root and isinstance(key, str):
        return key
    return None


def _const_key(node: nodes.Node) -> tuple[nodes.Node, object] | None:
    """``x.k`` or ``x['k']`` -> (x, 'k')."""
    if isinstance(node, nodes.Getattr):
        return node.node, node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.node, node.arg.value
    return None


def _output_key(node: nodes.Node) -> tuple[str, str] | None:
    """``steps.X.output.key`` -> ("X", "key")."""
    outer = _const_key(node)
    inner = _const_key(outer[0]) if outer is not None else None
    if outer is None or inner is None or inner[1] != "output" or not isinstance(outer[1], str):
        return None
    ref = _step_ref(inner[0])
    return (ref, outer[1]) if ref is not None else None


def _check_step_field(node: nodes.Node, ref: str, result: Analysis) -> None:
    """``steps.X.<field>``: the field must be one a step has."""
    if isinstance(node, nodes.Getattr):
        name: object = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        name = node.arg.value
    else:
        return
    if isinstance(name, str) and name not in STEP_FIELDS:
        fields = ", ".join(sorted(STEP_FIELDS))
        result.problems.append((f"steps.{ref} has no field {name!r} (a step has {fields})",
                                _did_you_mean(name, STEP_FIELDS)))


def _check_callable_names(node: nodes.Node, env: PlaitEnvironment, result: Analysis) -> None:
    """Unknown filters and tests would only fail when the code is generated: check now."""
    if isinstance(node, nodes.Filter) and node.name not in env.filters:
        result.problems.append((f"there is no filter named {node.name!r}",
                                _did_you_mean(node.name, frozenset(env.filters))))
    elif isinstance(node, nodes.Test) and node.name not in env.tests:
        result.problems.append((f"there is no test named {node.name!r}",
                                _did_you_mean(node.name, frozenset(env.tests))))
    elif isinstance(node, nodes.Filter | nodes.Test):
        what = "filter" if isinstance(node, nodes.Filter) else "test"
        table = env.filters if isinstance(node, nodes.Filter) else env.tests
        _check_arguments(node, f"the {node.name} {what}", table[node.name], result)


def _check_arguments(node: nodes.Filter | nodes.Test | nodes.Call, what: str,
                     func: Any, result: Analysis) -> None:
    """Arguments the filter, test or function cannot take (`x | truncate(1, 2, 3, 4, 5)`,
    `range(1, 2, 3, 4)`) would only fail when the step runs: check them now."""
    if node.dyn_args is not None or node.dyn_kwargs is not None or not callable(func):
        return
    func = _SIGNATURES.get(what, inspect.unwrap(func))
    # what Jinja passes first: the environment or context when asked for, then the value
    leading = 0 if isinstance(node, nodes.Call) else \
        1 + (getattr(func, "jinja_pass_arg", None) is not None)
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # a builtin without a signature: Jinja checks it
        return
    try:
        signature.bind(*([None] * (leading + len(node.args))),
                       **{str(kwarg.key): None for kwarg in node.kwargs})
    except TypeError as exc:
        shown = [str(p.replace(annotation=inspect.Parameter.empty))
                 for p in list(signature.parameters.values())[leading:]]
        result.problems.append((f"wrong arguments for {what}: {exc}",
                                f"it takes ({', '.join(shown)})"))


def _range(start_or_stop: int, stop: int = 0, step: int = 1, /) -> None:
    """The arguments range() takes (plait's safe_range passes *args on to range)."""


#: signatures to check against where the function's own says less
_SIGNATURES: dict[str, Callable[..., Any]] = {"range()": _range}


def _walk(root: nodes.Expr, env: PlaitEnvironment, result: Analysis) -> None:
    stack: list[tuple[nodes.Node, nodes.Node | None, int]] = [(root, None, 1)]
    while stack:
        node, parent, depth = stack.pop()
        if depth > MAX_DEPTH:
            result.problems.append((f"the expression is nested more than {MAX_DEPTH} levels "
                                    "deep", "split it into smaller steps"))
            return
        ref = _step_ref(node)
        secret = _step_ref(node, "secrets")
        if secret is not None:
            result.secrets.add(secret)
        read = _step_ref(node, "inputs")
        if read is not None:
            result.inputs.add(read)
        hidden = _step_ref(node, "env")
        if hidden is not None and secret_named(hidden):
            result.problems.append((
                f"env.{hidden} cannot be read: variables whose name looks like a secret's "
                "are kept out of `env`",
                f"declare it under `secrets:` and read secrets.{hidden}"))
        key = _output_key(node)
        if key is not None:
            result.output_keys.add(key)
        if ref is not None:
            result.refs.add(ref)
            if isinstance(parent, nodes.Getattr | nodes.Getitem) and parent.node is node:
                _check_step_field(parent, ref, result)
        elif isinstance(node, nodes.Name):
            _check_name(node, parent, result)
        elif isinstance(node, nodes.Filter | nodes.Test):
            _check_callable_names(node, env, result)
        elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) \
                and node.node.name in GLOBAL_NAMES and node.node.name in env.globals:
            _check_arguments(node, f"{node.node.name}()", env.globals[node.node.name], result)
        _check_private(node, result)
        if isinstance(node, nodes.List | nodes.Dict | nodes.Tuple):
            result.builds_container = True
        for child in node.iter_child_nodes():
            stack.append((child, node, depth + 1))


def _check_private(node: nodes.Node, result: Analysis) -> None:
    """`x.__class__`, `x['__globals__']`: refused before the run, not only by the sandbox.

    Only dunder names are refused here. A single leading underscore is common in JSON keys
    (`_id`, `_source`, `_links`), and reading such a key from data is fine; the sandbox still
    refuses `_`-prefixed attributes of any object that is not a mapping, at run time.
    """
    name: object = None
    if isinstance(node, nodes.Getattr):
        name = node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        name = node.arg.value
    if isinstance(name, str) and name.startswith("__"):
        result.problems.append((f"access to {name!r} is not allowed: names starting with '__' "
                                "are Python internals",
                                "expressions read data; they cannot reach Python objects"))


def _check_name(node: nodes.Name, parent: nodes.Node | None, result: Analysis) -> None:
    name = node.name
    if name == "steps":
        if parent is None or _step_ref(parent) is None:
            result.problems.append((
                "'steps' must be followed by a step id written out, e.g. steps.fetch.output",
                "plait reads the step ids from the expression to order the steps; "
                "a computed id cannot be known before the run"))
        result.names.add(name)
        return
    if name in CONTEXT_NAMES or name in GLOBAL_NAMES:
        result.names.add(name)
        return
    known = ", ".join(sorted(CONTEXT_NAMES | GLOBAL_NAMES))
    null = "write none for null (and true, false for booleans)" \
        if name in ("null", "nil", "undefined") else None
    result.problems.append((f"unknown name {name!r} (an expression can use {known})",
                            null or _did_you_mean(name, CONTEXT_NAMES | GLOBAL_NAMES)))
