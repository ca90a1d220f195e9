"""Compile a spec value once; render it many times.

A compiled value is a small tree: literals (returned as they are), whole expressions (native
type kept), interpolated strings, and dicts/lists of those. Rendering walks the tree once and
evaluates each expression against the context; the *results* are data and are never scanned
for ``${{`` again (no second-order injection).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Undefined

from engine.errors import ExpressionError
from engine.expr import _limits as lim
from engine.expr._analyse import Analysis, parse
from engine.expr._env import GUARDED_CODE, PlaitEnvironment, is_lazy, listed, to_text
from engine.expr._scan import scan

_ENV = PlaitEnvironment()
_LIMIT_HINT = ("expressions may not build values larger than 1 MiB, integers larger than "
               f"{lim.MAX_INT_BITS} bits or more than {lim.MAX_ITEMS:,} items")


@dataclass(frozen=True)
class ExprSyntaxIssue:
    """One malformed expression found while compiling a value."""

    message: str
    #: where in the compiled value: dict keys and list indexes, outermost first
    subpath: tuple[str | int, ...] = ()
    #: character offset inside that string where the bad expression starts
    offset: int = 0
    hint: str | None = None


class ExprSyntaxErrors(Exception):
    """Every syntax issue found in one value, not only the first."""

    def __init__(self, issues: list[ExprSyntaxIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(issue.message for issue in self.issues))


# ---------------------------------------------------------------- evaluating one expression


class _Expr:
    """One ``${{ ... }}``: parsed at compile time, turned into code on first render."""

    __slots__ = ("_chain", "_head", "_lock", "_path", "_template", "builds_container", "expr",
                 "text")

    def __init__(self, text: str, expr: nodes.Expr, builds_container: bool) -> None:
        self.text = text
        self.expr = expr
        self.builds_container = builds_container
        self._path = _lookup_path(expr)
        if self._path is not None:  # split once: rendering runs per step and per item
            self._head = str(self._path[0])
            self._chain = tuple(zip(self._path[1::2], self._path[2::2], strict=True))
        self._template: Template | None = None
        self._lock = threading.Lock()

    def _code(self) -> Template:
        template = self._template
        if template is None:
            with self._lock:
                if self._template is None:
                    body = [nodes.Assign(nodes.Name("result", "store"), self.expr, lineno=1)]
                    self._template = _ENV.from_string(nodes.Template(body, lineno=1))
                template = self._template
        return template

    def _lookup(self, ctx: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
        """``a.b['c']``: the same getattr/getitem calls Jinja's code makes, minus its setup."""
        name = self._head
        value = ctx[name] if name in ctx else _ENV.undefined(name=name)
        for kind, key in self._chain:
            if type(value) is dict and key in value:
                value = value[key]  # plain data (the common case): no sandbox detour needed
            else:
                value = _ENV.getattr(value, key) if kind == "." else _ENV.getitem(value, key)  # type: ignore[arg-type]
        if type(value) is str:  # an existing string: only its size matters, nothing is built
            if len(value) > lim.MAX_OUTPUT:
                lim.check_size(len(value), "the result")
            return value
        if isinstance(value, Undefined):
            value._fail_with_undefined_error()
        return value

    def evaluate(self, ctx: Mapping[str, Any]) -> Any:
        path = self._path
        if path is not None:
            try:
                return self._lookup(ctx, path)
            except Exception as exc:
                raise self._error(exc) from exc
        lim.start_budget()
        try:
            template = self._code()
            context = template.new_context(ctx)  # type: ignore[arg-type]
            for _ in template.root_render_func(context):
                pass
            value = context.vars["result"]
            if isinstance(value, Undefined):
                value._fail_with_undefined_error()
            if is_lazy(value):
                value = listed(value)
            if isinstance(value, Mapping | list | tuple):
                # a literal or a filter may have put an undefined inside (e.g. a
                # map(attribute=...) that hit a missing or unsafe attribute)
                if self.builds_container:
                    lim.estimate_len(value)
                if _no_undefined(value):  # a lazy value inside: made a list, checked again
                    value = _with_lists(value)
                    _no_undefined(value)
            elif isinstance(value, str):
                lim.check_size(len(value), "the result")
            return value
        except Exception as exc:
            raise self._error(exc) from exc
        finally:
            lim.stop_budget()

    def _error(self, exc: Exception) -> ExpressionError:
        if isinstance(exc, ExpressionError):
            return exc
        return self._described(exc, _preview(str(exc)))

    def _described(self, exc: Exception, text: str) -> ExpressionError:
        """`exc` as an ExpressionError; `text` is its message, cut short (a value quoted in
        it may be megabytes). The expression is quoted short too, with the filter that
        failed named when one did (the quote may leave it out)."""
        where = f"expression {quote(self.text)}"
        name = _failing_filter(exc)
        failed = f"failed in the {name} filter" if name else "failed"
        if isinstance(exc, SecurityError):
            return ExpressionError(f"{where} is not allowed: {text}", expression=self.text,
                                   hint="expressions cannot reach Python internals "
                                   "(names starting with '_') or change data")
        if isinstance(exc, lim.LimitExceeded):
            return ExpressionError(f"{where} is too large: {text}", expression=self.text,
                                   hint=_LIMIT_HINT)
        if isinstance(exc, UndefinedError):
            return ExpressionError(f"{where} {failed}: {text}", expression=self.text,
                                   hint="use the default filter for values that may be "
                                   "missing, e.g. x | default('')")
        if isinstance(exc, RecursionError | MemoryError | OverflowError):
            return ExpressionError(f"{where} is too large or too deep: {type(exc).__name__}",
                                   expression=self.text, hint=_LIMIT_HINT)
        return ExpressionError(f"{where} {failed}: {type(exc).__name__}: {text}",
                               expression=self.text)


