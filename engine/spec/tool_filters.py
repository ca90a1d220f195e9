"""A server's `tools.allow` / `tools.deny` globs, read from the raw spec (validation time) and
applied by the MCP registry at run time (one matcher for both).

A pattern matches the tool's own name or its qualified `server.tool` name (the form steps
use: `deny: [files.write_file]` must not silently deny nothing). `deny` ignores case (a
server that dispatches `Write_File` to write_file is still denied); `allow` does not.
"""

from __future__ import annotations

import fnmatch
from typing import Any


def _names(tool: str, server: str | None) -> tuple[str, ...]:
    return (tool, f"{server}.{tool}") if server else (tool,)


def hidden_by(tool: str, allow: list[Any] | None, deny: list[Any], *,
              server: str | None = None) -> str | None:
    """The filter that hides `tool` of `server` (None: it is exposed), worded as the MCP
    registry words it at run time."""
    names = _names(tool, server)
    for pattern in deny:
        if isinstance(pattern, str) and any(
                fnmatch.fnmatchcase(name.casefold(), pattern.casefold()) for name in names):
            return f"`tools.deny` pattern {pattern!r}"
    if allow is None or any(isinstance(p, str) and fnmatch.fnmatchcase(name, p)
                            for p in allow for name in names):
        return None
    return f"`tools.allow` (none of {allow} matches it)"
