"""The minimal environment a child process gets: never the parent's whole environment."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

#: Variables a child process may inherit from the parent by default: none of them holds a key.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM", "USER",
             "LOGNAME", "SHELL", "SYSTEMROOT", "PYTHONIOENCODING", "VIRTUAL_ENV")


def minimal_env(extra: Mapping[str, str] | None = None, *, passthrough: Iterable[str] = (),
                parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """An allowlisted environment: INHERITED and `passthrough` names from `parent` (default
    os.environ), then `extra` on top (what the workflow declared for this process)."""
    source = os.environ if parent is None else parent
    env = {name: source[name] for name in (*INHERITED, *passthrough) if name in source}
    if extra:
        env.update(extra)
    return env
