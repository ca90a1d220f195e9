"""run_command: argv vs shell, env, cwd, stdin, files written, failures, audit records."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import AuditRecord, run_command
from engine.errors import CommandFailed, StepTimeout
from tests.security.sec_helpers import make_runner

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


LEVELS = ["low", "medium", pytest.param("high", marks=pytest.mark.bwrap)]


@pytest.mark.parametrize("level", LEVELS)
async def test_shell_string_env_stdin_and_files_written(tmp_path: Path, level: str) -> None:
    policy, runner = make_runner(level, tmp_path, filesystem={"write": ["out"]})
    outcome = await run_command(
        "cat > copy.txt; echo \"$GREETING\" | tee -a copy.txt", policy=policy, runner=runner,
        env={"GREETING": "hello"}, cwd=tmp_path / "out", stdin="from stdin\n", timeout=10,
        step_id="s1")
    assert outcome.result.stdout == "hello\n"
    assert (tmp_path / "out" / "copy.txt").read_text() == "from stdin\nhello\n"
    assert outcome.result.files_written == [str(tmp_path.resolve() / "out" / "copy.txt")]
    audit = outcome.audit
    assert isinstance(audit, AuditRecord)
    assert (audit.policy, audit.level, audit.decision, audit.exit_code, audit.step_id) == (
        f"{level}-test", level, "allowed", 0, "s1")
    assert audit.runner == runner.name and audit.duration_s > 0


async def test_argv_list_is_not_run_by_a_shell(tmp_path: Path) -> None:
    policy, runner = make_runner("medium", tmp_path)
    outcome = await run_command(["echo", "$HOME; rm -rf x"], policy=policy, runner=runner,
                                env=None, cwd=tmp_path, stdin=None, timeout=10, step_id=None)
    assert outcome.result.stdout == "$HOME; rm -rf x\n"


async def test_nonzero_exit_is_a_failure_with_the_stderr_tail(tmp_path: Path) -> None:
    policy, runner = make_runner("medium", tmp_path)
    script = "for i in $(seq 1 2000); do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandFailed) as excinfo:
        await run_command(script, policy=policy, runner=runner, env=None, cwd=tmp_path,
                          stdin=None, timeout=10, step_id="fails")
    message = str(excinfo.value)
    assert "exited with code 3" in message and "line2000" in message and "line1\n" not in message
    assert excinfo.value.context == {"step": "fails", "exit_code": 3}
    assert excinfo.value.audit.exit_code == 3  # type: ignore[attr-defined]


async def test_missing_program_is_a_failure(tmp_path: Path) -> None:
    policy, runner = make_runner("low", tmp_path)
    with pytest.raises(CommandFailed, match="no-such-program"):
        await run_command(["no-such-program-xyz"], policy=policy, runner=runner, env=None,
                          cwd=tmp_path, stdin=None, timeout=10, step_id=None)


async def test_outcome_reads_like_a_command_result(tmp_path: Path) -> None:
    policy, runner = make_runner("low", tmp_path)
    outcome = await run_command("echo hi", policy=policy, runner=runner, env=None, cwd=tmp_path,
                                stdin=None, timeout=10, step_id=None)
    assert (outcome.exit_code, outcome.stdout, outcome.truncated) == (0, "hi\n", False)
    assert outcome.audit.to_dict()["decision"] == "allowed"
    with pytest.raises(AttributeError):
        outcome.no_such_field  # noqa: B018


async def test_a_command_past_its_time_limit_says_which_limit_and_how_to_raise_it(
        tmp_path: Path) -> None:
    policy, runner = make_runner("medium", tmp_path, max_execution_time="200ms")
    with pytest.raises(StepTimeout) as excinfo:
        await run_command("sleep 5", policy=policy, runner=runner, env=None, cwd=tmp_path,
                          stdin=None, timeout=None, step_id="slow")
    assert str(excinfo.value) == (
        "command 'sleep 5' ran past its time limit of 0.2s (max_execution_time of policy "
        "'medium-test') and was killed (hint: raise `max_execution_time` of policy "
        "'medium-test' (its level's default comes from SECURITY_MAX_EXECUTION_TIME when "
        "set), or make the command finish sooner)")


async def test_a_step_without_a_policy_is_told_to_declare_one_for_more_time(
        tmp_path: Path) -> None:
    from engine.policy import resolve_policy
    from engine.sandbox import runner_for
    from engine.spec.models import PolicySpec

    policy = resolve_policy(PolicySpec(max_execution_time="200ms"), name=None,
                            base_dir=tmp_path, env={})
    with pytest.raises(StepTimeout) as excinfo:
        await run_command("sleep 5", policy=policy, runner=runner_for(policy), env=None,
                          cwd=tmp_path, stdin=None, timeout=None, step_id="slow")
    assert excinfo.value.message.endswith(
        "(max_execution_time of level medium, the default policy's) and was killed")
    assert excinfo.value.hint is not None
    assert excinfo.value.hint.startswith(
        "give the step a policy with a larger `max_execution_time` (declare it under")
