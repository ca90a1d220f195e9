from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import engine.state as state
from engine.errors import ConfigError, StateError
from engine.state import RunRecord, RunStore, StepRecord, new_run_id, spec_hash
from engine.state._schema import MIGRATIONS, SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]


def make_run(run_id: str | None = None, **kw: object) -> RunRecord:
    base: dict[str, object] = dict(
        run_id=run_id or new_run_id(), workflow_name="digest", workflow_path="/w/digest.yaml",
        spec_hash=spec_hash(b"version: 1"), inputs={"folder": "./data", "n": 3},
        status="running", started_at=1_700_000_000.25)
    base.update(kw)
    return RunRecord(**base)  # type: ignore[arg-type]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore.open(tmp_path / "runs.db")
    yield s  # type: ignore[misc]
    s.close()


def test_public_surface_is_locked() -> None:
    assert set(state.__all__) == {
        "RUN_STATUSES", "STEP_STATUSES", "RunRecord", "RunStatus", "RunStore",
        "StepRecord", "StepRow", "StepStatus", "new_run_id", "owner_alive", "owner_meta",
        "spec_hash", "step_row"}
    for name in state.__all__:
        assert hasattr(state, name)


def test_run_round_trip_every_field(store: RunStore) -> None:
    run = make_run(
        finished_at=None, outputs=None, error=None, usage={"input_tokens": 10},
        cost=0.5, parent_run_id="parent1", resumed_from="older1",
        meta={"weaker_sandbox": True, "trace_id": "abc"})
    store.create_run(run)
    assert store.get_run(run.run_id) == run
    store.finish_run(run.run_id, status="failed", finished_at=1_700_000_010.5,
                     outputs={"summary": "ok", "list": [1, 2.5, None]},
                     error={"type": "StepError", "message": "boom", "step": "a"},
                     usage={"input_tokens": 12, "output_tokens": 3}, cost=1.25)
    got = store.get_run(run.run_id)
    assert got.status == "failed"
    assert got.finished_at == 1_700_000_010.5
    assert got.outputs == {"summary": "ok", "list": [1, 2.5, None]}
    assert got.error == {"type": "StepError", "message": "boom", "step": "a"}
    assert got.usage == {"input_tokens": 12, "output_tokens": 3}
    assert got.cost == 1.25
    assert (got.parent_run_id, got.resumed_from, got.meta) == (
        "parent1", "older1", {"weaker_sandbox": True, "trace_id": "abc"})


