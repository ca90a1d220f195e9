"""The sandboxed Jinja2 environment every ``${{ }}`` expression is compiled in.

On top of Jinja's :class:`ImmutableSandboxedEnvironment` (no ``_``-prefixed or internal
attributes, no mutation of lists and dicts, sandboxed ``str.format``) it:

- removes every global except ``range`` (capped at 100,000 items);
- intercepts ``*``, ``**``, ``+`` and ``%`` and the ``~`` operator, and wraps filters and
  method calls, so results stay under the limits of :mod:`engine.expr._limits`;
- makes ``tojson`` plain JSON (no HTML escaping: prompts are not HTML) and adds ``fromjson``
  and ``shquote`` (one shell word, for values pasted into a ``run:`` command line);
- reads dict keys before dict methods, so ``output.items`` is the key ``items`` when it exists;
- uses a strict undefined that explains what was missing (and which keys exist).
"""

from __future__ import annotations

import codecs
import difflib
import functools
import itertools
import json
import math
import operator
import shlex
import types
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    ValuesView,
)
from typing import Any

from jinja2 import StrictUndefined
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS
from jinja2.nodes import Compare, Concat, Const
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from engine.expr import _limits as lim
from engine.jsontext import json_type

#: filters whose result is a string built from the whole value: the value's size is checked
_SERIALISING = frozenset({
    "string", "pprint", "escape", "e", "forceescape", "join", "urlencode", "xmlattr",
    "format", "center", "indent", "wordwrap", "replace", "capitalize", "lower", "upper",
    "title", "trim", "striptags", "urlize", "safe",
})


