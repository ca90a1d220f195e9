"""The SQLite schema of the run records, its version, and the migrations between versions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from engine.errors import StateError

SCHEMA_VERSION = 4
#: the oldest schema read as it is when the database cannot be written (and so migrated):
#: v3 only added a table, whose absence reads as empty, and v4 an index
READABLE = 2

_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    workflow_path TEXT NOT NULL,
    spec_hash     TEXT NOT NULL,
    inputs        TEXT NOT NULL,
    status        TEXT NOT NULL,
    started_at    REAL NOT NULL,
    finished_at   REAL,
    outputs       TEXT,
    error         TEXT,
    usage         TEXT NOT NULL,
    cost          REAL NOT NULL DEFAULT 0,
    parent_run_id TEXT,
    resumed_from  TEXT,
    meta          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow_name, started_at);
CREATE TABLE IF NOT EXISTS steps (
    run_id         TEXT NOT NULL,
    step_id        TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    fingerprint    TEXT NOT NULL,
    rendered_input TEXT,
    output         TEXT,
    error          TEXT,
    usage          TEXT NOT NULL,
    cost           REAL NOT NULL,
    started_at     REAL,
    finished_at    REAL,
    items          INTEGER,
    audit          TEXT NOT NULL,
    events         TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;
"""

#: v2: the workflow text of a run is kept once per content hash (the run's spec_hash), not in
#: each run's meta: the runs of one workflow share it, and finishing a run no longer rewrites
#: it (SQLite rewrites a whole row on UPDATE). Runs recorded by v1 keep it in their meta.
_V2 = """
CREATE TABLE IF NOT EXISTS sources (
    spec_hash TEXT PRIMARY KEY,
    text      TEXT NOT NULL
) WITHOUT ROWID;
"""

#: v3: the finished items of a foreach step that has not finished (yet), one row each, so a
#: resume reruns only the items that did not finish. A step's rows are deleted when the step
#: succeeds (its own row then holds every item's output).
_V3 = """
CREATE TABLE IF NOT EXISTS step_items (
    run_id         TEXT NOT NULL,
    step_id        TEXT NOT NULL,
    item           INTEGER NOT NULL,
    item_key       TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    rendered_input TEXT,
    output         TEXT,
    usage          TEXT NOT NULL,
    cost           REAL,
    started_at     REAL,
    finished_at    REAL,
    audit          TEXT NOT NULL,
    events         TEXT NOT NULL,
    PRIMARY KEY (run_id, step_id, item)
) WITHOUT ROWID;
"""

#: v4: an index of the runs by their calling run, for the sub-workflow runs of a run (a
#: resume looks them up; `plait runs show` lists them). Only sub-workflows' runs are in it.
_V4 = """
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs (parent_run_id)
    WHERE parent_run_id IS NOT NULL;
"""

#: MIGRATIONS[n] brings a database from version n to n + 1 (0 is an empty database).
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: lambda conn: _script(conn, _V1),
    1: lambda conn: _script(conn, _V2),
    2: lambda conn: _script(conn, _V3),
    3: lambda conn: _script(conn, _V4),
}


def _script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def read_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS plait_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM plait_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the schema up to date inside the caller's write transaction."""
    version = read_version(conn)
    if version == 0:
        _refuse_foreign(conn, path)
    if version > SCHEMA_VERSION:
        raise StateError(
            f"the run record database {path} has schema version {version}, newer than "
            f"this plait understands ({SCHEMA_VERSION})",
            hint="upgrade plait, or point PLAIT_STATE_URL at another database")
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute("DELETE FROM plait_schema")
        conn.execute("INSERT INTO plait_schema (version) VALUES (?)", (version,))


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """A database with no plait schema yet must be empty: tables of its own make it another
    program's, which plait must not add its tables to (nor read as run records)."""
    names = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'plait_schema' ORDER BY name LIMIT 4")]
    if names:
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise StateError(
            f"{path} is an SQLite database of another program (it holds the tables {shown}), "
            "not a plait run database", path=path,
            hint="point --state or PLAIT_STATE_URL at another file (plait creates it), or "
                 "move this one aside if it is not needed here")
