"""'Did you mean ...?' hints for misspelt keys and names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: a name field (a provider, server, tool, policy or step) written as ``${{ }}``: names are
#: read before any value is evaluated, so they are never expressions
NAME_NOT_EXPRESSION = (
    "this is a name, written out: an expression is not evaluated here",
    "write the name itself; to choose between two, give each choice its own step with an "
    "`if:`")


def closest(name: str, candidates: Iterable[str]) -> str | None:
    options = sorted(set(candidates))
    if not options:
        return None
    matches = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if matches:
        return matches[0]
    lowered = {c.lower(): c for c in options}
    return lowered.get(name.lower())


def did_you_mean(name: str, candidates: Iterable[str], *, what: str = "") -> str | None:
    """A hint naming the closest candidate, or listing them when none is close."""
    options = sorted(set(candidates))
    match = closest(name, options)
    if match:
        return f"did you mean {match!r}?"
    if not options:
        return f"no {what} is defined" if what else None
    shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
    return f"expected one of: {shown}"
