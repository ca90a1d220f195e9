"""RunStore: run and step records in one SQLite file (stdlib sqlite3, WAL).

Durability: the database runs in WAL mode with ``synchronous=NORMAL``. A transaction that has
committed survives the process being killed (SIGKILL, OOM killer, Ctrl-C): it is in the WAL
file, which the next opener replays. It may be lost on power loss or an OS crash, when the last
transactions can roll back (never corrupt). ``PLAIT_STATE_SYNC=full`` syncs the WAL on every
commit, so a commit also survives power loss, at the cost of one fsync per batch.

Concurrency: every write is one ``BEGIN IMMEDIATE`` transaction and connections wait up to
``PLAIT_STATE_LOCK_TIMEOUT`` seconds (30 by default) for the write lock, so several processes
can share one database. A write that waits longer than a second says so (a warning on the
``plait.state`` logger); one that waits out the timeout is a StateError naming the database.
Ctrl-C (or SIGTERM) stops a wait between its slices of a quarter second: a StateError whose
context's ``reason`` is "interrupted"; the store's later writes then do not wait at all. The
writes that close a run stopped from outside (`closing()`) wait at most LOCK_NOTICE_S, then
fail the same way: a Ctrl-C that came before the wait does not leave the run waiting.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from itertools import groupby
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, StateError
from engine.state import _locking, _schema
from engine.state._json import dumps, loads
from engine.state._locking import BUSY_TIMEOUT_S, LOCK_NOTICE_S
from engine.state.location import ENV_URL, MEMORY, fix_hint, prepare_directory, resolve_location
from engine.state.records import ItemRecord, RunRecord, StepRecord

ENV_SYNC = "PLAIT_STATE_SYNC"
#: the workflow text of a run, under RunRecord.meta (stored apart: see _split_source)
SOURCE_KEY = "source"

_RUN_COLS = ("run_id, workflow_name, workflow_path, spec_hash, inputs, status, started_at, "
             "finished_at, outputs, error, usage, cost, parent_run_id, resumed_from, meta")
_STEP_COLS = ("run_id, step_id, status, attempts, fingerprint, rendered_input, output, error, "
              "usage, cost, started_at, finished_at, items, audit, events")
_INSERT_RUN = f"INSERT INTO runs ({_RUN_COLS}) VALUES ({', '.join('?' * 15)})"
#: a run with its workflow text (kept apart, once per content hash: see _schema._V2)
_SELECT_RUN = ("SELECT " + ", ".join(f"runs.{c.strip()}" for c in _RUN_COLS.split(","))
               + ", sources.text FROM runs LEFT JOIN sources ON sources.spec_hash = "
               "runs.spec_hash")
_INSERT_SOURCE = "INSERT OR IGNORE INTO sources (spec_hash, text) VALUES (?, ?)"
_UPSERT_STEP = f"INSERT OR REPLACE INTO steps ({_STEP_COLS}) VALUES ({', '.join('?' * 15)})"
#: the usual step row (no error, items, audit or events, no fingerprint) in 10 parameters,
#: the rest written as literals: binding a parameter costs ~0.2 µs, a fifth of the insert
_LEAN_COLS = 10
_UPSERT_LEAN = (f"INSERT OR REPLACE INTO steps ({_STEP_COLS}) VALUES "
                "(?, ?, ?, ?, '', ?, ?, NULL, ?, ?, ?, ?, NULL, '[]', '[]')")
_ITEM_COLS = ("step_id, item, item_key, attempts, rendered_input, output, usage, cost, "
              "started_at, finished_at, audit, events")
_UPSERT_ITEM = (f"INSERT OR REPLACE INTO step_items (run_id, {_ITEM_COLS}) VALUES "
                f"({', '.join('?' * 13)})")
#: a foreach step that succeeded holds every item's output in its own row
_DROP_ITEMS = "DELETE FROM step_items WHERE run_id = ? AND step_id = ?"
#: where `items` (the number of a foreach step's items) is in a full step row
_ITEMS_AT = 12
_FINISH_RUN = ("UPDATE runs SET status = ?, finished_at = ?, outputs = ?, error = ?, usage = ?, "
               "cost = ? WHERE run_id = ?")
_EMPTY_OBJ = "{}"
_EMPTY_LIST = "[]"


def _obj(value: dict[str, Any] | None) -> str:
    return _EMPTY_OBJ if not value else dumps(value) or _EMPTY_OBJ


def _list(value: list[Any] | None) -> str:
    return _EMPTY_LIST if not value else dumps(value) or _EMPTY_LIST


#: One step record as stored: the columns of `steps`, JSON already encoded (or the usual
#: subset of them, see step_row).
StepRow = tuple[Any, ...]


def step_row(run_id: str, step_id: str, status: str, attempts: int, rendered_input: Any,
             output: Any, error: dict[str, Any] | None, usage: dict[str, Any] | None,
             cost: float | None, started_at: float | None, finished_at: float | None,
             items: int | None, audit: list[Any] | None, events: list[Any] | None,
             fingerprint: str = "") -> StepRow:
    """Encode a step record for `RunStore.save_step_rows`. The executor builds rows with this
    directly (no StepRecord in between): it runs once per step on the hot path. A step with
    no error, items, audit, events or fingerprint (most of them) gets a shorter row."""
    if error is None and items is None and not audit and not events and not fingerprint:
        return (run_id, step_id, status, attempts, dumps(rendered_input), dumps(output),
                _obj(usage), float(cost or 0.0), started_at, finished_at)
    return (run_id, step_id, status, attempts, fingerprint, dumps(rendered_input),
            dumps(output), dumps(error), _obj(usage), float(cost or 0.0), started_at, finished_at,
            items, _list(audit), _list(events))


#: One finished foreach item as stored: the columns of `step_items`, JSON already encoded.
ItemRow = tuple[Any, ...]


def item_row(run_id: str, step_id: str, index: int, key: str, attempts: int,
             rendered_input: Any, output: Any, usage: dict[str, Any] | None,
             cost: float | None, started_at: float | None, finished_at: float | None,
             audit: list[Any] | None, events: list[Any] | None) -> ItemRow:
    """Encode a finished foreach item for `RunStore.save_step_rows(items=...)`."""
    return (run_id, step_id, index, key, attempts, dumps(rendered_input), dumps(output),
            _obj(usage), cost, started_at, finished_at, _list(audit), _list(events))


def _to_item(row: tuple[Any, ...]) -> ItemRecord:
    return ItemRecord(step_id=row[0], item=row[1], key=row[2], attempts=row[3],
                      rendered_input=loads(row[4]), output=loads(row[5]), usage=loads(row[6]),
                      cost=row[7], started_at=row[8], finished_at=row[9], audit=loads(row[10]),
                      events=loads(row[11]))


def _step_row(r: StepRecord) -> StepRow:
    return step_row(r.run_id, r.step_id, r.status, r.attempts, r.rendered_input, r.output,
                    r.error, r.usage, r.cost, r.started_at, r.finished_at, r.items, r.audit,
                    r.events, r.fingerprint)


def _run_row(r: RunRecord, meta: dict[str, Any] | None = None) -> tuple[Any, ...]:
    """`r` as a `runs` row; `meta` in place of its own (the one without its source)."""
    return (r.run_id, r.workflow_name, r.workflow_path, r.spec_hash, _obj(r.inputs), r.status,
            r.started_at, r.finished_at, dumps(r.outputs), dumps(r.error), _obj(r.usage),
            float(r.cost), r.parent_run_id, r.resumed_from,
            _obj(r.meta if meta is None else meta))


def _to_run(row: sqlite3.Row | tuple[Any, ...]) -> RunRecord:
    meta = loads(row[14])
    if len(row) > 15 and isinstance(row[15], str) and isinstance(meta, dict):
        meta.setdefault(SOURCE_KEY, row[15])
    return RunRecord(
        run_id=row[0], workflow_name=row[1], workflow_path=row[2], spec_hash=row[3],
        inputs=loads(row[4]), status=row[5], started_at=row[6], finished_at=row[7],
        outputs=loads(row[8]), error=loads(row[9]), usage=loads(row[10]), cost=row[11],
        parent_run_id=row[12], resumed_from=row[13], meta=meta)


def _split_source(meta: dict[str, Any], spec_hash: str,
                  ) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """`meta` without its workflow text, and the (hash, text) row to keep it in instead, when
    the text is what `spec_hash` names (else it stays in the meta, as in schema v1)."""
    text = meta.get(SOURCE_KEY)
    if not isinstance(text, str):
        return meta, None
    digest = _digest(text)
    if spec_hash not in (digest, "sha256:" + digest):  # bare, or as `spec_hash()` writes it
        return meta, None
    return {k: v for k, v in meta.items() if k != SOURCE_KEY}, (spec_hash, text)


@functools.lru_cache(maxsize=16)
def _digest(text: str) -> str:
    """The SHA-256 of a workflow text, hex: once per text (every run of a workflow hands over
    the same string; hashing tens of kB each run is not free)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _to_step(row: tuple[Any, ...]) -> StepRecord:
    return StepRecord(
        run_id=row[0], step_id=row[1], status=row[2], attempts=row[3], fingerprint=row[4],
        rendered_input=loads(row[5]), output=loads(row[6]), error=loads(row[7]),
        usage=loads(row[8]), cost=row[9], started_at=row[10], finished_at=row[11],
        items=row[12], audit=loads(row[13]), events=loads(row[14]))


