"""Run records: every run and step stored in SQLite, so runs can be listed, shown and resumed."""

from __future__ import annotations

from engine.state.records import (
    RUN_STATUSES,
    STEP_STATUSES,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    new_run_id,
    spec_hash,
)
from engine.state.resume import owner_alive, owner_meta
from engine.state.store import RunStore, StepRow, step_row

__all__ = (
    "RUN_STATUSES",
    "STEP_STATUSES",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "StepRecord",
    "StepRow",
    "StepStatus",
    "new_run_id",
    "owner_alive",
    "owner_meta",
    "spec_hash",
    "step_row",
)
