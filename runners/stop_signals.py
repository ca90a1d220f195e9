"""The signals that stop a command cleanly (`plait run`, `batch`, `schedule`, `mcp serve`).

Ctrl-C (SIGINT), `kill` (SIGTERM), and a hang-up (SIGHUP: the terminal it runs in was
closed, or its SSH session dropped) all stop the command as Ctrl-C does: the steps in flight
are cancelled and the run record says `interrupted`, so `plait resume` goes on from there.
A hang-up that the command was told to ignore (`nohup plait run ...`) stays ignored.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import anyio
import anyio.abc

_HUP = getattr(signal, "SIGHUP", None)


def stop_signals() -> tuple[int, ...]:
    """SIGINT, SIGTERM and, unless it is ignored (`nohup`), SIGHUP."""
    signals: list[int] = [signal.SIGINT, signal.SIGTERM]
    if _HUP is not None and signal.getsignal(_HUP) is not signal.SIG_IGN:
        signals.append(_HUP)
    return tuple(signals)


class Terminal:
    """Which of stdout and stderr are a terminal, seen while it is there: once it hangs up,
    `isatty` says no and every write to it fails (EIO)."""

    def __init__(self) -> None:
        self.fds = [fd for fd in (1, 2) if _isatty(fd)]

    def stopped_by(self, signum: int) -> None:
        """After a hang-up, what is still printed (the run's last lines) goes to the null
        device instead of failing on the terminal that is gone: a write error there would
        end the command before its run record says `interrupted`."""
        if signum != _HUP or not self.fds:
            return
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self.fds:
                os.dup2(null, fd)
        finally:
            os.close(null)
        self.fds = []


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


async def first_stop_signal(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> str:
    """Wait for a stop signal (`stop_signals`) and return its name. Start it with
    `tg.start(...)`: it reports started once the handlers are installed, so no signal falls
    between."""
    terminal = Terminal()
    with anyio.open_signal_receiver(*stop_signals()) as signals:
        task_status.started()
        async for signum in signals:
            terminal.stopped_by(signum)
            return signal.Signals(signum).name
    raise RuntimeError("the signal receiver ended")  # it never does


async def interrupt_on_stop_signals(interrupt: Callable[[], None]) -> None:
    """Call `interrupt` at every stop signal (`stop_signals`) until cancelled: a run's or a
    batch's control stops it cleanly at the first, and harder at the next."""
    terminal = Terminal()
    with anyio.open_signal_receiver(*stop_signals()) as signals:
        async for signum in signals:
            terminal.stopped_by(signum)
            interrupt()
