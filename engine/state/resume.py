"""Who owns a run: a run whose process is still alive must not be resumed by another.

A run record's ``meta["owner"]`` names the host, the pid and the pid's start time, so a pid
reused by another process later is not mistaken for the owner. What a resume reuses is decided
by the executor (engine/executor/run.py), from the workflow text stored with the run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.state.records import RunRecord

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


#: (pid, its start time) of this process: read from /proc once per process, not per run (a
#: forked child has another pid, so it reads its own)
_STARTED: tuple[int, str | None] | None = None


def owner_meta() -> dict[str, Any]:
    """Who is running a run: put under ``RunRecord.meta["owner"]`` when creating it."""
    global _STARTED
    pid = os.getpid()
    if _STARTED is None or _STARTED[0] != pid:
        _STARTED = pid, _process_start(pid)
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _STARTED[1]}


#: ids of the runs this process is running now: a run that this very process owns but no
#: longer runs (its run broke, or it is a sub-workflow's run whose parent ended) is not alive,
#: although its owner is (a library caller's process lives on)
RUNNING_HERE: set[str] = set()


def running_elsewhere(record: RunRecord) -> str | None:
    """Who still runs `record` ("process PID on HOST") when it is `running` and that process
    is alive (see owner_alive): it must be neither resumed nor run again beside itself. None
    when nobody does."""
    if record.status != "running" or not owner_alive(record.meta, record.run_id):
        return None
    owner = record.meta[OWNER_KEY]
    return f"process {owner.get('pid')} on {owner.get('host')}"


def owner_alive(meta: Mapping[str, Any], run_id: str | None = None) -> bool:
    """Whether the process recorded in ``meta["owner"]`` is still running (this host only).
    Given the run's id, an owner that is this process counts only while it runs that run."""
    owner = meta.get(OWNER_KEY)
    if not isinstance(owner, Mapping) or owner.get("host") != socket.gethostname():
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if run_id is not None and pid == os.getpid() and owner == owner_meta():
        return run_id in RUNNING_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    recorded = owner.get("pid_start")
    return recorded is None or _process_start(pid) in (None, recorded)


