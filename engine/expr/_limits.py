"""Size limits that keep one expression from eating the machine.

The sandbox stops expressions from reaching Python internals; these checks stop them from
allocating gigabytes on the way (``'a' * 10**9``, ``10**10**10``, ``'%999999999d' % 1``,
``s | replace('a', s)``). Every check runs *before* the allocation it guards, and raises
:class:`LimitExceeded`, which the renderer turns into an ExpressionError.
"""

from __future__ import annotations

import math
import re
import string
import threading
from collections.abc import Mapping
from typing import Any

#: the largest string, list or rendered value an expression may produce (1 MiB)
MAX_OUTPUT = 1024 * 1024
#: the largest integer argument to a filter or method call (widths, counts, ...)
MAX_INT_ARG = MAX_OUTPUT
#: the largest integer an arithmetic operator may produce, in bits
MAX_INT_BITS = 4096
#: the most items ``range()``, ``slice`` and ``batch`` may produce
MAX_ITEMS = 100_000
#: how deep containers are walked when their serialised size is estimated
MAX_WALK_DEPTH = 64
#: work units (about one per character or item produced or walked) one evaluation may spend
MAX_WORK = 4 * MAX_OUTPUT

_state = threading.local()


class LimitExceeded(Exception):
    """An expression tried to build something larger than the limits allow."""


def _sized(value: Any) -> int | None:
    if isinstance(value, str | bytes | list | tuple):
        return len(value)
    return None


def start_budget(units: int = MAX_WORK) -> None:
    """Give the evaluation about to run ``units`` of work (rendering is synchronous, so a
    thread-local budget belongs to exactly one evaluation at a time)."""
    _state.left = units


def stop_budget() -> None:
    _state.left = None


def charge(units: int) -> None:
    """Spend work units; a many-times-repeated but individually small operation stops here."""
    left: int | None = getattr(_state, "left", None)
    if left is None:
        return
    left -= units
    _state.left = left
    if left < 0:
        raise LimitExceeded(f"the expression does too much work (more than {MAX_WORK:,} "
                            "characters or items built or walked)")


def check_size(size: int, what: str, limit: int = MAX_OUTPUT, *, spend: bool = True) -> None:
    if size > limit:
        raise LimitExceeded(f"{what} would be {size:,} long; the limit is {limit:,}")
    if spend:
        charge(size)


def estimate_len(value: Any, budget: int = MAX_OUTPUT) -> int:
    """Roughly how many characters ``value`` takes once serialised (JSON or str()).

    Stops counting once ``budget`` is passed, so a list holding the same 1 MiB string
    a million times is rejected after a few items, not after a terabyte.
    """
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_WALK_DEPTH:
            raise LimitExceeded(f"value is nested more than {MAX_WALK_DEPTH} levels deep")
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 2
            for key, sub in item.items():
                stack.append((key, depth + 1))
                stack.append((sub, depth + 1))
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + len(item)
            stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += max(1, item.bit_length() * 3 // 10 + 1)
        else:
            total += 8
        if total > budget:
            raise LimitExceeded(f"the value is larger than the limit of {budget:,} characters")
    charge(total)
    return total


def charge_compared(value: Any) -> None:
    """Charge what comparing the items of ``value`` costs: the characters of every string in
    it, each time it appears (``x in [s] * 100000`` compares ``s`` 100,000 times, and ``sort``
    on two long strings that differ only at the end took 30 s for 10,000 items, each
    item costing one unit). The walk stops as soon as the budget is spent."""
    if getattr(_state, "left", None) is None:
        return
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str | bytes):
            charge(len(item))
        elif depth < MAX_WALK_DEPTH and isinstance(item, list | tuple | Mapping):
            charge(len(item))
            subs = item.items() if isinstance(item, Mapping) else item
            stack.extend((sub, depth + 1) for sub in subs)


# ---------------------------------------------------------------- operators


def _int_bits(value: Any) -> float:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return max(1, value.bit_length())
    return 0


def check_mul(left: Any, right: Any) -> None:
    """``*``: repeating a sequence, or multiplying big integers."""
    for seq, count in ((left, right), (right, left)):
        size = _sized(seq)
        if size is not None and isinstance(count, int):
            check_size(size * max(count, 0), "the repeated value")
            return
    if isinstance(left, int) and isinstance(right, int):
        bits = _int_bits(left) + _int_bits(right)
        if bits > MAX_INT_BITS:
            raise LimitExceeded(f"the product would have about {bits:,.0f} bits; "
                                f"the limit is {MAX_INT_BITS:,}")


def check_pow(base: Any, exp: Any) -> None:
    """``**``: ``10**10**10`` is rejected before Python starts computing it."""
    if isinstance(base, int) and isinstance(exp, int) and exp > 0 and abs(base) > 1:
        bits = math.log2(abs(base)) * exp
        if bits > MAX_INT_BITS:
            raise LimitExceeded(f"{base} ** {exp} would have about {bits:,.0f} bits; "
                                f"the limit is {MAX_INT_BITS:,}")


