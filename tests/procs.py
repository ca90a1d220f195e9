"""What processes a test left behind, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def live_children() -> set[int]:
    """Live (not zombie) child processes of this one."""
    me, found = str(os.getpid()), set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            found.add(int(entry.name))
    return found
