"""Diffs of JSON data that a person can read: a replay miss against the closest recorded
request, a snapshot against this run's outputs.

JSON text puts a multi-line string (a prompt, a generated document) on one line, so a change
to one of its lines showed as two copies of the whole text. ``readable`` writes such a string
as one line per line of text, under its key:

    {
     "content": (multi-line text)
       | Summarise these files:
       | notes.txt
     "role": "user"
    }

It is for display only (not JSON). Other values are written as ``json.dumps`` writes them
(keys sorted), so a one-line change reads as before.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
from typing import Any

#: characters that would move the cursor or colour the terminal: shown escaped
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escape(line: str) -> str:
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def readable(value: Any, indent: int = 1) -> str:
    """``value`` as sorted, indented JSON, each multi-line string split into its lines."""
    token = secrets.token_hex(8)
    texts: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, str) and "\n" in item:
            texts.append(item)
            return f"@{token}-{len(texts) - 1}@"
        if isinstance(item, dict):
            return {k: swap(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [swap(v) for v in item]
        return item

    text = json.dumps(swap(value), indent=indent, sort_keys=True, ensure_ascii=False,
                      default=str)
    if not texts:
        return text
    marker = re.compile(f'"@{token}-(\\d+)@"')
    out: list[str] = []
    for line in text.splitlines():
        found = marker.search(line)
        if found is None:
            out.append(line)
            continue
        out.append(line[:found.start()] + "(multi-line text)" + line[found.end():])
        pad = " " * (len(line) - len(line.lstrip(" ")) + 2)
        out += [f"{pad}| {_escape(part)}" for part in texts[int(found.group(1))].split("\n")]
    return "\n".join(out)


def unified(before: Any, after: Any, before_name: str, after_name: str, *, indent: int = 1,
            context: int = 3, limit: int | None = None) -> list[str]:
    """The unified diff of two values as ``readable`` writes them; at most ``limit`` lines
    (then a line saying how many more there are)."""
    lines = list(difflib.unified_diff(readable(before, indent).splitlines(),
                                      readable(after, indent).splitlines(), before_name,
                                      after_name, n=context, lineterm=""))
    if limit is not None and len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more diff lines)"]
    return lines
