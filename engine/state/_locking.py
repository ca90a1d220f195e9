"""How a connection to the run record database waits for another process's write lock,
and what an SQLite error about the database file means for a person (the hint to fix it).

A write waits quietly for LOCK_NOTICE_S, then says that it waits (a warning on the
``plait.state`` logger, which the CLI prints on stderr) and waits up to the rest of
PLAIT_STATE_LOCK_TIMEOUT (30 s by default); past that it is a StateError naming the database
and what to do.

Ctrl-C (or SIGTERM) during that wait: SQLite waits inside a C call, in which Python runs no
signal handler, and an event loop that handles signals (asyncio's, the CLI's) is blocked by
it. So a patient write notes the signals that Python code handles from before its first
try for the lock, and looks at them between its slices of WAIT_SLICE_S: a signal stops the
wait (`Interrupted`, raised with no lock held), the first slice included (a signal there used
to go to the event loop's handler, which could not run before the wait ended: one Ctrl-C was
lost), and one that came in the slice that took the lock is handed back to its handler
(not to asyncio's, whose loop has seen it through its wakeup fd all along). A
signal left to its default action (SIGTERM before a run's event loop handles it) ends the
process at once, as it always did. Not noted: a signal whose handler ran before the first try,
in the same turn of the event loop (its handler only wakes the loop, which then sees it once
the write is done): the few microseconds between the loop's poll and the write.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

from engine.errors import ConfigError, StateError

ENV_LOCK_TIMEOUT = "PLAIT_STATE_LOCK_TIMEOUT"
#: how long a write waits for another process's write lock, unless PLAIT_STATE_LOCK_TIMEOUT
BUSY_TIMEOUT_S = 30.0
#: how long a write waits for the lock quietly; past this it says that it waits
LOCK_NOTICE_S = 1.0
#: a write waits for the lock in slices this long (SQLite's busy timeout, in a C call that
#: Python cannot interrupt): a Ctrl-C is seen when one ends
WAIT_SLICE_S = 0.25
#: how long a reader (`plait runs`) waits for the lock to check the schema before it reads
#: what is committed instead (WAL readers need no lock)
READER_WAIT_S = 0.25

log = logging.getLogger("plait.state")
#: the signals that stop a wait for the lock (when Python code handles them): those that stop
#: a command cleanly (runners/stop_signals.py), a hang-up (the terminal closed) among them
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """A wait for another process's write lock was stopped by a signal (Ctrl-C, SIGTERM);
    no lock is held. The store turns it into a StateError (see `interrupted`)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


#: the C module that `signal` wraps: the same functions without the conversion of handlers to
#: enums, which costs ~3 µs a call (a patient write swaps four handlers, whether it waits or
#: not); `signal` itself where an implementation has no such module
_raw: Any = getattr(signal, "_signal", signal)


