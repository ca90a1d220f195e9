"""Attack suite: processes that outlive the step or the engine, bombs, spins, huge output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.commands import run_command
from engine.errors import CommandFailed, StepTimeout
from tests.security.sec_helpers import assert_healthy, live_processes, make_runner, wait_until

pytestmark = pytest.mark.anyio
LEVELS = ["low", "medium", pytest.param("high", marks=pytest.mark.bwrap)]
WORKTREE = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("level", LEVELS)
async def test_grandchild_that_escapes_the_group_dies_with_the_step(tmp_path: Path,
                                                                     level: str) -> None:
    marker = "1013.5"
    _, runner = make_runner(level, tmp_path)
    escape = f"setsid sh -c 'trap \"\" TERM HUP; exec sleep {marker}' & echo started"
    result = await runner.run(["sh", "-c", escape], cwd=str(tmp_path))
    assert result.stdout == "started\n"
    assert wait_until(lambda: not live_processes(f"sleep {marker}"), 3)
    await assert_healthy(runner)


@pytest.mark.parametrize("level", LEVELS)
async def test_cpu_spin_is_killed_at_the_time_limit(tmp_path: Path, level: str) -> None:
    policy, runner = make_runner(level, tmp_path, max_execution_time=1)
    started = time.monotonic()
    with pytest.raises(StepTimeout, match="time limit") as excinfo:
        await run_command("while :; do :; done", policy=policy, runner=runner, env=None,
                          cwd=tmp_path, stdin=None, timeout=None, step_id="spin")
    assert time.monotonic() - started < 5
    assert excinfo.value.audit.decision == "allowed"  # type: ignore[attr-defined]
    assert excinfo.value.audit.killed_by == "max_execution_time"  # type: ignore[attr-defined]
    assert not live_processes("while :; do :; done")
    await assert_healthy(runner)


ENGINE = """
import os, sys, anyio
from pathlib import Path
from engine.policy import resolve_policy
from engine.sandbox import runner_for
from engine.spec.models import PolicySpec

policy = resolve_policy(PolicySpec(level=sys.argv[1]), name="p", base_dir=Path("."), env={})
runner = runner_for(policy)

async def main():
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: runner.run(["sleep", sys.argv[2]]))
        delay = float(sys.argv[3])
        if delay >= 0:  # SIGKILL ourselves this long after starting the sandbox
            await anyio.sleep(delay)
            os.kill(os.getpid(), 9)

