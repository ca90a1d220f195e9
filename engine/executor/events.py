"""Typed events of a run. The CLI, tracing and reporters consume them; step errors travel
here instead of exploding the task group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    at: float


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    workflow: str
    steps: int
    resumed: bool = False
    #: policies run below their sandbox level (--allow-weaker-sandbox, or bwrap without
    #: Landlock scoping): "policy: runner" or "policy: runner (what is missing)"
    weaker_sandbox: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    step_id: str
    kind: str
    items: int | None = None


@dataclass(frozen=True, slots=True)
class StepRetrying(Event):
    step_id: str
    attempt: int
    delay: float
    error: str
    error_kind: str
    #: the foreach item that is retried (None: the step itself)
    index: int | None = None


@dataclass(frozen=True, slots=True)
class ItemStarted(Event):
    """One item of a `foreach` step started (emitted in the item's own task)."""

    step_id: str
    index: int


@dataclass(frozen=True, slots=True)
class ItemFinished(Event):
    step_id: str
    index: int
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptStarted(Event):
    """One attempt under the step's retry policy started (in the task that makes it)."""

    step_id: str
    attempt: int
    index: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptFinished(Event):
    step_id: str
    attempt: int
    index: int | None = None
    error: str | None = None
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class StepFallback(Event):
    step_id: str
    from_provider: str
    to_provider: str
    error: str


@dataclass(frozen=True, slots=True)
class StepChunk(Event):
    """A piece of streamed model output (`index`: of the foreach item that streamed it)."""

    step_id: str
    text: str
    index: int | None = None


@dataclass(frozen=True, slots=True)
class StepFinished(Event):
    step_id: str
    status: str  # succeeded | failed | skipped | cancelled | restored
    duration: float
    attempts: int = 0
    output: Any = None
    error: dict[str, Any] | None = None
    reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0
    kind: str = ""  # llm | tool | run | workflow | resource | mcp_prompt


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    status: str  # succeeded | failed | interrupted | cancelled (stopped from outside)
    duration: float
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