@contextmanager
def stoppable() -> Iterator[list[int]]:
    """While a write may wait for the lock: the stop signals that arrive are noted in the list
    yielded instead of handled (the wait looks at it between its slices). Those noted but not
    acted on (the lock was taken in the same slice) go to their own handler at the end. Only
    in the main thread (Python runs signal handlers there alone), for the signals Python code
    handles; a thread that is not the main one waits as before."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def note(signum: int, _frame: FrameType | None) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    acted_on = False
    try:
        for sig in STOP_SIGNALS:
            handler = _raw.getsignal(sig)
            if callable(handler):  # not SIG_DFL, SIG_IGN, or None (set outside Python)
                previous[sig] = handler
                _raw.signal(sig, note)
        yield caught
    except Interrupted:
        acted_on = True
        raise
    finally:
        for number, handler in previous.items():
            _raw.signal(number, handler)
        if not acted_on:
            for signum in dict.fromkeys(caught):
                if not _told_by_wakeup_fd(previous[signum]):
                    signal.raise_signal(signum)  # its handler runs now (and may raise)


def _told_by_wakeup_fd(handler: Any) -> bool:
    """Whether `handler` is an event loop's do-nothing handler (asyncio's, uvloop's
    `loop.add_signal_handler`): that loop learns of a signal from the byte the C-level
    handler writes to `signal.set_wakeup_fd`, whichever Python handler is in place, so it
    has been told of a noted one already; raising that again would deliver it twice."""
    return getattr(handler, "__name__", "") == "_sighandler_noop"


def enable_wal(conn: sqlite3.Connection, path: str, timeout: float) -> bool:
    """Switch to WAL; whether the database is in WAL mode now (a file system without shared
    memory keeps another mode). Changing the journal mode does not wait on the busy handler
    when another process holds a lock (e.g. two processes creating one database at once), so
    retry it here, bounded by the same timeout."""
    start = time.monotonic()
    try:
        return _wal(conn)
    except sqlite3.OperationalError as exc:
        if not is_locked(exc):
            raise
    delay, told = 0.001, False
    with stoppable() as caught:
        while True:
            waited = time.monotonic() - start
            if waited + delay > timeout:
                raise sqlite3.OperationalError("database is locked")
            if not told and waited >= min(LOCK_NOTICE_S, timeout):
                _say_waiting(path, timeout - waited)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            if caught:
                raise Interrupted(caught[0])
            try:
                return _wal(conn)
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise


def _wal(conn: sqlite3.Connection) -> bool:
    row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    return bool(row) and str(row[0]).lower() == "wal"


def is_locked(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _say_waiting(path: str, left: float) -> None:
    log.warning("waiting for the run record database %s, locked by another process (up to "
                "%s s more; %s sets the limit)", path, f"{max(0.0, round(left, 1)):g}",
                ENV_LOCK_TIMEOUT)


def set_busy(conn: sqlite3.Connection, seconds: float) -> None:
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")


def begin(conn: sqlite3.Connection, path: str, timeout: float, patient: bool) -> None:
    """Take the write lock (BEGIN IMMEDIATE). A `patient` connection's busy timeout is
    WAIT_SLICE_S (see `busy_timeout`): when that passes, it tries again a slice at a time
    until `timeout` has passed, says that it waits once LOCK_NOTICE_S has, and a stop signal
    (Ctrl-C) that came since its first try ends the wait with `Interrupted` between slices
    (see `stoppable`, in place before the first try: SQLite may wait a whole slice in it)."""
    if not patient:
        conn.execute("BEGIN IMMEDIATE")
        return
    start = time.monotonic()
    try:
        with stoppable() as caught:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                _wait(conn, path, start, timeout, caught)
    except BaseException:
        # a signal handed back after the lock was taken may raise (KeyboardInterrupt)
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def _wait(conn: sqlite3.Connection, path: str, start: float, timeout: float,
          caught: list[int]) -> None:
    told, busy = False, WAIT_SLICE_S
    try:
        while True:
            if caught:
                raise Interrupted(caught[0])
            waited = time.monotonic() - start
            if waited >= timeout:
                raise sqlite3.OperationalError("database is locked")
            if not told and waited >= LOCK_NOTICE_S:
                _say_waiting(path, timeout - waited)
                told = True
            if timeout - waited < busy:  # the last slice is shorter
                busy = timeout - waited
                set_busy(conn, busy)
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
    finally:
        if busy != WAIT_SLICE_S:
            set_busy(conn, WAIT_SLICE_S)


def busy_timeout(patient: bool, timeout: float) -> float:
    """The busy timeout of a connection: a slice of the wait when `begin` waits the rest
    (patient), else the whole wait (without WAL a read can wait on a writer too)."""
    return WAIT_SLICE_S if patient else timeout


def lock_timeout() -> float:
    """Seconds a write waits for another process's write lock: PLAIT_STATE_LOCK_TIMEOUT, or
    30. Raises ConfigError when it is not a number of seconds above 0."""
    text = os.environ.get(ENV_LOCK_TIMEOUT, "").strip()
    if not text:
        return BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{ENV_LOCK_TIMEOUT}={text!r} is not a number of seconds above 0",
                          hint=f"set {ENV_LOCK_TIMEOUT} to how long a run waits for another "
                               "process's lock on the run record database, e.g. 30 (the "
                               "default), or unset it")
    return value


def hint(text: str, path: str) -> str | None:
    """How to fix the SQLite error `text` about the database file `path`."""
    low = text.lower()
    if "not a database" in low or "malformed" in low or "encrypted" in low:
        return (f"the file {path} is not a plait run database, or is damaged: move it aside "
                "(a run then starts a new one there; `sqlite3 FILE .recover` may save what a "
                "damaged one holds), or point --state or PLAIT_STATE_URL at another file")
    if "full" in low:
        return "free disk space on that file system, or set PLAIT_STATE_URL elsewhere"
    if "locked" in low or "busy" in low:
        return _LOCKED_HINT
    if "readonly" in low or "read-only" in low or "permission" in low or "unable to open" in low:
        return (f"make {path} and its directory writable for this user (check their "
                "permissions, or a read-only mount), or point --state or PLAIT_STATE_URL at a "
                "writable place (e.g. sqlite:///var/lib/plait/runs.db)")
    if "i/o error" in low:
        return ("the file system refused a write: no space left, a quota or file size limit, "
                "or a failing disk; free space, or set PLAIT_STATE_URL elsewhere")
    return None


_LOCKED_HINT = ("another plait process (a run, a resume, `plait runs`), or another program, "
                "is writing it; wait for it to finish and retry, or set PLAIT_STATE_URL to "
                f"use another database ({ENV_LOCK_TIMEOUT} sets how long to wait)")


def locked(what: str, path: str, timeout: float) -> StateError:
    """The error of a wait for the write lock that timed out: plait could not `what`."""
    return StateError(f"the run record database {path} stayed locked by another process for "
                      f"{timeout:g} s; plait could not {what}", hint=_LOCKED_HINT, path=path,
                      reason="locked")


def interrupted(what: str, path: str) -> StateError:
    """The error of a wait for the write lock that a signal (Ctrl-C) stopped: its context's
    ``reason`` is "interrupted" (the CLI exits 130 on it)."""
    return StateError(f"interrupted while waiting for the run record database {path}, locked "
                      f"by another process; plait did not {what}", hint=_LOCKED_HINT,
                      path=path, reason="interrupted")


def is_locked_error(exc: StateError) -> bool:
    return exc.context.get("reason") == "locked"

