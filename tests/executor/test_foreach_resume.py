"""A resume reruns only the foreach items that did not finish: each finished item is in the
run record as it finishes, and is reused when its step, its dependencies and its value are
what they were. Steps are real commands (policy level low); ran.log says what really ran."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _workflow(tmp_path: Path, items: str = "${{ steps.list.output.stdout | trim | "
              "fromjson }}", command: str = "echo {item} >> {log}") -> Path:
    log = tmp_path / "ran.log"
    run = command.format(item="${{ item }}", log=log)
    path = tmp_path / "wf.yaml"
    path.write_text(f"""\
version: 1
name: fan
policies:
  open: {{level: low}}
defaults:
  policy: open
steps:
  list:
    run: "echo list >> {log}; echo '[\\"a\\", \\"b\\", \\"c\\", \\"d\\"]'"
  each:
    foreach: {items}
    max_parallel: 1
    run: "{run}; test ${{{{ item }}}} != c -o -e {tmp_path}/fixed || exit 3; echo ${{{{ item }}}}"
    needs: [list]
outputs:
  got: ${{{{ steps.each.output | map(attribute='stdout') | map('trim') | list }}}}
""")
    return path


async def _run(path: Path, store: RunStore, **options: Any) -> Any:
    return await run_workflow(load(path), {}, store=store, **options)


def _ran(tmp_path: Path) -> list[str]:
    return (tmp_path / "ran.log").read_text().split()


async def test_a_failed_item_is_the_only_one_run_again(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    with RunStore.open(tmp_path / "runs.db") as store:
        first = await _run(path, store)
        assert first.status == "failed"
        assert "item 2" in first.steps["each"].error["message"]
        # the items that finished are in the record; `d` never started (the step stopped
        # when `c` failed)
        assert sorted(store.step_items(first.run_id)["each"]) == [0, 1]
        (tmp_path / "fixed").touch()
        second = await _run(path, store, resume=first.run_id)
        assert second.status == "succeeded", second.error
        assert second.outputs["got"] == ["a", "b", "c", "d"]
        record = {s.step_id: s for s in store.steps(second.run_id)}["each"]
        assert {"event": "items_restored", "count": 2} in record.events
        assert record.output[1]["stdout"] == "b\n"  # a reused item's whole output
        assert store.step_items(second.run_id) == {}  # the step's row holds them now
    # `list` restored; a and b ran once; c failed once and ran again
    assert _ran(tmp_path) == ["list", "a", "b", "c", "c", "d"]


async def test_an_item_whose_value_changed_runs_again(tmp_path: Path) -> None:
    """The list comes from the environment here (not from a restored step): the item at
    index 1 is another value on resume, so it runs; index 0 and 3 are the same."""
    path = _workflow(tmp_path, items="${{ env.FAN_ITEMS | fromjson }}")
    with RunStore.open(tmp_path / "runs.db") as store:
        first = await _run(path, store, environ={"FAN_ITEMS": '["a", "b", "c", "d"]'})
        assert first.status == "failed"
        (tmp_path / "fixed").touch()
        second = await _run(path, store, resume=first.run_id,
                            environ={"FAN_ITEMS": '["a", "x", "c", "d"]'})
    assert second.outputs["got"] == ["a", "x", "c", "d"]
    assert _ran(tmp_path) == ["list", "a", "b", "c", "x", "c", "d"]


async def test_items_of_a_changed_step_all_run_again(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    with RunStore.open(tmp_path / "runs.db") as store:
        first = await _run(path, store)
        assert first.status == "failed"
        path.write_text(path.read_text().replace("echo ${{ item }} >>",
                                                 "echo again-${{ item }} >>"))
        (tmp_path / "fixed").touch()
        second = await _run(path, store, resume=first.run_id)
    assert second.status == "succeeded"
    assert _ran(tmp_path) == ["list", "a", "b", "c", "again-a", "again-b", "again-c",
                              "again-d"]


async def test_items_are_not_reused_when_a_dependency_runs_again(tmp_path: Path) -> None:
    """When `list` runs again on resume (here its row is gone, as when a run is killed
    before the row was written), the items may render from something else: none is
    reused."""
    path = _workflow(tmp_path)
    with RunStore.open(tmp_path / "runs.db") as store:
        first = await _run(path, store)
        with sqlite3.connect(tmp_path / "runs.db") as conn:
            conn.execute("DELETE FROM steps WHERE run_id = ? AND step_id = 'list'",
                         (first.run_id,))
        conn.close()
        (tmp_path / "fixed").touch()
        second = await _run(path, store, resume=first.run_id)
    assert second.status == "succeeded"
    assert _ran(tmp_path) == ["list", "a", "b", "c", "list", "a", "b", "c", "d"]


async def test_a_run_without_a_record_keeps_no_items(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    (tmp_path / "fixed").touch()
    result = await run_workflow(load(path), {}, record_state=False)
    assert result.status == "succeeded"
    assert result.outputs["got"] == ["a", "b", "c", "d"]
