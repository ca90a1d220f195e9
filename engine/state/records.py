"""Run and step records: the frozen dataclasses the store reads and writes."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

RunStatus = Literal["running", "succeeded", "failed", "interrupted", "cancelled"]
StepStatus = Literal["queued", "running", "succeeded", "failed", "skipped", "cancelled"]

RUN_STATUSES: tuple[str, ...] = ("running", "succeeded", "failed", "interrupted", "cancelled")
STEP_STATUSES: tuple[str, ...] = ("queued", "running", "succeeded", "failed", "skipped",
                                  "cancelled")


#: RunRecord.meta of a sub-workflow's run: [the parent's step id, its foreach item or None]
PARENT_STEP = "parent_step"


@dataclass(frozen=True)
class RunRecord:
    """One run of a workflow, as stored."""

    run_id: str
    workflow_name: str
    workflow_path: str
    spec_hash: str
    inputs: dict[str, Any]
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    parent_run_id: str | None = None
    resumed_from: str | None = None
    #: free-form notes about the run (e.g. a weaker-sandbox flag, the trace id)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def called_by(self) -> tuple[str, int | None] | None:
        """The parent run's step (and its foreach item, else None) that started this
        sub-workflow run, from ``meta[PARENT_STEP]``; None when the record does not say (a
        top-level run, or one recorded before runs noted it)."""
        where = self.meta.get(PARENT_STEP)
        if isinstance(where, list) and len(where) == 2:
            return where[0], where[1]
        return None


@dataclass(frozen=True)
class StepRecord:
    """The state of one step of one run, as stored. Upserted by (run_id, step_id)."""

    run_id: str
    step_id: str
    status: StepStatus
    attempts: int = 0
    #: hash of the step's spec; resume reuses an output only if this is unchanged
    fingerprint: str = ""
    rendered_input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    #: number of items of a foreach step
    items: int | None = None
    #: tool-call / command audit entries
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: attempt, retry and fallback notes
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ItemRecord:
    """One finished item of a foreach step that has not finished, as stored: a resume reuses
    it (and runs the item again only when its value, `key`, is not the same)."""

    step_id: str
    item: int
    #: digest of the item's value (secrets masked): the same index with another value reruns
    key: str
    attempts: int = 1
    rendered_input: Any = None
    output: Any = None
    usage: dict[str, Any] = field(default_factory=dict)
    cost: float | None = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


# Crockford base32, lower case: sorts the same as the numbers it encodes.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 9  # 45 bits of milliseconds: good until the year 3084
_RAND_CHARS = 6  # 30 random bits
_RAND_LIMIT = 1 << (5 * _RAND_CHARS)
_id_lock = threading.Lock()
_last: list[int] = [0, 0]  # last (milliseconds, random) handed out by this process


def _b32(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_ALPHABET[number & 31])
        number >>= 5
    return "".join(reversed(chars))


def new_run_id() -> str:
    """A short (15 characters), unique run id that sorts by creation time.

    Nine characters of millisecond timestamp then six random ones. Within one process ids are
    strictly increasing even when several are made in the same millisecond.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(4), "big") % _RAND_LIMIT
    with _id_lock:
        last_ms, last_rand = _last
        if millis <= last_ms:
            millis, rand = last_ms, last_rand + 1
            if rand >= _RAND_LIMIT:
                millis, rand = last_ms + 1, 0
        _last[0], _last[1] = millis, rand
    return _b32(millis, _TIME_CHARS) + _b32(rand, _RAND_CHARS)


def spec_hash(text: bytes) -> str:
    """Content hash of a workflow file, as stored in run records: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(text).hexdigest()