def _open_read_only(path: str, timeout: float = BUSY_TIMEOUT_S) -> sqlite3.Connection | None:
    """The database opened for reading only, or None if it cannot be read either. A WAL
    database whose directory cannot be written has no shared-memory file to coordinate
    through: it is then read as immutable (nobody can be writing it from here)."""
    uri = Path(path).absolute().as_uri()
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + query, uri=True, timeout=timeout,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            continue
        try:
            row = conn.execute("SELECT max(version) FROM plait_schema").fetchone()
        except sqlite3.Error:
            conn.close()
            continue
        if row is None or not _schema.READABLE <= row[0] <= _schema.SCHEMA_VERSION:
            # an older one needs its migration (a write), a newer one is unread
            conn.close()
            return None
        return conn
    return None


def _sync_mode() -> str:
    mode = os.environ.get(ENV_SYNC, "normal").strip().lower() or "normal"
    if mode not in ("normal", "full"):
        raise ConfigError(f"{ENV_SYNC}={mode!r} is not a sync mode",
                          hint=f"set {ENV_SYNC} to 'normal' (the default) or 'full'")
    return mode


def _no_database_hint(location: str | Path | None) -> str:
    """How to find the runs when there is no database where a reader looked: beside the
    workflow by default, else where --state or PLAIT_STATE_URL pointed (which the user
    gave, so the hint must not tell them to give it)."""
    if location is not None:
        return ("check the path given with --state: a run records there only when it is "
                "given the same --state")
    if os.environ.get(ENV_URL, "").strip():
        return (f"check {ENV_URL}: a run records there only when it runs with the same "
                f"{ENV_URL}")
    return ("a run creates it next to its workflow file: run this in the workflow's "
            "directory, name the workflow (--workflow FILE; plait resume --file FILE), or "
            f"pass --state PATH or set {ENV_URL}")


