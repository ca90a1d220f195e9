"""A server's `tools.allow` / `tools.deny` globs, read from the raw spec (validation time)."""

from __future__ import annotations

import fnmatch
from typing import Any


def hidden_by(tool: str, allow: list[Any] | None, deny: list[Any]) -> str | None:
    """The filter that hides `tool` (None: it is exposed), worded as the MCP registry words
    it at run time."""
    for pattern in deny:
        if isinstance(pattern, str) and fnmatch.fnmatchcase(tool, pattern):
            return f"`tools.deny` pattern {pattern!r}"
    if allow is None or any(isinstance(p, str) and fnmatch.fnmatchcase(tool, p) for p in allow):
        return None
    return f"`tools.allow` (none of {allow} matches it)"
