"""Waiting for capacity: it does not count against a step's timeout, nor hold a run slot.

A step's `timeout` bounds each attempt's work, and the run's `concurrency` caps the steps
at work. Waiting for capacity (a provider's or an MCP server's `max_concurrency`, a rate
limit, the pause after a 429) is a limit doing its job, not the step working: code that is
about to wait for capacity does it inside :func:`capacity_wait`. Meanwhile the attempt's
clock stops (the run stopping still cancels the wait), and the run may start another step
in the waiting one's place, so steps queued on one slow provider do not starve the rest.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

import anyio


class RunSlots(Protocol):
    """The scheduler of the run whose step the current task runs."""

    def capacity_wait_began(self) -> None: ...

    def capacity_wait_ended(self) -> None: ...


#: the cancel scope that times the current attempt (None outside a timed attempt)
attempt_scope: ContextVar[anyio.CancelScope | None] = ContextVar("plait_attempt_scope",
                                                                  default=None)
#: a weak reference to the run whose slot the current task holds (None outside a step, and
#: in foreach items: an item waiting does not free its step's slot, the step's other items
#: may be at work). Weak: the contexts of tasks a step leaves behind must not keep the run
run_slots: ContextVar[Callable[[], RunSlots | None] | None] = ContextVar("plait_run_slots",
                                                                          default=None)


@asynccontextmanager
async def capacity_wait() -> AsyncIterator[None]:
    """The current task is about to wait for capacity (enter it only when it will wait).
    Leaving it, the step goes on at once; the run takes back the slot it lent out by letting
    a worker leave (see Scheduler.capacity_wait_ended)."""
    ref = run_slots.get()
    slots = ref() if ref is not None else None
    scope = attempt_scope.get()
    if scope is not None and scope.cancel_called:
        scope = None
    left = 0.0
    if scope is not None:
        left = scope.deadline - anyio.current_time()
        scope.deadline = math.inf
    if slots is not None:
        slots.capacity_wait_began()
    try:
        yield
    finally:
        if slots is not None:
            slots.capacity_wait_ended()
        if scope is not None:
            scope.deadline = anyio.current_time() + left


#: the model turn the current task is in: run_llm sets a fresh object around each turn's call
#: (its retries and fallbacks), so the attempt wrapper counts a step's attempts per turn and
#: an agent's turns or a re-ask are not counted as retries (None: no turn, e.g. a tool step)
MODEL_TURN: ContextVar[object | None] = ContextVar("plait_model_turn", default=None)