class RunStore:
    """Run records in one SQLite database. Thread-safe; share one per process."""

    def __init__(self, conn: sqlite3.Connection, path: str, *,
                 timeout: float = BUSY_TIMEOUT_S, patient: bool = False) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        #: how long a write waits for the lock; `patient`: the connection's own busy timeout
        #: is a slice of that, and a write waits the rest a slice at a time, stopped by
        #: Ctrl-C (see _locking.begin)
        self._timeout = timeout
        self._patient = patient
        self._lock = threading.Lock()
        #: a write's wait for the lock was stopped by Ctrl-C (or SIGTERM): the process is
        #: stopping, so later writes (closing the run's record) do not wait any more
        self.interrupted = False
        #: `.on` in a thread inside `closing()`
        self._closing = threading.local()
        #: spec hashes whose workflow text this store has written (sources are never
        #: deleted): the next run of the same workflow does not send the text again
        self._stored_sources: set[str] = set()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, location: str | Path | None = None, *,
             workflow_path: Path | None = None, create: bool = True) -> RunStore:
        """Open (creating if needed) the run record database.

        ``location`` None means ``PLAIT_STATE_URL`` if set, else ``.plait/runs.db`` beside the
        workflow. Raises ConfigError if the location cannot be used, StateError if the
        database's schema is newer than this plait, if it is another program's database, or
        if another process holds its write lock past PLAIT_STATE_LOCK_TIMEOUT. With
        ``create=False`` (readers: listing, showing, resuming) a database that does not exist
        is a StateError and nothing is created, and a database another process is writing
        is read without waiting for its lock.
        """
        path = resolve_location(location, workflow_path=workflow_path)
        sync, timeout = _sync_mode(), _locking.lock_timeout()
        if not create and path != MEMORY and not Path(path).exists():
            raise StateError(f"there is no run record database at {path}",
                             hint=_no_database_hint(location), path=path)
        prepare_directory(path)
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the run record database {path}: {exc}",
                              hint=_locking.hint(str(exc), path) or fix_hint()) from exc
        try:
            # a reader waits for nobody: it reads what is committed instead (WAL)
            patient = cls._setup(conn, path, sync, timeout if create else
                                 min(timeout, _locking.READER_WAIT_S))
        except (ConfigError, StateError) as exc:
            conn.close()
            busy = isinstance(exc, StateError) and _locking.is_locked_error(exc)
            if create or path == MEMORY or not (busy or isinstance(exc, ConfigError)):
                raise
            # a reader may read what it cannot write (a read-only mount, another user's)
            read_only = _open_read_only(path, timeout)
            if read_only is None:
                raise
            return cls(read_only, path, timeout=timeout)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, timeout=timeout, patient=patient)

    @staticmethod
    def _setup(conn: sqlite3.Connection, path: str, sync: str,
               timeout: float = BUSY_TIMEOUT_S) -> bool:
        """Set the connection up and the schema; whether its writes are patient (see
        _locking.begin). A database locked past `timeout` is a StateError."""
        try:
            wal = path != MEMORY and _locking.enable_wal(conn, path, timeout)
            patient = wal and timeout > LOCK_NOTICE_S
            _locking.set_busy(conn, _locking.busy_timeout(patient, timeout))
            conn.execute(f"PRAGMA synchronous = {sync.upper()}")
            _locking.begin(conn, path, timeout, patient)  # also proves the database is writable
            try:
                _schema.migrate(conn, path)
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (disk full): keep the real error
                RunStore._rollback(conn)
                raise
        except StateError:
            raise
        except _locking.Interrupted:
            raise _locking.interrupted("open it", path) from None
        except sqlite3.DatabaseError as exc:
            if _locking.is_locked(exc):
                raise _locking.locked("open it", path, timeout) from exc
            raise ConfigError(f"cannot use the run record database {path}: {exc}",
                              hint=_locking.hint(str(exc), path) or fix_hint()) from exc
        return patient

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def closing(self) -> Iterator[None]:
        """The writes of this thread inside are those that close a run stopped from outside
        (Ctrl-C, a cancelled caller): the process may be stopping, so one waits for another
        process's lock at most LOCK_NOTICE_S (not the whole PLAIT_STATE_LOCK_TIMEOUT), then
        fails as a wait that Ctrl-C stopped does (`interrupted` is set: later writes do not
        wait, and the run's record is left resumable)."""
        before = getattr(self._closing, "on", False)
        self._closing.on = True
        try:
            yield
        finally:
            self._closing.on = before

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._live()
            closing = self._patient and getattr(self._closing, "on", False)
            try:
                _locking.begin(conn, self.path, min(self._timeout, LOCK_NOTICE_S) if closing
                               else self._timeout, self._patient)
            except sqlite3.Error as exc:
                if closing and _locking.is_locked(exc):
                    self._stop_waiting(conn)
                    raise _locking.interrupted(what, self.path) from None
                raise self._error(what, exc) from exc
            except _locking.Interrupted:
                self._stop_waiting(conn)
                raise _locking.interrupted(what, self.path) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._stored_sources.clear()  # a workflow text it wrote may be gone with it
                self._rollback(conn)
                if isinstance(exc, sqlite3.Error):
                    raise self._error(what, exc) from exc
                raise

    @contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._live()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error(what, exc) from exc

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateError(f"the run record store {self.path} is closed")
        return self._conn

    def _stop_waiting(self, conn: sqlite3.Connection) -> None:
        """After an interrupted wait: a write takes the lock if it is free, else fails at once
        (a locked StateError). The record of an interrupted run is closed if it can be."""
        self.interrupted, self._patient = True, False
        with suppress(sqlite3.Error):
            _locking.set_busy(conn, 0)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _error(self, what: str, exc: sqlite3.Error) -> StateError:
        text = str(exc)
        if _locking.is_locked(exc):
            return _locking.locked(what, self.path, self._timeout)
        return StateError(f"could not {what} in the run record database {self.path}: {text}",
                          hint=_locking.hint(text, self.path))

    # ------------------------------------------------------------------ writes

    def create_run(self, record: RunRecord) -> None:
        meta, source = _split_source(record.meta, record.spec_hash)
        row = _run_row(record, meta)
        try:
            with self._write(f"record run {record.run_id}") as conn:
                self._store_source(conn, source)
                conn.execute(_INSERT_RUN, row)
        except StateError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise StateError(f"run {record.run_id} already exists in {self.path}",
                                 hint="make a new id with new_run_id()") from exc
            raise

    def _store_source(self, conn: sqlite3.Connection, source: tuple[str, str] | None) -> None:
        """Keep a workflow text (hash, text) unless this store already did. The hash counts as
        stored once the statement ran; a transaction that then rolls back forgets them all."""
        if source is not None and source[0] not in self._stored_sources:
            conn.execute(_INSERT_SOURCE, source)
            self._stored_sources.add(source[0])

    def finish_run(self, run_id: str, *, status: str, finished_at: float | None,
                   outputs: dict[str, Any] | None, error: dict[str, Any] | None,
                   usage: dict[str, Any], cost: float) -> None:
        row = (status, finished_at, dumps(outputs), dumps(error), _obj(usage), float(cost),
               run_id)
        with self._write(f"finish run {run_id}") as conn:
            changed = conn.execute(_FINISH_RUN, row).rowcount
            if changed != 1:
                raise StateError(f"cannot finish run {run_id}: no such run in {self.path}")

    def reopen_run(self, run_id: str, *, meta: dict[str, Any],
                   seen: RunRecord | None = None,
                   inputs: dict[str, Any] | None = None,
                   workflow_path: str | None = None) -> None:
        """Mark an unfinished run as running again (a resume), replacing its meta (and its
        inputs, if given: a resume may add inputs the workflow declared since; and its
        workflow path, if given: a resume may run a file that was moved since).

        `seen` is the record the resume was decided on: when the run's status or owner is no
        longer that one's (another process resumed it, or finished it, in the meantime), the
        claim is refused. Checked in the claim's own transaction, so of two resumes started
        together exactly one runs the steps."""
        with self._write(f"reopen run {run_id}") as conn:
            found = conn.execute("SELECT spec_hash, status, meta FROM runs WHERE run_id = ?",
                                 (run_id,)).fetchone()
            if found is not None and seen is not None:
                _check_unclaimed(run_id, seen, found[1], loads(found[2]))
            meta, source = _split_source(meta, found[0]) if found else (meta, None)
            self._store_source(conn, source)
            changed = conn.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL, meta = ?, "
                "inputs = coalesce(?, inputs), workflow_path = coalesce(?, workflow_path) "
                "WHERE run_id = ?",
                (_obj(meta), None if inputs is None else _obj(inputs), workflow_path,
                 run_id)).rowcount
            if changed != 1:
                raise StateError(f"cannot resume run {run_id}: no such run in {self.path}")

    def update_meta(self, run_id: str, values: dict[str, Any]) -> None:
        """Set these keys of a run's meta, keeping the others."""
        with self._write(f"update the meta of run {run_id}") as conn:
            found = conn.execute("SELECT meta FROM runs WHERE run_id = ?",
                                 (run_id,)).fetchone()
            if found is None:
                raise StateError(f"cannot update run {run_id}: no such run in {self.path}")
            meta = loads(found[0])
            meta = {**(meta if isinstance(meta, dict) else {}), **values}
            conn.execute("UPDATE runs SET meta = ? WHERE run_id = ?", (_obj(meta), run_id))

    def save_steps(self, records: Sequence[StepRecord]) -> None:
        """Upsert a batch of step records in one transaction (all or nothing)."""
        self.save_step_rows([_step_row(r) for r in records])

    def save_step_rows(self, rows: Sequence[StepRow], items: Sequence[ItemRow] = ()) -> None:
        """Upsert a batch of encoded step records (`step_row`) and finished foreach items
        (`item_row`) in one transaction. A foreach step's row that says it succeeded drops
        its item rows (written earlier, or in this very batch)."""
        if not rows and not items:
            return
        with self._write(f"save {len(rows) + len(items)} step record(s)") as conn:
            if items:
                conn.executemany(_UPSERT_ITEM, items)
            # in order (a later row of the same step wins), a run of rows per statement
            for width, same in groupby(rows, len):
                conn.executemany(_UPSERT_LEAN if width == _LEAN_COLS else _UPSERT_STEP, same)
            done = [(r[0], r[1]) for r in rows
                    if len(r) > _ITEMS_AT and r[_ITEMS_AT] is not None and r[2] == "succeeded"]
            if done:
                conn.executemany(_DROP_ITEMS, done)

    # ------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id, or with this unique id prefix (like git)."""
        key = run_id.strip().lower()
        with self._read(f"read run {run_id}") as conn:
            for exact in dict.fromkeys((run_id.strip(), key)):
                row = conn.execute(f"{_SELECT_RUN} WHERE runs.run_id = ?",
                                   (exact,)).fetchone()
                if row is not None:
                    return _to_run(row)
            rows = conn.execute(
                f"{_SELECT_RUN} WHERE runs.run_id >= ? AND runs.run_id < ? "
                "ORDER BY run_id LIMIT 11", (key, key + "\U0010ffff")).fetchall() if key else []
            if len(rows) == 1:
                return _to_run(rows[0])
            if rows:
                ids = ", ".join(r[0] for r in rows[:10])
                raise StateError(f"run id prefix {run_id!r} is ambiguous: {ids}",
                                 hint="give more characters of the id")
            recent = [r[0] for r in conn.execute(
                "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 200")]
        raise StateError(f"no run {run_id!r} in {self.path}", hint=_did_you_mean(key, recent))

    def steps(self, run_id: str) -> list[StepRecord]:
        """Every step record of a run, in the order the steps started (unstarted last)."""
        with self._read(f"read the steps of run {run_id}") as conn:
            rows = conn.execute(
                f"SELECT {_STEP_COLS} FROM steps WHERE run_id = ? "
                "ORDER BY started_at IS NULL, started_at, step_id", (run_id,)).fetchall()
        return [_to_step(r) for r in rows]

    def step_items(self, run_id: str) -> dict[str, dict[int, ItemRecord]]:
        """The finished items of the run's foreach steps that did not finish (step id ->
        item index -> record). A database from before items were kept has none."""
        with self._read(f"read the foreach items of run {run_id}") as conn:
            try:
                rows = conn.execute(f"SELECT {_ITEM_COLS} FROM step_items WHERE run_id = ?",
                                    (run_id,)).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" not in str(exc):
                    raise
                rows = []  # a read-only database of schema 2
        found: dict[str, dict[int, ItemRecord]] = {}
        for row in rows:
            found.setdefault(row[0], {})[row[1]] = _to_item(row)
        return found

    def child_runs(self, run_id: str) -> list[RunRecord]:
        """The sub-workflow runs started by the steps of run `run_id`, oldest first."""
        with self._read(f"read the sub-workflow runs of run {run_id}") as conn:
            rows = conn.execute(f"{_SELECT_RUN} WHERE runs.parent_run_id = ? "
                                "ORDER BY runs.started_at, runs.run_id", (run_id,)).fetchall()
        return [_to_run(r) for r in rows]

    def list_runs(self, *, limit: int | None = 20, workflow_name: str | None = None,
                  status: str | None = None, top_level: bool = False) -> list[RunRecord]:
        """Most recent runs first (at most `limit`, None for all), optionally filtered by
        workflow name and status; `top_level` leaves out sub-workflows' runs (those with a
        parent run)."""
        where, args = [], []
        if top_level:
            where.append("runs.parent_run_id IS NULL")
        if workflow_name is not None:
            where.append("runs.workflow_name = ?")
            args.append(workflow_name)
        if status is not None:
            where.append("runs.status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        sql = (f"{_SELECT_RUN} {clause}"
               "ORDER BY runs.started_at DESC, runs.run_id DESC LIMIT ?")
        with self._read("list runs") as conn:
            rows = conn.execute(sql, (*args, -1 if limit is None else max(0, int(limit)))
                                ).fetchall()
        return [_to_run(r) for r in rows]

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _did_you_mean(key: str, recent: list[str]) -> str:
    if not recent:
        return "this database has no runs yet; `plait runs list` shows the stored runs"
    close = difflib.get_close_matches(key, recent, n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    return "`plait runs list` shows the stored runs"


def _check_unclaimed(run_id: str, seen: RunRecord, status: str, meta: Any) -> None:
    """Refuse a resume's claim when the run changed since the resume read it."""
    owner = meta.get("owner") if isinstance(meta, dict) else None
    if status == seen.status and owner == seen.meta.get("owner"):
        return
    who = (f" (process {owner.get('pid')} on {owner.get('host')})"
           if isinstance(owner, dict) and status == "running" else "")
    raise StateError(f"cannot resume run {run_id}: another process resumed it meanwhile{who}; "
                     f"it is now {status}",
                     hint="wait for that resume to end (`plait runs show` shows it); resume "
                          "again only if it did not succeed")
