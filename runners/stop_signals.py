"""The signals that stop a long-running command (`plait schedule`, `plait mcp serve`)."""

from __future__ import annotations

import signal

import anyio
import anyio.abc


async def first_stop_signal(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> str:
    """Wait for SIGINT or SIGTERM and return its name. Start it with `tg.start(...)`: it
    reports started once the handlers are installed, so no signal falls between."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            return signal.Signals(signum).name
    raise RuntimeError("the signal receiver ended")  # it never does
