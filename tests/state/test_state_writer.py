from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from engine.errors import StateError
from engine.state import RunRecord, RunStore, StepRecord
from engine.state.writer import StepWriter

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def open_store(path: Path) -> RunStore:
    store = RunStore.open(path)
    store.create_run(RunRecord("run1", "wf", "wf.yaml", "sha256:0", {}, "running", 1.0))
    return store


def recs(n: int, prefix: str = "s") -> list[StepRecord]:
    return [StepRecord("run1", f"{prefix}{i:04d}", "succeeded", output={"i": i})
            for i in range(n)]


@pytest.mark.parametrize("in_thread", [False, True])
async def test_concurrent_saves_share_commits(tmp_path: Path, in_thread: bool) -> None:
    with open_store(tmp_path / "r.db") as store:
        async with StepWriter(store, in_thread=in_thread) as writer, \
                anyio.create_task_group() as tg:
            for record in recs(300):
                tg.start_soon(writer.save, record)
        assert writer.records == 300
        assert writer.commits <= 10  # one burst: a handful of group commits, not 300
        assert len(store.steps("run1")) == 300


async def test_save_returns_only_once_durable(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.db") as store:
        async with StepWriter(store) as writer:
            for record in recs(5):
                await writer.save(record)
                # another connection (another process, after a SIGKILL) sees it already
                with RunStore.open(tmp_path / "r.db") as other:
                    assert record.step_id in {s.step_id for s in other.steps("run1")}
        assert writer.commits == 5


async def test_a_failed_commit_reaches_every_waiter(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.db") as store:
        assert store._conn is not None
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")  # a real SQLITE_FULL
        errors: list[str] = []

        async def save(record: StepRecord) -> None:
            try:
                await writer.save(record)
            except StateError as exc:
                errors.append(str(exc))

        big = [StepRecord("run1", f"b{i}", "succeeded", output="x" * 4000) for i in range(20)]
        async with StepWriter(store) as writer, anyio.create_task_group() as tg:
            for record in big:
                tg.start_soon(save, record)
        assert len(errors) == 20
        assert all("were not saved" in e and "full" in e for e in errors)


async def test_cancelled_run_still_commits_queued_records(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.db") as store:
        with anyio.CancelScope() as scope:
            async with StepWriter(store) as writer, anyio.create_task_group() as tg:
                for record in recs(50):
                    tg.start_soon(writer.save, record)
                scope.cancel()  # Ctrl-C while the steps are handing in their records
                await anyio.sleep(5)
        assert scope.cancelled_caught
        assert len(store.steps("run1")) == 50


async def test_writer_outside_its_context_refuses(tmp_path: Path) -> None:
    with open_store(tmp_path / "r.db") as store:
        writer = StepWriter(store)
        with pytest.raises(StateError, match="async with"):
            await writer.save(recs(1)[0])
        async with writer:
            pass
        with pytest.raises(StateError, match="not running"):
            await writer.save(recs(1)[0])
