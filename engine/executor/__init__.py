"""Running a workflow: the scheduler, step semantics, retries, events and run records."""

from __future__ import annotations

from engine.executor.context import RunOptions
from engine.executor.events import (
    Event,
    RunFinished,
    RunStarted,
    StepChunk,
    StepFallback,
    StepFinished,
    StepRetrying,
    StepStarted,
)
from engine.executor.result import RunResult, StepResult
from engine.executor.run import RunControl, run_workflow, stream_run

__all__ = (
    "Event",
    "RunControl",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunStarted",
    "StepChunk",
    "StepFallback",
    "StepFinished",
    "StepResult",
    "StepRetrying",
    "StepStarted",
    "run_workflow",
    "stream_run",
)