def quote(text: str, limit: int = 120) -> str:
    """One ``${{ ... }}`` as a message quotes it: on one line, and only its head and tail
    when it is longer than `limit` (the tail holds the last filters, the head what they
    read)."""
    flat = _NEWLINE.sub(" ", text)
    if len(flat) <= limit:
        return flat
    head, tail = limit * 6 // 10, limit * 3 // 10
    return f"{flat[:head].rstrip()} ... {flat[-tail:].lstrip()}"


_NEWLINE = re.compile(r"[ \t]*\r?\n\s*")


def _failing_filter(exc: BaseException) -> str | None:
    """The name of the filter `exc` was raised in (the innermost one), if any."""
    name = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is GUARDED_CODE:
            found = tb.tb_frame.f_locals.get("name")
            name = found if isinstance(found, str) else name
        tb = tb.tb_next
    return name


def _preview(text: str, limit: int = 300) -> str:
    """`text`, cut to `limit` characters: an error may quote a value of any size."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _lookup_path(expr: nodes.Expr) -> tuple[str | int, ...] | None:
    """``item.name`` -> ("item", ".", "name"); None for anything but a plain lookup chain."""
    steps: list[str | int] = []
    node: nodes.Node = expr
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            steps += [node.attr, "."]
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
            steps += [node.arg.value, "["]
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    steps.append(node.name)
    return tuple(reversed(steps))


def _no_undefined(value: Any, depth: int = 0) -> bool:
    """Fails on an undefined inside `value`; True when a lazy value (see is_lazy) is inside."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if depth > lim.MAX_WALK_DEPTH:
        return False
    lazy = False
    if isinstance(value, Mapping):
        for sub in value.values():
            lazy = _no_undefined(sub, depth + 1) or lazy
    elif isinstance(value, list | tuple):
        for sub in value:
            lazy = _no_undefined(sub, depth + 1) or lazy
    else:
        lazy = is_lazy(value)
    return lazy


def _with_lists(value: Any, depth: int = 0) -> Any:
    """`value` with the lazy values inside it made lists (its containers copied)."""
    if is_lazy(value):
        return listed(value)
    if depth > lim.MAX_WALK_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {key: _with_lists(sub, depth + 1) for key, sub in value.items()}
    if isinstance(value, list | tuple):
        items = [_with_lists(sub, depth + 1) for sub in value]
        return items if isinstance(value, list) else tuple(items)
    return value


# ---------------------------------------------------------------- the compiled tree


