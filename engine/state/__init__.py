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
from engine.state.resume import ResumePlan, fingerprint, owner_alive, owner_meta, plan_resume
from engine.state.store import RunStore
from engine.state.writer import StepWriter

__all__ = (
    "RUN_STATUSES",
    "STEP_STATUSES",
    "ResumePlan",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "StepRecord",
    "StepStatus",
    "StepWriter",
    "fingerprint",
    "new_run_id",
    "owner_alive",
    "owner_meta",
    "plan_resume",
    "spec_hash",
)
