"""The deadline of the current attempt of a step, and waits that do not count against it.

A step's `timeout` bounds each attempt's work. Waiting for capacity (a provider's or an MCP
server's `max_concurrency`, a rate limit, the pause after a 429) is the limit doing its job,
not the call being slow: code that waits for capacity does it inside :func:`capacity_wait`,
during which the attempt's clock stops (the run stopping still cancels the wait).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio

#: the cancel scope that times the current attempt (None outside a timed attempt)
attempt_scope: ContextVar[anyio.CancelScope | None] = ContextVar("plait_attempt_scope",
                                                                  default=None)


@contextmanager
def capacity_wait() -> Iterator[None]:
    """Stop the current attempt's clock while the task waits for capacity."""
    scope = attempt_scope.get()
    if scope is None or scope.cancel_called:
        yield
        return
    left = scope.deadline - anyio.current_time()
    scope.deadline = math.inf
    try:
        yield
    finally:
        scope.deadline = anyio.current_time() + left
