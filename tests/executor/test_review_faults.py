"""Step semantics under failure, found in review: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.executor.test_semantics import run, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_keep_going_does_not_run_what_lies_below_a_failure_through_a_tolerant_step(
        tmp_path: Path) -> None:
    # b tolerates its own failure, but it never ran: a failed before it. c depends on b, so
    # on a: with --keep-going it is cancelled like every other dependant of the failure
    marker = tmp_path / "c-ran"
    path = workflow(tmp_path, f"""\
steps:
  a: {{run: "exit 3"}}
  b: {{run: echo b, needs: [a], continue_on_error: true}}
  c: {{run: "touch {marker}", needs: [b]}}
  other: {{run: echo other}}
""")
    result = await run(path, record_state=False, keep_going=True)
    assert result.status == "failed"
    assert result.error["step"] == "a"
    assert result.steps["b"].status == "cancelled"
    assert result.steps["c"].status == "cancelled"
    assert result.steps["c"].reason == "cancelled dependency: b"
    assert result.steps["other"].status == "succeeded"
    assert not marker.exists()
