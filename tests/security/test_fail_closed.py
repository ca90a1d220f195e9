"""A level that cannot be enforced stops the run before anything runs (fail closed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SandboxError
from engine.sandbox import LimitedRunner, PlainRunner, check_enforceable, probe_bwrap, runner_for
from tests.security.sec_helpers import assert_healthy, make_policy

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("level", ["high", "critical"])
async def test_missing_bwrap_refuses_before_anything_runs(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, level: str) -> None:
    monkeypatch.setenv("PLAIT_BWRAP", str(tmp_path / "no-such-bwrap"))
    policy = make_policy(level, tmp_path)
    with pytest.raises(SandboxError) as excinfo:
        check_enforceable(policy)
    assert "apt-get install bubblewrap" in str(excinfo.value)
    assert "no-such-bwrap" in str(excinfo.value)
    assert excinfo.value.context["level"] == level
    with pytest.raises(SandboxError):
        runner_for(policy)
    assert list(tmp_path.iterdir()) == []  # nothing was started, nothing written


async def test_allow_weaker_returns_a_weaker_runner_that_says_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLAIT_BWRAP", str(tmp_path / "no-such-bwrap"))
    runner = runner_for(make_policy("high", tmp_path), allow_weaker=True)
    assert isinstance(runner, LimitedRunner) and runner.weaker
    await assert_healthy(runner)


def test_a_run_that_accepts_a_weaker_sandbox_says_so_on_stderr(tmp_path: Path) -> None:
    """--allow-weaker-sandbox in CI "just in case": when the sandbox really is weaker, the
    run's output says so, not only its record and trace (docs/security.md)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    (tmp_path / "wf.yaml").write_text("version: 1\nname: w\npolicies:\n  hi: {level: high}\n"
                                      "steps:\n  a:\n    run: echo hi\n    policy: hi\n")
    env = {**os.environ, "PYTHONPATH": str(root), "PLAIT_BWRAP": str(tmp_path / "no-bwrap")}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml",
                          "--no-record", "--allow-weaker-sandbox"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith(
        "policy 'hi' needs level high, which cannot be enforced on this machine: bubblewrap "
        "(bwrap) is not installed"), out.stderr
    assert "its commands and servers run with resource limits only, as " \
        "--allow-weaker-sandbox allows" in out.stderr


async def test_low_and_medium_never_need_bwrap(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("PLAIT_BWRAP", str(tmp_path / "no-such-bwrap"))
    low = runner_for(make_policy("low", tmp_path))
    medium = runner_for(make_policy("medium", tmp_path))
    assert isinstance(low, PlainRunner) and not low.weaker
    assert isinstance(medium, LimitedRunner) and not medium.weaker
    await assert_healthy(medium)


def test_bwrap_that_cannot_build_a_sandbox_is_reported(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    why = probe_bwrap(str(fake))
    assert why is not None and "No permissions" in why


@pytest.mark.bwrap
def test_probe_succeeds_when_bwrap_works() -> None:
    import shutil

    assert probe_bwrap(shutil.which("bwrap")) is None
