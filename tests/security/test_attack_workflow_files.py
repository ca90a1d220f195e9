"""Attack suite: the workflow's own secrets file and run records, under a root that holds them.

`filesystem: {read: [.]}` is the common way to let a command read the project. The `.env`
beside the workflow holds secrets no step declared, and `.plait/runs.db` holds every run's
records (and a step that may write it could rewrite what a resumed run reuses). Each case is
a real attempt, then a normal command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.commands import run_command
from engine.errors import PolicyViolation
from engine.policy import check_tool_arguments
from tests.security.sec_helpers import assert_healthy, make_policy, make_runner

pytestmark = pytest.mark.anyio

DOTENV_SECRET = "sk-dotenv-UNDECLARED-0123456789"
RECORD_SECRET = "RUN-RECORD-CONTENT-42"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".env").write_text(f"OTHER_TOKEN={DOTENV_SECRET}\n")
    (tmp_path / ".plait").mkdir()
    (tmp_path / ".plait" / "runs.db").write_text(RECORD_SECRET)
    (tmp_path / "notes.txt").write_text("public notes")
    return tmp_path


@pytest.mark.parametrize("attempt", ["cat .env", "cat ./.plait/runs.db", "cp .env out/x.txt",
                                     "ln -s .env out/e"])
async def test_medium_refuses_the_workflows_own_files(project: Path, attempt: str) -> None:
    policy, runner = make_runner("medium", project, filesystem={"read": ["."], "write": ["."]})
    with pytest.raises(PolicyViolation) as excinfo:
        await run_command(attempt, policy=policy, runner=runner, env=None, cwd=project,
                          stdin=None, timeout=10, step_id="peek")
    assert excinfo.value.context["rule"] == "filesystem"
    done = await run_command("cat notes.txt", policy=policy, runner=runner, env=None,
                             cwd=project, stdin=None, timeout=10, step_id="ok")
    assert done.stdout == "public notes"


def test_tool_arguments_cannot_name_them(project: Path) -> None:
    policy = make_policy("medium", project, filesystem={"read": ["."]})
    for args in ({"path": str(project / ".env")}, {"file": ".plait/runs.db"},
                 {"path": str(project / "sub" / ".." / ".env")}):
        with pytest.raises(PolicyViolation):
            check_tool_arguments(policy, "files.read_file", args, cwd=project)
    check_tool_arguments(policy, "files.read_file", {"path": "notes.txt"}, cwd=project)


@pytest.mark.bwrap
@pytest.mark.parametrize("level_fs", [("high", {"read": ["."]}),
                                      ("high", {"write": ["."]})])
async def test_high_masks_them_even_when_named_at_run_time(
        project: Path, level_fs: tuple[str, dict[str, list[str]]]) -> None:
    """The names are built at run time (no argument check can see them): bwrap must hide the
    files, and a writable root must not let the command change the records."""
    level, fs = level_fs
    _, runner = make_runner(level, project, filesystem=fs)
    script = ('cat "$(printf .%s env)"; cat "$(printf .%s plait)/runs.db"; '
              'echo TAMPERED > "$(printf .%s plait)/runs.db"; cat notes.txt')
    result = await runner.run(["sh", "-c", script], cwd=str(project))
    assert DOTENV_SECRET not in result.stdout + result.stderr
    assert RECORD_SECRET not in result.stdout + result.stderr
    assert "public notes" in result.stdout
    assert (project / ".plait" / "runs.db").read_text() == RECORD_SECRET
    assert (project / ".env").read_text() == f"OTHER_TOKEN={DOTENV_SECRET}\n"
    await assert_healthy(runner, project)