class _Node:
    __slots__ = ()

    def render(self, ctx: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class _Literal(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def render(self, ctx: Mapping[str, Any]) -> Any:
        return self.value


class _Whole(_Node):
    """A value that is exactly one expression: its result keeps its type."""

    __slots__ = ("expr", "offset")

    def __init__(self, expr: _Expr, offset: int) -> None:
        self.expr = expr
        self.offset = offset  # where ${{ starts in the string (spaces may come first)

    def render(self, ctx: Mapping[str, Any]) -> Any:
        try:
            return self.expr.evaluate(ctx)
        except ExpressionError as exc:
            _at(exc, self.offset)
            raise


def _at(exc: ExpressionError, offset: int) -> None:
    """Note `exc` as raised by the expression at `offset` of the string rendered (unless an
    inner string already did)."""
    if exc.offset is None:
        exc.offset = offset


class _Interpolated(_Node):
    """Text with expressions inside: each result is written into the string."""

    __slots__ = ("offsets", "parts")

    def __init__(self, parts: tuple[str | _Expr, ...], offsets: tuple[int, ...]) -> None:
        self.parts = parts
        self.offsets = offsets  # where each part starts in the string

    def render(self, ctx: Mapping[str, Any]) -> str:
        out: list[str] = []
        total = 0
        try:
            for part in self.parts:
                if isinstance(part, str):
                    text = part
                else:
                    value = part.evaluate(ctx)
                    if type(value) is str:
                        text = value
                    else:
                        try:
                            text = to_text(value)
                        except Exception as exc:
                            raise part._error(exc) from exc
                total += len(text)
                if total > lim.MAX_OUTPUT:
                    break
                out.append(text)
            else:
                return "".join(out)
        except ExpressionError as exc:
            _at(exc, self.offsets[len(out)])  # the part that failed: one per part written
            raise
        raise ExpressionError(
            f"the rendered text is larger than {lim.MAX_OUTPUT:,} characters",
            hint="pass large data to a step as a whole value (one expression) "
            "instead of writing it into a string")


class _Dict(_Node):
    __slots__ = ("items",)

    def __init__(self, items: tuple[tuple[Any, _Node], ...]) -> None:
        self.items = items

    def render(self, ctx: Mapping[str, Any]) -> dict[Any, Any]:
        out = {}
        key = None
        try:
            for key, node in self.items:
                out[key] = node.render(ctx)
        except ExpressionError as exc:
            exc.subpath = (key if isinstance(key, str | int) else str(key), *exc.subpath)
            raise
        return out


class _List(_Node):
    __slots__ = ("items", "kind")

    def __init__(self, items: tuple[_Node, ...], kind: type) -> None:
        self.items = items
        self.kind = kind

    def render(self, ctx: Mapping[str, Any]) -> Any:
        rendered = []
        try:
            for node in self.items:
                rendered.append(node.render(ctx))
        except ExpressionError as exc:
            exc.subpath = (len(rendered), *exc.subpath)
            raise
        return rendered if self.kind is list else self.kind(rendered)


@dataclass(frozen=True)
class Compiled:
    """A spec value with its expressions compiled. Immutable; render it as often as needed."""

    refs: frozenset[str]
    names: frozenset[str]
    is_literal: bool
    _root: _Node = field(repr=False, compare=False)
    #: secret names read as ``secrets.X`` / ``secrets['X']`` anywhere inside
    secrets: frozenset[str] = frozenset()
    #: input names read as ``inputs.X`` / ``inputs['X']`` anywhere inside
    inputs: frozenset[str] = frozenset()
    #: (step id, key) read as ``steps.X.output.key`` anywhere inside
    output_keys: frozenset[tuple[str, str]] = frozenset()
    #: (what, name) -> where the first expression that uses it is: the subpath of the string
    #: inside the value and the offset of its ``${{``; what is "steps", "inputs", "secrets",
    #: "names" (the top-level names: item, index, env, ...) or "output" (name "X.key")
    places: Mapping[tuple[str, str], tuple[tuple[str | int, ...], int]] = field(
        default_factory=dict, repr=False, compare=False)

    def place(self, what: str, name: str) -> tuple[tuple[str | int, ...], int] | None:
        """Where `name` (a step id for "steps", an input for "inputs", ...) is first used:
        the subpath of its string in the value, and the offset of its ``${{`` there."""
        return self.places.get((what, name))

    def render(self, ctx: Mapping[str, Any]) -> Any:
        """The value with every expression evaluated against ``ctx``.

        Raises :class:`engine.errors.ExpressionError` naming the failing expression.
        """
        try:
            return self._root.render(ctx)
        except RecursionError:
            raise ExpressionError("the value is nested too deeply to be rendered",
                                  hint="flatten the value") from None


# ---------------------------------------------------------------- compiling


@dataclass
class _Acc:
    refs: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    inputs: set[str] = field(default_factory=set)
    output_keys: set[tuple[str, str]] = field(default_factory=set)
    issues: list[ExprSyntaxIssue] = field(default_factory=list)
    places: dict[tuple[str, str], tuple[tuple[str | int, ...], int]] = field(
        default_factory=dict)


@functools.lru_cache(maxsize=4096)
def _compile_span(text_of: str, source: str) -> tuple[Analysis, _Expr | None]:
    """Parse one ``${{ ... }}`` (cached: the same text is parsed, and turned into code, once).

    Sharing is safe: an analysis is not changed after this, and an _Expr is immutable apart
    from its lazily generated code, which is the same for the same text.
    """
    found = parse(_ENV, source)
    shown = quote(text_of)
    found.problems = [(f"{message} in {shown}", hint) for message, hint in found.problems]
    if found.expr is None or found.problems:
        return found, None
    return found, _Expr(text_of, found.expr, found.builds_container)


def _compile_string(text: str, path: tuple[str | int, ...], acc: _Acc) -> _Node:
    spans, errors = scan(text)
    for error in errors:
        fix = ("an expression ends with '}}', e.g. ${{ inputs.name }}"
               if "'}}'" in error.message else "check the brackets and quotes")
        acc.issues.append(ExprSyntaxIssue(error.message, path, error.offset, fix))
    if not spans:
        return _Literal(text)
    exprs: list[_Expr | None] = []
    for span in spans:
        found, expr = _compile_span(text[span.start:span.end], span.source)
        for message, hint in found.problems:
            acc.issues.append(ExprSyntaxIssue(message, path, span.start, hint))
        acc.refs |= found.refs
        acc.names |= found.names
        acc.secrets |= found.secrets
        acc.inputs |= found.inputs
        acc.output_keys |= found.output_keys
        for what, names in (("steps", found.refs), ("names", found.names),
                            ("secrets", found.secrets), ("inputs", found.inputs),
                            ("output", {f"{s}.{k}" for s, k in found.output_keys})):
            for name in names:
                acc.places.setdefault((what, name), (path, span.start))
        exprs.append(expr)
    if len(spans) == 1 and not text[:spans[0].start].strip() \
            and not text[spans[0].end:].strip():
        return _Whole(exprs[0], spans[0].start) if exprs[0] is not None else _Literal(text)
    parts: list[str | _Expr] = []
    offsets: list[int] = []
    pos = 0
    for span, expr in zip(spans, exprs, strict=True):
        if span.start > pos:
            parts.append(text[pos:span.start])
            offsets.append(pos)
        parts.append(expr if expr is not None else text[span.start:span.end])
        offsets.append(span.start)
        pos = span.end
    if pos < len(text):
        parts.append(text[pos:])
        offsets.append(pos)
    return _Interpolated(tuple(parts), tuple(offsets))


def _compile(value: Any, path: tuple[str | int, ...], acc: _Acc) -> _Node:
    if isinstance(value, str):
        return _compile_string(value, path, acc)
    if isinstance(value, Mapping):
        items = tuple((key, _compile(sub, (*path, key if isinstance(key, str | int) else str(key)),
                                     acc)) for key, sub in value.items())
        if all(isinstance(node, _Literal) for _, node in items):
            return _Literal(value)
        return _Dict(items)
    if isinstance(value, list | tuple):
        subs = tuple(_compile(sub, (*path, i), acc) for i, sub in enumerate(value))
        if all(isinstance(node, _Literal) for node in subs):
            return _Literal(value)
        return _List(subs, type(value))
    return _Literal(value)


def compile_value(value: Any) -> Compiled:
    """Compile every ``${{ }}`` inside ``value`` (walking dicts, lists and strings).

    Raises :class:`ExprSyntaxErrors` with *all* the malformed expressions found.
    """
    acc = _Acc()
    try:
        root = _compile(value, (), acc)
    except RecursionError:
        raise ExprSyntaxErrors([ExprSyntaxIssue(
            "the value is nested too deeply to be compiled", (), 0,
            "flatten it; a workflow value should not be hundreds of levels deep")]) from None
    if acc.issues:
        raise ExprSyntaxErrors(acc.issues)
    return Compiled(frozenset(acc.refs), frozenset(acc.names), isinstance(root, _Literal),
                    root, frozenset(acc.secrets), frozenset(acc.inputs),
                    frozenset(acc.output_keys), acc.places)


def step_refs(value: Any) -> frozenset[str]:
    """The step ids ``value``'s expressions refer to (``steps.X`` / ``steps['X']``)."""
    return compile_value(value).refs


_FALSE_TEXT = frozenset({"", "false", "0", "no", "off", "null", "none"})


def truthy(value: Any) -> bool:
    """How an ``if:`` result is judged.

    ``None``, ``False``, zero, empty containers and the strings "", "false", "0", "no",
    "off", "null", "none" (any case, surrounding spaces ignored) are false; all else is true.
    """
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_TEXT
    return bool(value)
