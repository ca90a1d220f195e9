"""Who owns a run: a run whose process is still alive must not be resumed by another.

A run record's ``meta["owner"]`` names the host, the pid and the pid's start time, so a pid
reused by another process later is not mistaken for the owner. What a resume reuses is decided
by the executor (engine/executor/run.py), from the workflow text stored with the run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

OWNER_KEY = "owner"


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


#: (pid, owner) of this process, worked out once per process (a forked child has another pid)
_OWNER: tuple[int, dict[str, Any]] | None = None


def owner_meta() -> dict[str, Any]:
    """Who is running a run: put under ``RunRecord.meta["owner"]`` when creating it."""
    global _OWNER
    pid = os.getpid()
    if _OWNER is None or _OWNER[0] != pid:  # the host name and /proc read cost ~0.1 ms a run
        _OWNER = pid, {"host": socket.gethostname(), "pid": pid,
                       "pid_start": _process_start(pid)}
    return dict(_OWNER[1])


def owner_alive(meta: Mapping[str, Any]) -> bool:
    """Whether the process recorded in ``meta["owner"]`` is still running (this host only)."""
    owner = meta.get(OWNER_KEY)
    if not isinstance(owner, Mapping) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    recorded = owner.get("pid_start")
    return recorded is None or _process_start(pid) in (None, recorded)