def check_add(left: Any, right: Any) -> None:
    """``+`` on strings or lists: the result must stay under the output limit."""
    a, b = _sized(left), _sized(right)
    if a is not None and b is not None:
        check_size(a + b, "the concatenation")
    elif isinstance(left, int) and isinstance(right, int):
        # adding never grows an int by more than one bit; nothing to check
        return


_PERCENT_SPEC = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)?")
#: the most characters one number takes when formatted without a width (``'%f' % 1e308``)
_NUMBER_TEXT = 330


def _arg_text(value: Any) -> int:
    """About how many characters ``value`` takes when written by one format field."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, float | complex):
        return _NUMBER_TEXT
    return estimate_len(value)


def _check_formatted(total: int) -> None:
    check_size(total, "the formatted string", spend=False)


def _check_width(number: str | None) -> int:
    if number is None:
        return 0
    if number == "*":
        raise LimitExceeded("'*' widths are not allowed in % formatting")
    if int(number) > MAX_INT_ARG:
        raise LimitExceeded(f"the format width {int(number):,} is larger than "
                            f"the limit of {MAX_INT_ARG:,}")
    return int(number)


def check_percent_format(fmt: str, args: Any = ()) -> None:
    """``'%999999999d' % 1`` would allocate a gigabyte: widths are capped, and so is the
    whole result, counted before it is built: each field's width and precision plus the
    value it writes (``('%(a)999999s' * 1000) % {'a': 1}`` repeats one value a thousand
    times, each field under the limit)."""
    total = len(fmt)
    position = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        key, width, precision, kind = match.groups()
        total += _check_width(width) + _check_width(precision)
        if kind == "%" or kind is None:
            continue
        if key is not None and isinstance(args, Mapping):
            value = args.get(key, "")
        elif isinstance(args, tuple):
            value = args[position] if position < len(args) else ""
            position += 1
        else:
            value = args
        total += _arg_text(value)
        _check_formatted(total)


_DIGITS = re.compile(r"\d+")
_FIELD_HEAD = re.compile(r"[^.\[]*")


def check_str_format(fmt: str, args: tuple[Any, ...] = (),
                     kwargs: Mapping[str, Any] | None = None) -> None:
    """``'{:999999999}'.format(1)``: widths capped, nested ``{}`` in specs refused, and the
    whole result counted before it is built (``('{0}' * 1000).format(s)`` writes `s` a
    thousand times)."""
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the real error itself
    kwargs = kwargs or {}
    total = len(fmt)
    auto = 0
    for _text, name, spec, _conv in fields:
        if name is None:
            continue
        if spec and "{" in spec:
            raise LimitExceeded("nested replacement fields in a format spec are not allowed")
        for number in _DIGITS.findall(spec or ""):
            if int(number) > MAX_INT_ARG:
                raise LimitExceeded(f"the format width {int(number):,} is larger than "
                                    f"the limit of {MAX_INT_ARG:,}")
            total += int(number)
        head = _FIELD_HEAD.match(name)
        head_text = head.group() if head else ""
        if head_text == "":
            index: int | str = auto
            auto += 1
        else:
            index = int(head_text) if head_text.isdigit() else head_text
        if isinstance(index, int):
            value = args[index] if index < len(args) else ""
        else:
            value = kwargs.get(index, "")
        total += _arg_text(value)
        _check_formatted(total)


def check_int_result(value: Any, what: str) -> None:
    """An integer a filter or method made (``'f' * 10**6 | int(base=16)``,
    ``int.from_bytes``): as big as arithmetic may make, no bigger, so ``//`` and ``%`` on
    it stay cheap (two million-bit integers took seconds to divide)."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"{what} would have {value.bit_length():,} bits; "
                            f"the limit is {MAX_INT_BITS:,}")


# ---------------------------------------------------------------- calls and filters


def check_int_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARG:
            raise LimitExceeded(f"the argument {arg:,} is larger than the limit of "
                                f"{MAX_INT_ARG:,}")


def check_replace(value: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not (isinstance(value, str) and isinstance(old, str) and isinstance(new, str)):
        return
    hits = len(value) + 1 if old == "" else value.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    check_size(len(value) + hits * max(0, len(new) - len(old)), "the replaced string")


def check_join(items: Any, sep: Any = "") -> None:
    if isinstance(items, str):
        return
    if isinstance(items, list | tuple):
        sep_len = len(sep) if isinstance(sep, str) else 0
        check_size(sep_len * len(items), "the joined string")
        estimate_len(list(items))


def check_lines_times(value: Any, width: Any, what: str) -> None:
    """indent / expandtabs: the text grows by ``width`` per line (or per tab)."""
    if not isinstance(value, str):
        return
    grow = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    marks = value.count("\t") if what == "expandtabs" else value.count("\n") + 1
    check_size(len(value) + marks * max(grow, 0), f"the result of {what}")


def check_items(count: Any, what: str) -> None:
    if isinstance(count, int) and count > MAX_ITEMS:
        raise LimitExceeded(f"{what} would make {count:,} items; the limit is {MAX_ITEMS:,}")