anyio.run(main)
"""


def _engine(level: str, marker: str, delay: float, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", ENGINE, level, marker, str(delay)], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(WORKTREE)})


@pytest.mark.bwrap
def test_sandboxed_child_dies_when_the_engine_is_sigkilled(tmp_path: Path) -> None:
    marker = "1017.25"
    proc = _engine("high", marker, -1, tmp_path)
    try:
        # the sandboxed command itself runs (not only bwrap, whose argv also holds the marker)
        assert wait_until(lambda: bool(live_processes(f"sleep {marker}", comm="sleep")), 15)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: not live_processes(f"sleep {marker}"), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.parametrize("level", ["low", "medium"])
def test_a_commands_grandchild_dies_when_the_engine_is_sigkilled(tmp_path: Path,
                                                                 level: str) -> None:
    """PR_SET_PDEATHSIG kills the command when the engine is SIGKILLed, not what the command
    started in the background: the engine's guard (engine.sandbox._guard) kills those."""
    marker = "1019.5" if level == "low" else "1019.75"
    command = f"sleep {marker} & exec sleep 1{marker}"
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE.replace('["sleep", sys.argv[2]]', "sys.argv[2].split('|')"),
         level, f"sh|-c|{command}", "-1"], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(WORKTREE)})
    try:
        assert wait_until(lambda: bool(live_processes(f"sleep {marker}", comm="sleep")), 15)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert wait_until(lambda: not live_processes(f"sleep {marker}"), 5)
        assert wait_until(lambda: not live_processes(f"sleep 1{marker}"), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.bwrap
@pytest.mark.parametrize("delay", [0.0, 0.002, 0.004, 0.006, 0.008, 0.012, 0.02])
def test_engine_killed_while_bwrap_starts_leaves_nothing(tmp_path: Path, delay: float) -> None:
    """bwrap sets --die-with-parent only once it runs; an engine killed in that window used to
    leave the sandbox (or its half-built namespace init) behind. The lifeline guard closes it."""
    marker = f"1021.{int(delay * 1000) + 1}"
    proc = _engine("high", marker, delay, tmp_path)
    proc.wait(20)
    assert proc.returncode == -signal.SIGKILL
    assert wait_until(lambda: not live_processes(f"sleep {marker}"), 5)


@pytest.mark.parametrize("level", LEVELS)
async def test_fork_bomb_is_stopped(tmp_path: Path, level: str) -> None:
    marker = "1019.75"
    policy, runner = make_runner(level, tmp_path, max_processes=20)
    bomb = f"for i in $(seq 1 200); do sleep {marker} & done; wait"
    started = time.monotonic()
    with pytest.raises(CommandFailed, match="max_processes") as excinfo:
        await run_command(bomb, policy=policy, runner=runner, env=None, cwd=tmp_path,
                          stdin=None, timeout=20, step_id="bomb")
    assert time.monotonic() - started < 10
    assert excinfo.value.audit.killed_by == "max_processes"  # type: ignore[attr-defined]
    assert wait_until(lambda: not live_processes(f"sleep {marker}"), 3)
    await assert_healthy(runner)


async def test_memory_bomb_is_refused_by_rlimit_as(tmp_path: Path) -> None:
    policy, runner = make_runner("medium", tmp_path, max_memory_mb=256)
    with pytest.raises(CommandFailed, match="MemoryError"):
        await run_command([sys.executable, "-c", "x = bytearray(1024 ** 3)"], policy=policy,
                          runner=runner, env=None, cwd=tmp_path, stdin=None, timeout=20,
                          step_id="mem")
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_memory_bomb_inside_bwrap(tmp_path: Path) -> None:
    _, runner = make_runner("high", tmp_path, max_memory_mb=128)
    grow = "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo ${#x}"
    result = await runner.run(["bash", "-c", grow])
    assert result.exit_code != 0 and "400000000" not in result.stdout
    await assert_healthy(runner)


@pytest.mark.parametrize("level", ["medium", pytest.param("high", marks=pytest.mark.bwrap)])
async def test_file_size_limit(tmp_path: Path, level: str) -> None:
    _, runner = make_runner(level, tmp_path, max_file_size_mb=1,
                            filesystem={"write": ["out"]})
    result = await runner.run(["sh", "-c", "head -c 20000000 /dev/zero > big"],
                              cwd=str(tmp_path / "out"))
    assert result.exit_code != 0
    assert (tmp_path / "out" / "big").stat().st_size <= 1024 * 1024
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_critical_tmp_is_size_capped(tmp_path: Path) -> None:
    _, runner = make_runner("critical", tmp_path, max_file_size_mb=4)
    result = await runner.run(["sh", "-c", "for i in 1 2 3 4 5 6; do "
                               "head -c 3000000 /dev/zero > /tmp/f$i || exit 1; done"])
    assert result.exit_code != 0
    await assert_healthy(runner)


@pytest.mark.parametrize("level", LEVELS)
async def test_huge_output_is_capped(tmp_path: Path, level: str) -> None:
    policy, runner = make_runner(level, tmp_path, max_output_bytes=1000)
    outcome = await run_command("head -c 50000000 /dev/zero | tr '\\0' a; echo done >&2",
                                policy=policy, runner=runner, env=None, cwd=tmp_path,
                                stdin=None, timeout=20, step_id="out")
    result = outcome.result
    assert result.truncated
    assert len(result.stdout) + len(result.stderr) <= 1000
    await assert_healthy(runner)


@pytest.mark.parametrize("level", LEVELS)
async def test_max_processes_counts_exactly_the_commands_processes(tmp_path: Path,
                                                                   level: str) -> None:
    """With max_processes 5, the shell plus 4 children is allowed and plus 5 is not (the
    runner's own processes, such as bwrap and its guard, are not counted)."""
    _, runner = make_runner(level, tmp_path, max_processes=5)
    script = "for i in $(seq 1 {}); do sleep 0.5 & done; wait"
    allowed = await runner.run(["sh", "-c", script.format(4)])
    assert (allowed.exit_code, allowed.killed_by) == (0, None)
    refused = await runner.run(["sh", "-c", script.format(5)])
    assert refused.killed_by == "max_processes"