def test_step_round_trip_every_field_and_upsert(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    step = StepRecord(
        run_id=run.run_id, step_id="summarise", status="running", attempts=1,
        fingerprint="fp1", rendered_input={"messages": [{"role": "user", "content": "hé"}]},
        output=None, error=None, usage={}, cost=0.0, started_at=10.0, finished_at=None,
        items=None, audit=[], events=[])
    store.save_steps([step])
    assert store.steps(run.run_id) == [step]
    done = StepRecord(
        run_id=run.run_id, step_id="summarise", status="failed", attempts=3,
        fingerprint="fp1", rendered_input=["a", 1], output="a plain string",
        error={"kind": "timeout", "message": "took too long"},
        usage={"input_tokens": 5}, cost=0.01, started_at=10.0, finished_at=12.5, items=4,
        audit=[{"tool": "files.read_file", "allowed": True}],
        events=[{"attempt": 1, "error": "timeout"}, {"fallback": "careful"}])
    store.save_steps([done])
    assert store.steps(run.run_id) == [done]


def test_encoded_rows_read_back_as_the_same_record(store: RunStore) -> None:
    """The executor writes rows built by step_row (no StepRecord on its hot path)."""
    run = make_run()
    store.create_run(run)
    row = state.step_row(run.run_id, "pick", "succeeded", 2, {"prompt": "hé"}, ["a", "b"],
                         None, {"input_tokens": 3}, 0.5, 1.0, 2.0, 2, None,
                         [{"reason": "why"}])
    store.save_step_rows([row])
    assert store.steps(run.run_id) == [StepRecord(
        run_id=run.run_id, step_id="pick", status="succeeded", attempts=2, fingerprint="",
        rendered_input={"prompt": "hé"}, output=["a", "b"], error=None,
        usage={"input_tokens": 3}, cost=0.5, started_at=1.0, finished_at=2.0, items=2,
        audit=[], events=[{"reason": "why"}])]


def test_usual_and_full_rows_mix_in_one_batch_and_the_later_row_wins(store: RunStore) -> None:
    """A step with nothing optional gets a shorter row (fewer SQL parameters); both shapes
    read back as the full record, and within a batch the later row of a step wins."""
    run = make_run()
    store.create_run(run)
    usual = state.step_row(run.run_id, "a", "succeeded", 1, {"prompt": "p"}, "echo: p", None,
                           {"input_tokens": 1}, 0.0, 1.0, 2.0, None, [], [])
    failed = state.step_row(run.run_id, "b", "failed", 1, {"prompt": "q"}, None,
                            {"message": "boom"}, None, 0.0, 1.0, 2.0, None, [], [])
    running = state.step_row(run.run_id, "a", "running", 1, None, None, None, None, 0.0, 1.0,
                             None, None, [], [{"attempt": 1}])
    assert len(usual) < len(failed) == len(running)
    store.save_step_rows([running, usual, failed])
    assert store.steps(run.run_id) == [
        StepRecord(run.run_id, "a", "succeeded", attempts=1, rendered_input={"prompt": "p"},
                   output="echo: p", usage={"input_tokens": 1}, started_at=1.0,
                   finished_at=2.0),
        StepRecord(run.run_id, "b", "failed", attempts=1, rendered_input={"prompt": "q"},
                   error={"message": "boom"}, started_at=1.0, finished_at=2.0)]
    store.save_step_rows([usual, running])  # the other order: the running row wins
    assert store.steps(run.run_id)[0].status == "running"


def test_steps_are_ordered_by_start(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.save_steps([
        StepRecord(run.run_id, "late", "succeeded", started_at=3.0),
        StepRecord(run.run_id, "queued", "queued"),
        StepRecord(run.run_id, "early", "succeeded", started_at=1.0),
    ])
    assert [s.step_id for s in store.steps(run.run_id)] == ["early", "late", "queued"]
    assert store.steps("no-such-run") == []


@dataclass
class Odd:
    x: int


class Weird:
    def __repr__(self) -> str:
        return "Weird()"


def test_unserialisable_values_are_converted_not_fatal(store: RunStore) -> None:
    run = make_run(inputs={"p": Path("/tmp/x"), "s": {3, 1}, "t": (1, 2)})
    store.create_run(run)
    cyclic: list[object] = []
    cyclic.append(cyclic)
    store.save_steps([StepRecord(
        run.run_id, "a", "succeeded",
        output={"dc": Odd(1), "obj": Weird(), "bytes": b"hi", "bin": b"\xff\x00",
                1: "int key", "nan": math.nan, "cycle": cyclic})])
    assert store.get_run(run.run_id).inputs == {"p": "/tmp/x", "s": [1, 3], "t": [1, 2]}
    out = store.steps(run.run_id)[0].output
    assert out["dc"] == {"x": 1}
    assert out["obj"] == "<unserialisable Weird: Weird()>"
    assert out["bytes"] == "hi"
    assert out["bin"] == {"$bytes_b64": "/wA="}
    assert out["1"] == "int key"
    assert math.isnan(out["nan"])
    assert out["cycle"] == ["<cycle>"]


def test_list_runs_filters_and_orders(store: RunStore) -> None:
    for i in range(5):
        store.create_run(make_run(workflow_name="a" if i % 2 else "b", started_at=100.0 + i,
                                  status="succeeded" if i < 3 else "failed"))
    runs = store.list_runs()
    assert [r.started_at for r in runs] == [104.0, 103.0, 102.0, 101.0, 100.0]
    assert [r.started_at for r in store.list_runs(limit=2)] == [104.0, 103.0]
    assert [r.started_at for r in store.list_runs(workflow_name="a")] == [103.0, 101.0]
    assert [r.started_at for r in store.list_runs(status="failed")] == [104.0, 103.0]
    assert [r.started_at for r in store.list_runs(workflow_name="b", status="failed")] == [104.0]
    assert store.list_runs(workflow_name="zzz") == []
    assert len(store.list_runs(limit=None)) == 5 and len(store.list_runs(limit=3)) == 3
    assert store.list_runs(limit=-1) == []  # not SQLite's "no limit"


def test_run_ids_are_short_unique_and_time_sorted() -> None:
    ids = [new_run_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 15 and i.isalnum() and i.islower() for i in ids)
    before = new_run_id()
    time.sleep(0.003)
    assert new_run_id()[:9] > before[:9]


def test_get_run_accepts_unique_prefix(store: RunStore) -> None:
    a, b = make_run("aaaa1111bbbb222"), make_run("aaaa1111cccc333")
    store.create_run(a)
    store.create_run(b)
    assert store.get_run("aaaa1111b").run_id == a.run_id
    assert store.get_run("AAAA1111C").run_id == b.run_id
    custom = make_run("Custom-ID")  # ids made elsewhere keep their case
    store.create_run(custom)
    assert store.get_run("Custom-ID") == custom
    with pytest.raises(StateError, match="ambiguous") as err:
        store.get_run("aaaa1111")
    assert a.run_id in str(err.value) and b.run_id in str(err.value)


def test_unknown_run_id_suggests_close_ones(store: RunStore) -> None:
    with pytest.raises(StateError, match="no runs yet"):
        store.get_run("nothing")
    store.create_run(make_run("aaaa1111bbbb222"))
    with pytest.raises(StateError, match="did you mean aaaa1111bbbb222") as err:
        store.get_run("aaaa1111bbbb22x")
    assert err.value.hint and "did you mean" in err.value.hint


def test_duplicate_run_and_unknown_finish_are_state_errors(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    with pytest.raises(StateError, match="already exists"):
        store.create_run(run)
    with pytest.raises(StateError, match="no such run"):
        store.finish_run("missing", status="failed", finished_at=1.0, outputs=None,
                         error=None, usage={}, cost=0)


def test_closed_store_refuses(tmp_path: Path) -> None:
    s = RunStore.open(tmp_path / "r.db")
    s.close()
    s.close()  # idempotent
    with pytest.raises(StateError, match="closed"):
        s.list_runs()


def test_disk_full_is_a_state_error_and_keeps_committed_data(tmp_path: Path) -> None:
    # A real SQLITE_FULL: cap the database size, the same error SQLite returns on a full disk.
    s = RunStore.open(tmp_path / "r.db")
    run = make_run()
    s.create_run(run)
    s.save_steps([StepRecord(run.run_id, "kept", "succeeded")])
    assert s._conn is not None
    pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
    s._conn.execute(f"PRAGMA max_page_count = {pages}")
    big = [StepRecord(run.run_id, f"s{i}", "succeeded", output="x" * 5000) for i in range(50)]
    with pytest.raises(StateError, match="full") as err:
        s.save_steps(big)
    assert err.value.hint and "disk space" in err.value.hint
    s.close()
    with RunStore.open(tmp_path / "r.db") as again:
        assert [x.step_id for x in again.steps(run.run_id)] == ["kept"]  # batch all-or-nothing


def test_opening_on_a_full_disk_says_to_free_space(tmp_path: Path) -> None:
    # max_page_count makes the schema's first write fail with SQLITE_FULL, as a full disk does
    path = str(tmp_path / "r.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA max_page_count = 2")
    with pytest.raises(ConfigError, match="database or disk is full") as err:
        RunStore._setup(conn, path, "normal")
    conn.close()
    assert err.value.hint and "free disk space" in err.value.hint


def test_a_commit_sqlite_rolled_back_itself_keeps_its_real_error(tmp_path: Path) -> None:
    """A write refused at COMMIT (here by a file size limit just above the WAL index's 32 KiB)
    makes SQLite roll back by itself; the error must be that one, not 'cannot rollback'."""
    script = ("import resource, sys\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (32768, 32768))\n"
              "from engine.errors import ConfigError\n"
              "from engine.state import RunStore\n"
              "try:\n    RunStore.open(sys.argv[1])\n"
              "except ConfigError as exc:\n    print(exc.message); print(exc.hint)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r.db")],
                         capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    message, hint = out.stdout.splitlines()
    assert "cannot rollback" not in message
    assert message == f"cannot use the run record database {tmp_path / 'r.db'}: disk I/O error"
    assert "free space" in hint and "permissions" not in hint


def test_wal_and_sync_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with RunStore.open(tmp_path / "a.db") as s:
        assert s._conn is not None
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    monkeypatch.setenv("PLAIT_STATE_SYNC", "full")
    with RunStore.open(tmp_path / "a.db") as s:
        assert s._conn is not None
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    monkeypatch.setenv("PLAIT_STATE_SYNC", "sometimes")
    with pytest.raises(ConfigError, match="PLAIT_STATE_SYNC"):
        RunStore.open(tmp_path / "a.db")


def test_future_schema_is_refused(tmp_path: Path) -> None:
    RunStore.open(tmp_path / "r.db").close()
    with sqlite3.connect(tmp_path / "r.db") as conn:
        conn.execute("UPDATE plait_schema SET version = ?", (SCHEMA_VERSION + 1,))
    conn.close()
    with pytest.raises(StateError, match="newer than this plait") as err:
        RunStore.open(tmp_path / "r.db")
    assert err.value.hint and "upgrade plait" in err.value.hint


def test_migrations_cover_every_version(tmp_path: Path) -> None:
    assert sorted(MIGRATIONS) == list(range(SCHEMA_VERSION))
    # a database some other tool created empty is migrated from version 0
    sqlite3.connect(tmp_path / "empty.db").close()
    with RunStore.open(tmp_path / "empty.db") as s:
        assert s._conn is not None
        assert s._conn.execute("SELECT version FROM plait_schema").fetchall() == [
            (SCHEMA_VERSION,)]
        assert s.list_runs() == []


def test_threads_share_one_store(store: RunStore) -> None:
    import threading

    run = make_run()
    store.create_run(run)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(100):
                store.save_steps([StepRecord(run.run_id, f"t{n}-{i}", "succeeded")])
                store.steps(run.run_id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert len(store.steps(run.run_id)) == 400


def _meta_column(store: RunStore, run_id: str) -> dict[str, object]:
    import json

    assert store._conn is not None
    (text,) = store._conn.execute("SELECT meta FROM runs WHERE run_id = ?",
                                  (run_id,)).fetchone()
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_the_workflow_text_is_kept_once_per_content_and_read_back_in_meta(
        store: RunStore) -> None:
    text = "version: 1\nname: digest\nsteps:\n  a: {run: ls}\n"
    runs = [make_run(spec_hash=spec_hash(text.encode()), meta={"source": text, "owner": i})
            for i in range(2)]
    for run in runs:
        store.create_run(run)
    assert store._conn is not None
    assert store._conn.execute("SELECT count(*) FROM sources").fetchone() == (1,)
    for run in runs:
        assert "source" not in _meta_column(store, run.run_id)  # not in the row itself
        assert store.get_run(run.run_id) == run
    assert sorted(r.run_id for r in store.list_runs()) == sorted(r.run_id for r in runs)
    assert all(r.meta["source"] == text for r in store.list_runs(workflow_name="digest"))
    # a resume rewrites the meta: the text still is not copied into the row
    store.reopen_run(runs[0].run_id, meta={"source": text, "resumes": 1})
    assert _meta_column(store, runs[0].run_id) == {"resumes": 1}
    assert store.get_run(runs[0].run_id).meta == {"source": text, "resumes": 1}


def test_a_workflow_text_whose_write_was_rolled_back_is_written_again(
        store: RunStore) -> None:
    """The store skips a text it wrote before; not one whose transaction rolled back."""
    first = make_run()
    store.create_run(first)
    text = "version: 1\nname: digest\nsteps:\n  b: {run: ls}\n"
    meta = {"source": text}
    clash = make_run(run_id=first.run_id, spec_hash=spec_hash(text.encode()), meta=meta)
    with pytest.raises(StateError, match="already exists"):
        store.create_run(clash)  # the text's insert is rolled back with the run's
    run = make_run(spec_hash=clash.spec_hash, meta=meta)
    store.create_run(run)
    assert store.get_run(run.run_id).meta == meta


def test_a_text_that_is_not_the_runs_spec_stays_in_its_meta(store: RunStore) -> None:
    run = make_run(meta={"source": "not what spec_hash names"})
    store.create_run(run)
    assert _meta_column(store, run.run_id) == {"source": "not what spec_hash names"}
    assert store.get_run(run.run_id) == run


def test_a_version_1_database_is_migrated_and_its_runs_keep_their_text(
        tmp_path: Path) -> None:
    """Schema v1 kept the workflow text in each run's meta: such runs read the same after
    the migration to v2 (which adds the shared `sources` table)."""
    import json

    from engine.state import _schema

    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(_schema._V1)
        conn.execute("CREATE TABLE plait_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO plait_schema (version) VALUES (1)")
        conn.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ("old1", "digest", "/w/digest.yaml", spec_hash(b"x"), "{}", "failed", 1.0, 2.0,
             None, None, "{}", 0.0, None, None, json.dumps({"source": "x", "resumes": 0})))
    conn.close()
    with RunStore.open(path) as s:
        assert s._conn is not None
        assert s._conn.execute("SELECT version FROM plait_schema").fetchall() == [
            (SCHEMA_VERSION,)]
        assert s.get_run("old1").meta == {"source": "x", "resumes": 0}


def _item(step: str, index: int, output: str) -> tuple[object, ...]:
    from engine.state.store import item_row

    return item_row("r1", step, index, f"key{index}", 1, {"prompt": output}, output,
                    {"input_tokens": 2}, 0.5, 1.0, 2.0, None, [{"event": "retry"}])


def test_foreach_items_are_kept_until_their_step_succeeds(store: RunStore) -> None:
    from engine.state.store import step_row

    store.create_run(make_run("r1"))
    store.save_step_rows([], [_item("each", 0, "a"), _item("each", 2, "c"),
                              _item("other", 0, "x")])
    items = store.step_items("r1")
    assert sorted(items) == ["each", "other"] and sorted(items["each"]) == [0, 2]
    kept = items["each"][2]
    assert (kept.key, kept.output, kept.rendered_input, kept.usage, kept.cost,
            kept.events) == ("key2", "c", {"prompt": "c"}, {"input_tokens": 2}, 0.5,
                             [{"event": "retry"}])
    # a failed foreach step keeps its finished items (a resume reuses them) ...
    failed = step_row("r1", "each", "failed", 1, None, None, {"message": "item 1"}, {}, 0.0,
                      1.0, 2.0, None, None, None)
    store.save_step_rows([failed])
    assert sorted(store.step_items("r1")["each"]) == [0, 2]
    # ... one that succeeded holds every output in its own row: its items go
    done = step_row("r1", "each", "succeeded", 1, None, ["a", "b", "c"], None, {}, 0.0,
                    1.0, 2.0, 3, None, None)
    store.save_step_rows([done], [_item("each", 1, "b")])
    assert sorted(store.step_items("r1")) == ["other"]


def _version_2_database(path: Path) -> Path:
    from engine.state import _schema

    with sqlite3.connect(path) as conn:
        conn.executescript(_schema._V1 + _schema._V2)
        conn.execute("CREATE TABLE plait_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO plait_schema (version) VALUES (2)")
    conn.close()
    return path


def test_a_version_2_database_gets_the_items_table(tmp_path: Path) -> None:
    path = _version_2_database(tmp_path / "v2.db")
    with RunStore.open(path) as s:
        assert s.step_items("nope") == {}
        s.create_run(make_run("r1"))
        s.save_step_rows([], [_item("each", 0, "a")])
        assert list(s.step_items("r1")["each"]) == [0]
    # read where it cannot be written (so not migrated), a schema 2 database still reads
    from engine.state.store import _open_read_only

    old = _version_2_database(tmp_path / "v2-ro.db")
    reader = _open_read_only(str(old))
    assert reader is not None
    reader.close()
    read = RunStore(_open_read_only(str(old)), str(old))  # type: ignore[arg-type]
    assert read.step_items("r1") == {} and read.list_runs() == []
    read.close()
