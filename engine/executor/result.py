"""What a finished run hands back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StepResult:
    """One step's result. Treat it as read-only (not frozen: it is built once per step on the
    hot path, and a frozen dataclass costs twice as much to build)."""

    step_id: str
    kind: str
    status: str  # succeeded | failed | skipped | cancelled | restored
    output: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    #: USD; None when the step called a model with no known price (not the same as free)
    cost: float | None = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    reason: str | None = None
    rendered: Any = None
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: what happened inside the step: fallbacks, re-asks, tool calls
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "skipped", "restored")

    @property
    def duration(self) -> float:
        if self.started_at is None or self.finished_at is None:
            return 0.0
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "kind": self.kind, "attempts": self.attempts,
                "duration_s": round(self.duration, 6), "output": self.output,
                "error": self.error, "usage": self.usage, "cost": self.cost,
                **({"reason": self.reason} if self.reason else {})}


@dataclass(frozen=True)
class RunResult:
    run_id: str
    workflow: str
    status: str  # succeeded | failed | interrupted
    outputs: dict[str, Any]
    steps: dict[str, StepResult]
    started_at: float
    finished_at: float
    error: dict[str, Any] | None = None
    usage: dict[str, int] = field(default_factory=dict)
    #: USD: the sum of the known costs of the steps
    cost: float = 0.0
    #: the steps whose cost is unknown (no price for their model): `cost` leaves them out
    cost_unknown: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "workflow": self.workflow, "status": self.status,
                "outputs": self.outputs, "error": self.error, "usage": self.usage,
                "cost": self.cost,
                **({"cost_unknown": list(self.cost_unknown)} if self.cost_unknown else {}),
                "duration_s": round(self.duration, 6),
                "steps": {sid: s.to_dict() for sid, s in self.steps.items()}}