#: filters and str methods that pad to an integer width: the width is capped
_WIDTH_FILTERS = frozenset({"center"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
#: work units charged per item a filter iterates over (a Python-level call per item)
_ITEM_COST = 8
#: filters that compare the items of their input: what they cost grows with the items' length
_COMPARING = frozenset({"sort", "unique", "min", "max", "dictsort", "groupby"})
#: filters that compare each item when given a comparing test (by the test name's position)
_TESTING = {"select": 0, "reject": 0, "selectattr": 1, "rejectattr": 1}
_COMPARING_TESTS = frozenset({"equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt",
                              ">", "ge", ">=", "lessthan", "greaterthan", "in"})
#: methods of lists and tuples that compare their items with the argument
_COMPARING_METHODS = frozenset({"count", "index", "remove"})
#: filters whose size check needs the whole input: a generator is turned into a list first
_MATERIALISE = frozenset({"join", "sum", "string", "pprint", "tojson"})
#: filters that do not walk their input, or whose walk estimate_len already charges
_UNCHARGED = frozenset({"length", "count", "default", "d", "first", "last", "tojson",
                        "string", "pprint", "safe"})


#: "did you mean" looks among the first keys this many characters long or shorter, for a name
#: as short: difflib's time grows with the product of the lengths, and both can be data (a
#: tool's reply read with `output[item]`: three 20,000-character keys took 0.4 s)
_SUGGEST_LENGTH = 100
_SUGGEST_KEYS = 1000


def _close_key(name: str, keys: list[str]) -> str | None:
    if len(name) > _SUGGEST_LENGTH:
        return None
    short = [key for key in keys if len(key) <= _SUGGEST_LENGTH][:_SUGGEST_KEYS]
    near = difflib.get_close_matches(name, short, n=1)
    return near[0] if near else None


class PlaitUndefined(StrictUndefined):
    """Strict: any use fails, but ``default`` and ``is defined`` still work."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint or obj is missing:
            return str(super()._undefined_message)
        if isinstance(obj, Mapping):
            keys = sorted(str(k) for k in obj)
            text = f"no key {name!r}"
            near = _close_key(str(name), keys)
            if near:
                text += f"; did you mean {near!r}?"
            shown = ", ".join(repr(k) for k in keys[:12]) + (", ..." if len(keys) > 12 else "")
            return text + (f" (keys: {shown})" if keys else " (the mapping is empty)")
        if isinstance(obj, Sequence) and not isinstance(obj, str) and isinstance(name, int):
            return f"index {name} is out of range (length {len(obj)})"
        kind = json_type(obj)  # as JSON/YAML word it (`string`), not Python's `str`
        what = f"a {kind}" if kind.startswith("Python") else \
            f"{'an' if kind[0] in 'aeiou' else 'a'} {kind} value"
        return f"{what} has no attribute or key {name!r}"


#: results that are lazy views of data (map, select, reverse, unique, ... give iterators;
#: range(), dict.keys() / .values() / .items()): a step, an output or a prompt gets the list
#: they stand for, as ``| list`` gives, not "<generator object sync_do_map at 0x...>"
_LAZY: tuple[type, ...] = (Iterator, range, KeysView, ValuesView, ItemsView)
#: the usual results, checked first: an isinstance() against the ABCs above costs more
_PLAIN = frozenset({str, int, float, bool, type(None), dict, list, tuple})


def is_lazy(value: Any) -> bool:
    return type(value) not in _PLAIN and isinstance(value, _LAZY)


def listed(value: Iterable[Any]) -> list[Any]:
    items = list(itertools.islice(value, lim.MAX_ITEMS + 1))
    lim.check_items(len(items), "the result")
    return items



def _json_default(value: Any) -> Any:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if is_lazy(value):
        return listed(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"a {type(value).__name__} value cannot be converted to JSON")


def to_json(value: Any, indent: int | str | None = None) -> str:
    """Plain JSON: no HTML escaping, non-ASCII kept as is."""
    size = lim.estimate_len(value)
    if indent is not None:
        width = len(indent) if isinstance(indent, str) else max(int(indent), 0)
        lim.check_size(size + _indented_lines(value, width), "the indented JSON", spend=False)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=_json_default)


def _indented_lines(value: Any, width: int) -> int:
    """What ``indent`` adds to JSON: a line per item, prefixed by `width` per level
    (``[[1]] * 200 | tojson(indent=10**6)`` was 800 MB, built before its size was checked)."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        subs: Iterable[Any]
        if isinstance(item, Mapping):
            subs = item.values()
        elif isinstance(item, list | tuple):
            subs = item
        else:
            continue
        total += (len(item) * (depth * width + 1) + (depth - 1) * width + 1) if item else 0
        if total > lim.MAX_OUTPUT:
            break
        stack.extend((sub, depth + 1) for sub in subs)
    return total


def from_json(value: Any) -> Any:
    if not isinstance(value, str | bytes):
        raise TypeError(f"fromjson expects a string, got {type(value).__name__}")
    return json.loads(value)


def shell_quote(value: Any) -> str:
    """One shell word holding `value` exactly (a string, or JSON for a list or dict), for a
    value pasted into a `run:` command line: `x; rm -rf ~` stays one argument."""
    return shlex.quote(to_text(value))


def to_text(value: Any) -> str:
    """How a non-string value is written into a string: JSON for dicts and lists."""
    if isinstance(value, str):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if isinstance(value, Mapping | list | tuple) or is_lazy(value):
        return to_json(value)  # a lazy value as the list it stands for (see is_lazy)
    lim.estimate_len(value)
    return str(value)


def safe_range(*args: int) -> range:
    rng = range(*args)
    lim.check_items(len(rng), "range()")
    lim.charge(len(rng))
    return rng


def _charge_input(value: Any) -> None:
    """A filter walks its input: strings at C speed, items one Python call each."""
    if isinstance(value, str):
        lim.charge(len(value))
    elif isinstance(value, Sequence | Mapping | range | set | frozenset):
        lim.charge(_ITEM_COST * len(value))


def _charge_membership(container: Any) -> None:
    """``x in container``: a string is searched, a list compared item by item; a mapping or
    a set is one hash lookup, whatever its size."""
    if isinstance(container, str | bytes):
        lim.charge(len(container))
    elif not isinstance(container, Mapping | set | frozenset):
        lim.charge_compared(container)


def _check_sum(value: list[Any] | tuple[Any, ...]) -> None:
    """Summing lists copies the growing total at every step: the work is the item count times
    the total length (a sum of 60,000 one-item lists took 2 s, 300,000 would take a minute);
    charged at C speed, 64 items copied a unit."""
    total = sum(len(v) for v in value if isinstance(v, str | list | tuple))
    lim.check_size(total, "the sum")
    lim.charge(len(value) * total // 64)


#: the largest `target` or `rel` urlize may repeat in every link without being counted
_SHORT_ATTRIBUTE = 64


def _check_repeating(name: str, func: Callable[..., Any], args: tuple[Any, ...],
                     kwargs: dict[str, Any], skip: int) -> None:
    """Filters that repeat an argument per line or per link, counted before they run."""
    value, extra = args[skip - 1], args[skip:]
    if name == "wordwrap":
        # checked before: textwrap's time grows faster than its output (a 500,000-char
        # word cut to width 1 took seconds), so its lines are counted first
        width = extra[0] if extra else kwargs.get("width", 79)
        if isinstance(width, int) and width > 0:
            lim.check_items(len(value) // width, "the lines of the wordwrap filter")
        _check_wrapstring(func, args, kwargs, skip)
        return
    # urlize(value, trim_url_limit, nofollow, target, rel): target and rel go into every
    # link, one link at most per word (300 links with a 1 MB target were 300 MB)
    added = 0
    for at, key in ((2, "target"), (3, "rel")):
        given = extra[at] if len(extra) > at else kwargs.get(key)
        added += len(given) if isinstance(given, str) else 0
    if added > _SHORT_ATTRIBUTE:
        words = len(value.split()) + 1
        lim.check_size(3 * len(value) + words * (added + 64),
                       "the links urlize would write with its target and rel", spend=False)


def _check_wrapstring(func: Callable[..., Any], args: tuple[Any, ...],
                      kwargs: dict[str, Any], skip: int) -> None:
    """wordwrap's `wrapstring` goes between every two lines: a long one is counted before the
    text is built (300 lines joined by a 1 MB wrapstring were 300 MB). The lines are counted
    by wrapping with a one-character marker first."""
    at = skip + 2  # (environment, text, width, break_long_words, wrapstring, ...)
    wrapstring = args[at] if len(args) > at else kwargs.get("wrapstring")
    if not isinstance(wrapstring, str) or len(wrapstring) <= 1:
        return
    text = args[skip - 1]
    marker = "\0"
    probe = list(args)
    if len(args) > at:
        probe[at] = marker
    wrapped = func(*probe, **({**kwargs, "wrapstring": marker} if len(args) <= at else kwargs))
    joins = wrapped.count(marker) - text.count(marker)
    lim.check_size(len(wrapped) + joins * (len(wrapstring) - 1),
                   "the text wordwrap would join with its wrapstring", spend=False)


def _charge_walk(name: str, value: Any, compares: bool) -> None:
    if name not in _UNCHARGED:
        _charge_input(value)
    if compares:
        lim.charge_compared(value)


def _compares(name: str, extra: tuple[Any, ...]) -> bool:
    """Whether the filter `name`, given arguments `extra`, compares the items of its input."""
    if name in _COMPARING:
        return True
    at = _TESTING.get(name)
    return at is not None and len(extra) > at and extra[at] in _COMPARING_TESTS


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 2 if getattr(func, "jinja_pass_arg", None) is not None else 1

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value, extra = (args[skip - 1] if len(args) >= skip else None), args[skip:]
        compares = _compares(name, extra)
        if (name in _MATERIALISE or compares) and isinstance(value, Iterator):
            # a generator (select, map, ...) is measured like a list, so make it one
            value = list(value)
            args = (*args[:skip - 1], value, *extra)
        if name in _WIDTH_FILTERS:
            lim.check_int_args(extra, kwargs)
        _charge_walk(name, value, compares)
        if name in _SERIALISING and not isinstance(value, str):
            lim.estimate_len(value)
        if name == "replace" and len(extra) >= 2:
            lim.check_replace(value, *extra[:3])
        elif name == "join":
            lim.check_join(value, extra[0] if extra else kwargs.get("d", ""))
        elif name == "indent":
            lim.check_lines_times(value, extra[0] if extra else kwargs.get("width", 4), name)
        elif name == "format" and isinstance(value, str):
            lim.check_percent_format(value, dict(kwargs) if kwargs else tuple(extra))
        elif name == "sum" and isinstance(value, list | tuple):
            _check_sum(value)
        elif name in ("slice", "batch") and extra:
            lim.check_items(extra[0], f"the {name} filter")
        elif name in ("wordwrap", "urlize") and isinstance(value, str):
            _check_repeating(name, func, args, kwargs, skip)
        result = func(*args, **kwargs)
        if isinstance(result, str | list):
            lim.check_size(len(result), f"the result of the {name} filter")
        lim.check_int_result(result, f"the result of the {name} filter")
        return result

    return guarded


#: the code of every filter's guard: a traceback frame running it names the filter that failed
GUARDED_CODE = _guard_filter("", str).__code__


def _build_filters() -> dict[str, Callable[..., Any]]:
    table: dict[str, Callable[..., Any]] = dict(FILTERS)
    table["tojson"] = to_json
    table["fromjson"] = from_json
    table["shquote"] = shell_quote
    return {name: _guard_filter(name, func) for name, func in table.items()}


def _check_method_call(obj: Any, args: tuple[Any, ...],
                       kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    """Check a call before it runs; returns the arguments to call with."""
    owner = getattr(obj, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        return args  # a plain function such as range(): it checks its own size
    if getattr(obj, "__name__", "") in ("encode", "decode") and isinstance(owner, str | bytes):
        _charge_codec(owner, args[0] if args else kwargs.get("encoding", "utf-8"))
    if not isinstance(owner, str):
        # methods of ints, lists, ... (int.to_bytes(10**9) would allocate a gigabyte)
        lim.check_int_args(args, kwargs)
        if getattr(obj, "__name__", "") in _COMPARING_METHODS:
            lim.charge_compared(owner)
        return args
    name = getattr(obj, "__name__", "")
    if name in _WIDTH_METHODS:
        lim.check_int_args(args, kwargs)
    elif name == "replace" and len(args) >= 2:
        lim.check_replace(owner, *args[:3])
    elif name == "join" and args:
        items = list(args[0]) if isinstance(args[0], Iterator) else args[0]
        lim.check_join(items, owner)
        return (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        lim.check_size(len(owner) * longest, "the translated string")
    elif name == "expandtabs":
        lim.check_lines_times(owner, args[0] if args else kwargs.get("tabsize", 8), name)
    return args


def _charge_codec(text: str | bytes, encoding: Any) -> None:
    """Punycode takes time that grows with the square of the text (20,000 distinct
    characters took a minute): charged as such. Other text codecs are linear."""
    try:
        name = codecs.lookup(encoding).name if isinstance(encoding, str) else ""
    except LookupError:
        return  # encode() raises the real error itself
    if name == "punycode":
        lim.charge(len(text) ** 2)


def const_source(value: Any) -> str:
    """Python source that evaluates to ``value``, a constant Jinja put into generated code.

    Jinja writes ``repr()``, which does not round-trip for every value it folds: ``nan`` and
    ``inf`` are not Python names (``'nan' | float`` or ``1e400`` failed with a NameError) and
    an integer of more than 4,300 digits has no ``repr()`` at all.
    """
    kind = type(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if kind is complex:
        return f"complex({const_source(value.real)}, {const_source(value.imag)})"
    if kind is int:
        try:
            return repr(value)
        except ValueError:  # too many digits for repr(); hex has no such limit
            return hex(value)
    if kind is list:
        return "[" + "".join(f"{const_source(v)}, " for v in value) + "]"
    if kind is tuple:
        return "(" + "".join(f"{const_source(v)}, " for v in value) + ")"
    if kind is set or kind is frozenset:
        items = "".join(f"{const_source(v)}, " for v in value)
        return f"{kind.__name__}(({items}))"
    if kind is dict:
        return "{" + "".join(f"{const_source(k)}: {const_source(v)}, "
                             for k, v in value.items()) + "}"
    return repr(value)  # None, bool, str, Markup, range: repr() round-trips


class _CodeGenerator(CodeGenerator):
    """Routes ``a ~ b`` through :meth:`PlaitEnvironment.plait_concat`, so it is size-checked,
    and writes constants so that every one of them round-trips (see :func:`const_source`)."""

    def visit_Const(self, node: Const, frame: Frame) -> None:
        self.write(const_source(node.as_const(frame.eval_ctx)))

    def visit_Compare(self, node: Compare, frame: Frame) -> None:
        """``a in b`` compares `a` with every item of `b`: routed through
        :meth:`PlaitEnvironment.plait_compare` to be charged; the later operands of a chain
        stay lazy (``a < b in c`` evaluates ``c`` only when ``a < b``)."""
        if not any(op.op in ("in", "notin") for op in node.ops):
            super().visit_Compare(node, frame)
            return
        self.write("environment.plait_compare(")
        self.visit(node.expr, frame)
        for op in node.ops:
            self.write(f", ({op.op!r}, lambda: ")
            self.visit(op.expr, frame)
            self.write(")")
        self.write(")")

    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.plait_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gteq": operator.ge,
    "lt": operator.lt, "lteq": operator.le,
    "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}


_BINOP_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "*": lim.check_mul,
    "**": lim.check_pow,
    "+": lim.check_add,
}


class PlaitEnvironment(ImmutableSandboxedEnvironment):
    """The one environment expressions run in. Build it once; it is read-only after."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self) -> None:
        super().__init__(undefined=PlaitUndefined, autoescape=False, cache_size=0,
                         auto_reload=False)
        self.globals.clear()
        self.globals["range"] = safe_range
        self.filters = _build_filters()

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "%":
            if isinstance(left, str):
                lim.estimate_len(right)
                lim.check_percent_format(left, right)
            return operator.mod(left, right)
        _BINOP_CHECKS[operator_](left, right)
        return self.binop_table[operator_](left, right)

    def plait_compare(self, left: Any, *ops: tuple[str, Callable[[], Any]]) -> bool:
        """A comparison chain holding ``in`` or ``not in``, charged for the items compared."""
        for op, right_of in ops:
            right = right_of()
            if op in ("in", "notin"):
                _charge_membership(right)
            if not _COMPARE[op](left, right):
                return False
            left = right
        return True

    def plait_concat(self, parts: tuple[Any, ...]) -> str:
        texts = []
        total = 0
        for part in parts:
            text = part if isinstance(part, str) else str(to_text(part))
            total += len(text)
            lim.check_size(total, "the ~ concatenation", spend=False)
            texts.append(text)
        lim.charge(total)
        return "".join(texts)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # data first: `output.items` is the key "items" when the mapping has one
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__
        by_name = value.__name__ == "format_map"  # its one argument holds the named fields

        def checked(*args: Any, **kwargs: Any) -> str:
            lim.estimate_len([args, kwargs])
            if by_name and len(args) == 1 and isinstance(args[0], Mapping):
                lim.check_str_format(fmt, (), args[0])
            else:
                lim.check_str_format(fmt, args, kwargs)
            return str(wrapped(*args, **kwargs))

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        args = _check_method_call(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str | list):
            lim.check_size(len(result), "the result of the call")
        lim.check_int_result(result, "the result of the call")
        return result
