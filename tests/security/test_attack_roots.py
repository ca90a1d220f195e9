"""Attack suite: swapping a root for a symlink between the policy check and the mount.

Policies resolve their roots when the run starts. A step whose policy may write `./work`
can replace `./work/data`, the root of another policy, with a symlink to `/`: bubblewrap
follows symlinks in what it binds, so the next step would get the host's whole filesystem
at `./work/data` (writable, if that root is a write root). Each case is a real attempt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import PolicyViolation
from tests.security.sec_helpers import assert_healthy, make_runner

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]

SECRET = "HOST-ONLY-SECRET-7f3a"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "work" / "data").mkdir(parents=True)
    (tmp_path / "work" / "data" / "in.txt").write_text("input")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text(SECRET)
    return tmp_path


async def _swap(project: Path) -> None:
    """The hostile step: its policy may write ./work; it points ./work/data at `/` (the
    target is computed at run time, so no argument check sees it)."""
    _, builder = make_runner("high", project, filesystem={"write": ["work"]})
    done = await builder.run(["sh", "-c", 'rm -rf work/data && ln -s "$(printf /)" work/data'],
                             cwd=str(project))
    assert done.exit_code == 0, done
    assert (project / "work" / "data").is_symlink()


@pytest.mark.parametrize("kind", ["read", "write"])
async def test_a_root_swapped_for_a_symlink_is_not_mounted(project: Path, kind: str) -> None:
    # the victim's policy is resolved first, as a run resolves them all at its start
    _, victim = make_runner("high", project, filesystem={kind: ["work/data"]})
    await _swap(project)
    inside = project / "work" / "data" / str(project / "outside" / "secret.txt").lstrip("/")
    planted = project / "work" / "data" / str(project / "outside" / "planted").lstrip("/")
    with pytest.raises(PolicyViolation) as excinfo:
        result = await victim.run(["sh", "-c", f"cat {inside}; echo pwned > {planted}"])
        assert SECRET not in result.stdout  # what the escape looked like before the fix
    assert excinfo.value.context["rule"] == "filesystem"
    assert "symlink" in excinfo.value.message
    assert not (project / "outside" / "planted").exists()
    # a stdio server is launched from prepare(): refused the same way
    with pytest.raises(PolicyViolation):
        victim.prepare(["true"])


async def test_a_read_root_inside_a_write_root_stays_read_only(project: Path) -> None:
    """Nested roots are mounted parents first, so the read-only one is not covered by the
    writable one (and cannot be replaced by the command: it is a mount point)."""
    _, runner = make_runner("high", project,
                            filesystem={"read": ["work/data"], "write": ["work"]})
    result = await runner.run(["sh", "-c", "echo changed > work/data/in.txt; "
                               'mv work/data work/old; ln -s "$(printf /)" work/data; '
                               "echo new > work/other.txt"], cwd=str(project))
    assert (project / "work" / "data" / "in.txt").read_text() == "input"
    assert not (project / "work" / "data").is_symlink()
    assert (project / "work" / "other.txt").read_text() == "new\n"  # the write root works
    assert "Read-only file system" in result.stderr
    await assert_healthy(runner, project)


async def test_no_descriptor_of_a_root_reaches_the_command(project: Path) -> None:
    """The roots are handed to bwrap as O_PATH descriptors; one left open in the sandbox
    would let the command walk `..` from it into the host's filesystem."""
    # a file root, and a root named twice (bwrap closes a descriptor once it has used it)
    _, runner = make_runner("high", project, filesystem={
        "read": ["work/data", "outside/secret.txt", "outside"], "write": ["outside"]})
    result = await runner.run(["sh", "-c", 'for f in /proc/self/fd/*; do [ -d "$f" ] && '
                               'echo "DIR $f"; ls "$f/../.." >/dev/null 2>&1 && echo "UP $f";'
                               " done; cat work/data/in.txt"], cwd=str(project))
    assert "DIR" not in result.stdout and "UP" not in result.stdout, result.stdout
    assert result.stdout.endswith("input"), result
    both = await runner.run(["sh", "-c", "cat outside/secret.txt; echo new > outside/w.txt"],
                            cwd=str(project))
    assert both.exit_code == 0 and both.stdout == SECRET, both
    assert (project / "outside" / "w.txt").read_text() == "new\n"


async def test_a_symlink_planted_in_a_write_root_before_the_run_is_refused(
        project: Path) -> None:
    """The swap happened in an earlier run (work/data -> /): when this run starts, resolving
    the root follows the symlink, and the sandbox would mount the host's `/`. A real run
    refuses to start."""
    from engine.errors import ConfigError
    from engine.executor import run_workflow
    from engine.spec.loader import load_text

    await _swap(project)
    secret = str(project / "outside" / "secret.txt").lstrip("/")
    text = ("version: 1\nname: planted\npolicies:\n"
            "  build: {level: high, filesystem: {write: [work]}}\n"
            "  use: {level: high, filesystem: {read: [work/data]}}\n"
            f"steps:\n  peek:\n    policy: use\n    run: cat work/data/{secret}\n")
    wf = load_text(text, str(project / "w.yaml"))
    try:
        result = await run_workflow(wf, {}, record_state=False)
    except ConfigError as exc:
        assert "symlink" in exc.message and "work/data" in exc.message
    else:
        assert not result.ok, result.steps["peek"].output
        assert SECRET not in str(result.steps["peek"].output)
        assert "symlink" in str(result.error)
