"""Which step (and foreach item) the current task is running, for code far below the step:
cassettes file interactions under their step, streamed text says its item.

The executor sets them around each step's handler and in each item's task; anyio tasks
started inside inherit them.
"""

from __future__ import annotations

from contextvars import ContextVar

current_step: ContextVar[str | None] = ContextVar("plait_current_step", default=None)
#: the index of the foreach item the current task runs (None outside foreach items)
current_item: ContextVar[int | None] = ContextVar("plait_current_item", default=None)
