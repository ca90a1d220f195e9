"""Run records edges found in review."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_an_in_memory_record_writes_no_server_logs_into_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log directory is `<state dir>/logs/RUN_ID`; an in-memory database
    (`sqlite::memory:`) has no directory, and its `.parent` ('.') put a `logs/` folder into
    whatever directory plait was started in."""
    here, elsewhere = tmp_path / "here", tmp_path / "flows"
    here.mkdir()
    elsewhere.mkdir()
    (elsewhere / "wf.yaml").write_text(f"""\
version: 1
name: logs
mcp_servers:
  noisy:
    command: {sys.executable}
    args: [{ROOT / "tests" / "mcp" / "faulty_server.py"}, --stderr, "warming up"]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: open
policies:
  open: {{level: low}}
steps:
  who:
    tool: noisy.pid
""")
    monkeypatch.chdir(here)
    with RunStore.open("sqlite::memory:") as store:
        result = await run_workflow(load(elsewhere / "wf.yaml"), {}, store=store)
        assert result.ok
        assert "logs" not in store.get_run(result.run_id).meta
    assert list(here.iterdir()) == []
    assert sorted(p.name for p in elsewhere.iterdir()) == ["wf.yaml"]
