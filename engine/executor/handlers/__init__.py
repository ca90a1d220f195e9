"""One handler per step kind. A handler gets the rendered fields of one step (one foreach item)
and returns an Outcome; it raises engine.errors for failures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.spec.models import AnyStep

T = TypeVar("T")
#: The executor's retry wrapper: `await attempt(fn)` calls fn under the step's retry policy
#: and per-attempt timeout. LLM steps hand it to the provider layer so fallback comes after
#: the retries; other kinds wrap their whole call in it.
Attempt = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]


@dataclass
class Outcome:
    output: Any = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = 0.0
    """USD; None when the step called a model with no known price."""
    audit: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    #: the step's rendered fields (set by the executor, kept in the run record)
    rendered: Any = None


class Handler(Protocol):
    async def __call__(self, rc: RunContext, step_id: str, step: AnyStep,
                       rendered: dict[str, Any], attempt: Attempt) -> Outcome: ...


def get_handler(kind: str) -> Handler:
    """The handler for a step kind, imported on first use (so vendor SDKs load lazily)."""
    handler = _HANDLERS.get(kind)
    if handler is None:
        module = __import__(f"engine.executor.handlers.{_MODULES[kind]}", fromlist=["handle"])
        handler = module.handle
        _HANDLERS[kind] = handler
    return handler


_MODULES = {"llm": "llm", "tool": "mcp", "resource": "mcp", "mcp_prompt": "mcp",
            "run": "command", "workflow": "subworkflow"}
_HANDLERS: dict[str, Handler] = {}
