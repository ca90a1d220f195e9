"""Attack suite: escaping the filesystem. Each case is a real attempt, then a normal command."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from engine.commands import run_command
from engine.errors import CommandFailed, PolicyViolation
from engine.policy import check_tool_arguments
from tests.security.sec_helpers import assert_healthy, make_policy, make_runner

pytestmark = pytest.mark.anyio


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("data", "data2", "out", "outside"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "notes.txt").write_text("hello")
    (tmp_path / "data2" / "sibling.txt").write_text("SIBLING SECRET")
    (tmp_path / "outside" / "secret.txt").write_text("TOP SECRET")
    return tmp_path


FS = {"read": ["data"], "write": ["out"]}


def _hidden(path: Path) -> str:
    """A shell expression that yields `path` without the path appearing in the command text."""
    return f"$(echo {base64.b64encode(str(path).encode()).decode()} | base64 -d)"


@pytest.mark.parametrize("attempt", ["cat ../outside/secret.txt", "cat {outside}/secret.txt",
                                     "cat ../data2/sibling.txt"])
async def test_medium_refuses_paths_out_of_the_roots(tree: Path, attempt: str) -> None:
    policy, runner = make_runner("medium", tree, filesystem=FS)
    command = attempt.format(outside=tree / "outside")
    with pytest.raises(PolicyViolation) as excinfo:
        await run_command(command, policy=policy, runner=runner, env=None, cwd=tree / "data",
                          stdin=None, timeout=10, step_id="leak")
    assert excinfo.value.context["rule"] == "filesystem"
    assert excinfo.value.context["step"] == "leak"
    assert excinfo.value.audit.decision == "denied"  # type: ignore[attr-defined]
    await assert_healthy(runner, tree / "data")


async def test_prefix_sibling_is_outside(tree: Path) -> None:
    policy = make_policy("medium", tree, filesystem={"read": ["data"]})
    with pytest.raises(PolicyViolation):
        check_tool_arguments(policy, "files.read", {"path": str(tree / "data2" / "sibling.txt")})
    check_tool_arguments(policy, "files.read", {"path": str(tree / "data" / "notes.txt")})


@pytest.mark.bwrap
@pytest.mark.parametrize("target", ["outside/secret.txt", "data2/sibling.txt"])
async def test_high_hides_files_out_of_the_roots(tree: Path, target: str) -> None:
    """The path is computed at run time, so argument checks cannot see it: bwrap must."""
    policy, runner = make_runner("high", tree, filesystem=FS)
    with pytest.raises(CommandFailed) as excinfo:
        await run_command(f"cat {_hidden(tree / target)}", policy=policy, runner=runner,
                          env=None, cwd=tree / "data", stdin=None, timeout=10, step_id="s")
    assert "No such file" in str(excinfo.value)
    assert "SECRET" not in excinfo.value.result.stdout  # type: ignore[attr-defined]
    await assert_healthy(runner, tree / "data")


@pytest.mark.bwrap
async def test_high_symlink_made_at_run_time_does_not_escape(tree: Path) -> None:
    policy, runner = make_runner("high", tree, filesystem=FS)
    secret = tree / "outside" / "secret.txt"
    result = await runner.run(["sh", "-c", f"ln -s {secret} link && cat link"],
                              cwd=str(tree / "out"))
    assert result.exit_code != 0 and "SECRET" not in result.stdout
    # the link now exists on the host: a tool call naming it is refused after resolving it
    assert (tree / "out" / "link").is_symlink()
    with pytest.raises(PolicyViolation):
        check_tool_arguments(policy, "files.read", {"path": "out/link"}, cwd=tree)
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_high_symlink_planted_outside_before_the_run(tree: Path) -> None:
    (tree / "data" / "planted").symlink_to(tree / "outside" / "secret.txt")
    _, runner = make_runner("high", tree, filesystem=FS)
    result = await runner.run(["cat", "planted"], cwd=str(tree / "data"))
    assert result.exit_code != 0 and "SECRET" not in result.stdout
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_high_cannot_write_outside_write_paths(tree: Path) -> None:
    _, runner = make_runner("high", tree, filesystem=FS)
    # read-only bind, read-only system dir, and a dir that is not bound at all (the write
    # lands in the sandbox's private tmpfs, if anywhere, never on the host)
    for target, must_fail in [(tree / "data" / "planted.txt", True),
                              (Path("/usr/planted.txt"), True),
                              (tree / "outside" / "planted.txt", False),
                              (tree / "planted.txt", False)]:
        result = await runner.run(["sh", "-c", f"echo pwned > {_hidden(target)}"],
                                  cwd=str(tree / "out"))
        assert not target.exists(), target
        if must_fail:
            assert "Read-only file system" in result.stderr, target
    result = await runner.run(["sh", "-c", "echo fine > result.txt"], cwd=str(tree / "out"))
    assert result.exit_code == 0 and (tree / "out" / "result.txt").read_text() == "fine\n"


@pytest.mark.bwrap
async def test_critical_sees_only_a_private_tmp(tree: Path) -> None:
    _, runner = make_runner("critical", tree)
    marker = f"plait-critical-{tree.name}"
    result = await runner.run(["sh", "-c", f"ls {tree}; echo x > /tmp/{marker}; pwd; ls /"],
                              cwd=str(tree))
    assert "No such file" in result.stderr
    assert result.stdout.splitlines()[0] == "/tmp"
    assert not Path("/tmp", marker).exists()  # the sandbox's /tmp is not the host's
    assert "root" not in result.stdout.split() and "work" not in result.stdout.split()
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_spec_example_archive_step_runs_at_high(tree: Path) -> None:
    (tree / ".env").write_text("OPENAI_API_KEY=sk-in-dotenv-123456\n")
    policy, runner = make_runner("high", tree, filesystem=FS)
    outcome = await run_command("tar czf out/digest.tgz data && ls -A", policy=policy,
                                runner=runner, env=None, cwd=tree, stdin=None, timeout=20,
                                step_id="archive")
    assert sorted(outcome.result.stdout.split()) == ["data", "out"]
    assert outcome.result.files_written == [str(tree.resolve() / "out" / "digest.tgz")]
    # the workflow's .env is refused by name before anything starts (and, were it under a
    # root, masked inside the sandbox: test_attack_workflow_files.py)
    with pytest.raises(PolicyViolation) as excinfo:
        await run_command("cat .env", policy=policy, runner=runner, env=None, cwd=tree,
                          stdin=None, timeout=20, step_id="peek")
    assert excinfo.value.context["rule"] == "filesystem"
    assert "sk-in-dotenv" not in str(excinfo.value)
    with pytest.raises(CommandFailed) as failed:  # a name built at run time: not visible
        await run_command("cat $(printf .%s env)", policy=policy, runner=runner, env=None,
                          cwd=tree, stdin=None, timeout=20, step_id="peek")
    assert "sk-in-dotenv" not in failed.value.result.stdout  # type: ignore[attr-defined]
