"""Which step the current task is running, for code far below the step (cassettes, tracing).

The executor sets it around each step's handler; anyio tasks started inside inherit it.
"""

from __future__ import annotations

from contextvars import ContextVar

current_step: ContextVar[str | None] = ContextVar("plait_current_step", default=None)
