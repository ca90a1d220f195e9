"""Attack suite: blocked operations smuggled through wrappers, run for real (nothing runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import run_command
from engine.errors import PolicyViolation
from tests.security.sec_helpers import assert_healthy, make_runner

pytestmark = pytest.mark.anyio

SMUGGLED = [
    "rm victim.txt", "/bin/rm victim.txt", "true; rm victim.txt", "echo $(rm victim.txt)",
    "echo `rm victim.txt`", "sh -c 'rm victim.txt'", "env -i /usr/bin/rm victim.txt",
    "echo victim.txt | xargs rm", "busybox rm victim.txt", "find . -name victim.txt -delete "
    "-o -exec rm {} +", ["sh", "-c", "rm victim.txt"], ["env", "rm", "victim.txt"],
]


@pytest.mark.parametrize("level", ["medium", pytest.param("high", marks=pytest.mark.bwrap)])
@pytest.mark.parametrize("command", SMUGGLED, ids=str)
async def test_blocked_rm_never_runs(tmp_path: Path, level: str,
                                     command: str | list[str]) -> None:
    victim = tmp_path / "out" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("still here")
    policy, runner = make_runner(level, tmp_path, blocked_operations=["rm"],
                                 filesystem={"write": ["out"]})
    with pytest.raises(PolicyViolation) as excinfo:
        await run_command(command, policy=policy, runner=runner, env=None, cwd=victim.parent,
                          stdin=None, timeout=10, step_id="smuggle")
    assert excinfo.value.context["rule"] == "blocked_operations"
    assert excinfo.value.retryable is False
    assert victim.read_text() == "still here"
    outcome = await run_command("cat victim.txt", policy=policy, runner=runner, env=None,
                                cwd=victim.parent, stdin=None, timeout=10, step_id="ok")
    assert outcome.result.stdout == "still here"
    await assert_healthy(runner)
