"""Resume edges found in review: which edits of the workflow a resume accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.state import RunStore
from tests.executor.test_semantics import run, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    with RunStore.open(tmp_path / "runs.db") as opened:
        yield opened


async def test_a_finished_step_removed_from_the_file_is_ignored(
        tmp_path: Path, store: RunStore) -> None:
    """docs/run-records.md: 'a step that is no longer in the file is ignored'. A finished
    step deleted from the file was refused as 'the workflow changed for finished step(s)'."""
    path = workflow(tmp_path, """\
steps:
  a: {run: "echo a >> ran.log"}
  leaf: {run: "echo leaf >> ran.log"}
  b:
    needs: [a]
    run: "test -e fixed && echo b >> ran.log"
""")
    first = await run(path, store=store)
    assert first.status == "failed"
    path.write_text(path.read_text().replace('  leaf: {run: "echo leaf >> ran.log"}\n', ""))
    (tmp_path / "fixed").touch()
    second = await run(path, store=store, resume=first.run_id)
    assert second.ok
    assert second.steps["a"].reason.startswith("restored")
    assert sorted((tmp_path / "ran.log").read_text().split()) == ["a", "b", "leaf"]

