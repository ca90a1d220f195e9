"""A stdio MCP server's stderr goes to the run's log directory, not the terminal, and with no
secret in it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.mcp.shared import SharedRuntimes
from engine.spec.loader import load, load_text
from engine.state import RunStore

ROOT = Path(__file__).resolve().parents[2]


def noisy_workflow(stderr: str) -> str:
    """A workflow whose one step calls a tool of a server that writes `stderr` at start."""
    return f"""\
version: 1
name: logs
mcp_servers:
  noisy:
    command: {sys.executable}
    args: [{ROOT / "tests" / "mcp" / "faulty_server.py"}, --stderr, "{stderr}"]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: open
policies:
  open: {{level: low}}
steps:
  who:
    tool: noisy.pid
"""


def test_server_stderr_is_kept_with_the_run(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(noisy_workflow("warming up the noisy server"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "warming up" not in out.stderr and "warming up" not in out.stdout
    run_id = json.loads(out.stdout)["run_id"]
    log = tmp_path / ".plait" / "logs" / run_id / "noisy.stderr.log"
    assert "warming up the noisy server" in log.read_text()
    shown = subprocess.run([sys.executable, "-m", "runners.cli.main", "runs", "show", run_id,
                            "--json", "--workflow", "wf.yaml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, env=env, check=True)
    assert json.loads(shown.stdout)["meta"]["logs"] == str(log.parent)


SECRET = "tok-5f2a9c7e1d3b8a64"


@pytest.mark.parametrize("shared", [False, True], ids=["own-servers", "shared-servers"])
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_a_secret_the_server_prints_is_masked_in_its_log(tmp_path: Path,
                                                               shared: bool) -> None:
    """The server prints the secret it was given in `env:` to stderr, split across two writes
    at start and as an unterminated last line at exit: the log has the masked form only, also
    when the server is shared by the runs of a batch (`plait batch`, `plait mcp serve`)."""
    workflow = load_text(f"""\
version: 1
name: leaky
secrets: [MY_TOKEN]
mcp_servers:
  leaky:
    command: {sys.executable}
    args: [{ROOT / "tests" / "mcp" / "faulty_server.py"}, --stderr-env, TOK]
    env: {{PYTHONPATH: "{ROOT}", TOK: "${{{{ secrets.MY_TOKEN }}}}"}}
    policy: open
policies:
  open: {{level: low}}
steps:
  who:
    tool: leaky.pid
""", str(tmp_path / "wf.yaml"))
    environ = {**os.environ, "MY_TOKEN": SECRET}
    if shared:
        async with SharedRuntimes() as pool:
            result = await run_workflow(workflow, {}, environ=environ, mcp_pool=pool)
    else:
        result = await run_workflow(workflow, {}, environ=environ)
    assert result.ok, result.error
    log = tmp_path / ".plait" / "logs" / result.run_id / "leaky.stderr.log"
    text = log.read_text()
    assert "starting with token *** (env TOK)\n" in text
    assert text.endswith("stopping, token ***")
    half = len(SECRET) // 2
    assert SECRET[:half] not in text and SECRET[half:] not in text
    assert SECRET.encode() not in (tmp_path / ".plait" / "runs.db").read_bytes()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_an_in_memory_record_writes_no_server_logs_into_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The log directory is `<state dir>/logs/RUN_ID`; an in-memory database
    (`sqlite::memory:`) has no directory, and its `.parent` ('.') put a `logs/` folder into
    whatever directory plait was started in."""
    here, elsewhere = tmp_path / "here", tmp_path / "flows"
    here.mkdir()
    elsewhere.mkdir()
    (elsewhere / "wf.yaml").write_text(noisy_workflow("warming up"))
    monkeypatch.chdir(here)
    with RunStore.open("sqlite::memory:") as store:
        result = await run_workflow(load(elsewhere / "wf.yaml"), {}, store=store)
        assert result.ok
        assert "logs" not in store.get_run(result.run_id).meta
    assert list(here.iterdir()) == []
    assert sorted(p.name for p in elsewhere.iterdir()) == ["wf.yaml"]
