"""How a connection to the run record database waits for another process's write lock,
and what an SQLite error about the database file means for a person (the hint to fix it).

A write waits quietly for LOCK_NOTICE_S, then says that it waits (a warning on the
``plait.state`` logger, which the CLI prints on stderr) and waits up to the rest of
PLAIT_STATE_LOCK_TIMEOUT (30 s by default); past that it is a StateError naming the database
and what to do.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import time

from engine.errors import ConfigError, StateError

ENV_LOCK_TIMEOUT = "PLAIT_STATE_LOCK_TIMEOUT"
#: how long a write waits for another process's write lock, unless PLAIT_STATE_LOCK_TIMEOUT
BUSY_TIMEOUT_S = 30.0
#: how long a write waits for the lock quietly; past this it says that it waits
LOCK_NOTICE_S = 1.0
#: how long a reader (`plait runs`) waits for the lock to check the schema before it reads
#: what is committed instead (WAL readers need no lock)
READER_WAIT_S = 0.25

log = logging.getLogger("plait.state")


def enable_wal(conn: sqlite3.Connection, path: str, timeout: float) -> bool:
    """Switch to WAL; whether the database is in WAL mode now (a file system without shared
    memory keeps another mode). Changing the journal mode does not wait on the busy handler
    when another process holds a lock (e.g. two processes creating one database at once), so
    retry it here, bounded by the same timeout."""
    start = time.monotonic()
    delay, told = 0.001, False
    while True:
        try:
            row = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            return bool(row) and str(row[0]).lower() == "wal"
        except sqlite3.OperationalError as exc:
            if not is_locked(exc):
                raise
            waited = time.monotonic() - start
            if waited + delay > timeout:
                raise
            if not told and waited >= min(LOCK_NOTICE_S, timeout):
                _say_waiting(path, timeout - waited)
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


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
    LOCK_NOTICE_S: when that passes, it says that it waits and tries again, a second at a
    time (so Ctrl-C is seen between tries), until `timeout` has passed. (Setting the busy
    timeout costs a third of a small write: only a write that waits pays for it.)"""
    start = time.monotonic()
    try:
        conn.execute("BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError as exc:
        if not patient or not is_locked(exc):
            raise
    _say_waiting(path, timeout - (time.monotonic() - start))
    try:
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                raise sqlite3.OperationalError("database is locked")
            set_busy(conn, min(LOCK_NOTICE_S, left))
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
    finally:
        set_busy(conn, LOCK_NOTICE_S)


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


def is_locked_error(exc: StateError) -> bool:
    return exc.context.get("reason") == "locked"
