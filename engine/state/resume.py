"""What a resumed run may reuse from the run it resumes (the record side of `--resume`).

The executor stores, with every step record, a fingerprint of everything that decides the step's
result (its spec, plus e.g. the provider it calls). On resume, a step that succeeded before and
whose fingerprint is unchanged is reused; everything else runs again. If a step that had
finished is now defined differently, its output (and every output computed from it) is stale,
so the resume is refused rather than mixing old and new results.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import StateError
from engine.state._json import dumps
from engine.state.records import RunRecord, StepRecord
from engine.state.store import RunStore

OWNER_KEY = "owner"


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able values (pydantic models are dumped first)."""
    canonical = [p.model_dump(mode="json") if hasattr(p, "model_dump") else p for p in parts]
    text = json.dumps(json.loads(dumps(canonical) or "null"), sort_keys=True,
                      separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _process_start(pid: int) -> str | None:
    """Start time of a process in clock ticks (Linux), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_meta() -> dict[str, Any]:
    """Who is running a run: put under ``RunRecord.meta["owner"]`` when creating it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "pid_start": _process_start(pid)}


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


@dataclass(frozen=True)
class ResumePlan:
    previous: RunRecord
    #: succeeded steps whose fingerprint is unchanged: their outputs are reused
    reuse: dict[str, StepRecord]
    #: every other step of the workflow, in the order given: run again
    rerun: tuple[str, ...]
    #: whether the workflow file's content hash differs from the previous run's
    spec_changed: bool


def plan_resume(store: RunStore, run_id: str, *, spec_hash: str,
                fingerprints: Mapping[str, str], workflow_name: str | None = None) -> ResumePlan:
    """Decide what a resume of ``run_id`` (or a unique prefix) reuses and reruns.

    ``fingerprints`` maps every step of the workflow as it is now to its fingerprint. Raises
    StateError when the run cannot be resumed: it succeeded, it is still running, it belongs to
    another workflow, or a step that finished is now defined differently.
    """
    previous = store.get_run(run_id)
    _check_resumable(previous, workflow_name)
    reuse: dict[str, StepRecord] = {}
    changed: list[str] = []
    for step in store.steps(previous.run_id):
        if step.status != "succeeded" or step.step_id not in fingerprints:
            continue  # unfinished, or no longer in the workflow: nothing to reuse
        if step.fingerprint != fingerprints[step.step_id]:
            changed.append(step.step_id)
        else:
            reuse[step.step_id] = step
    if changed:
        raise StateError(
            f"cannot resume run {previous.run_id}: the workflow changed since, and step(s) "
            f"{', '.join(sorted(changed))} that had finished are now defined differently, "
            "so their outputs cannot be reused",
            hint=f"start a new run with `plait run {previous.workflow_path}`, or restore the "
                 f"file the run used ({previous.spec_hash})")
    rerun = tuple(step_id for step_id in fingerprints if step_id not in reuse)
    return ResumePlan(previous, reuse, rerun, previous.spec_hash != spec_hash)


def _check_resumable(run: RunRecord, workflow_name: str | None) -> None:
    if workflow_name is not None and run.workflow_name != workflow_name:
        raise StateError(
            f"run {run.run_id} is a run of workflow {run.workflow_name!r} "
            f"({run.workflow_path}), not {workflow_name!r}",
            hint=f"resume it with `plait resume {run.run_id}`")
    if run.status == "succeeded":
        raise StateError(f"run {run.run_id} already succeeded; there is nothing to resume",
                         hint=f"start a new run with `plait run {run.workflow_path}`")
    if run.status == "running" and owner_alive(run.meta):
        owner = run.meta[OWNER_KEY]
        raise StateError(
            f"run {run.run_id} is still running (process {owner.get('pid')} on "
            f"{owner.get('host')})",
            hint="wait for it to finish or stop it first; a killed run can be resumed")
