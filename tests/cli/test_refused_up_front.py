"""`plait run` refuses, before any step runs (exit 2), a target it could not write and a
cassette it could not read: each failed after the run (exit 1), or in the step that needed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import plait

WORKFLOW = """\
version: 1
name: w
policies:
  o: {level: low}
providers:
  p: {PROVIDER}
steps:
  first: {run: "touch ran", policy: o}
  a: {llm: p, prompt: hi, needs: [first]}
"""
ECHO = "{kind: echo}"


def _workflow(tmp_path: Path, provider: str = ECHO) -> Path:
    wf = tmp_path / "wf.yaml"
    wf.write_text(WORKFLOW.replace("{PROVIDER}", provider), encoding="utf-8")
    return wf


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs procfs")
@pytest.mark.parametrize(("option", "target"), [
    ("--record", "/proc/plait-x"),
    ("--junit", "/proc/plait-x/j.xml"),
    ("--trace-file", "/proc/plait-x/t.jsonl"),
])
def test_a_target_nothing_can_be_created_in_is_refused_even_for_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, target: str) -> None:
    """Run as root, os.access says /proc is writable: the run went ahead, and the cassette
    (exit 1) or the JUnit report (exit 0, the report missing) failed at the end."""
    monkeypatch.delenv("OTEL_SDK_DISABLED")  # which turns --trace-file off altogether
    _workflow(tmp_path)
    out = plait("run", "wf.yaml", option, target, "--json", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert "/proc/plait-x cannot be created in /proc (No such file or directory)" in out.stderr
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(("provider", "args", "said"), [
    ("{kind: replay, path: tapes}", (),
     "error: provider 'p' (replay, path: tapes): no cassette at {tmp}/tapes/w.cassette.yaml: "
     "the directory {tmp}/tapes does not exist (hint: record it with the provider's real "
     "kind: `plait run WORKFLOW --record DIR`, then set `path: DIR` on this provider)"),
    (ECHO, ("--replay", "tapes"),
     "error: no cassette at {tmp}/tapes/w.cassette.yaml: the directory {tmp}/tapes does not "
     "exist (hint: record one with `plait run WORKFLOW --record DIR`"),
    (ECHO, ("--replay", "wf.yaml"),
     "error: no cassette at {tmp}/wf.yaml/w.cassette.yaml: {tmp}/wf.yaml is a file, not a "
     "directory (give the directory that holds a cassette, not the cassette file)"),
    (ECHO, ("--replay", "other"),
     "error: no cassette at {tmp}/other/w.cassette.yaml: {tmp}/other has no w.cassette.yaml "
     "(it holds x.cassette.yaml)"),
])
def test_a_missing_cassette_is_refused_before_anything_runs(
        tmp_path: Path, provider: str, args: tuple[str, ...], said: str) -> None:
    """A `kind: replay` provider whose `path:` held no cassette failed its step (exit 1),
    after the steps before it had run."""
    _workflow(tmp_path, provider)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.cassette.yaml").write_text("{}", encoding="utf-8")
    out = plait("run", "wf.yaml", *args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(said.replace("{tmp}", str(tmp_path.resolve()))), out.stderr
    assert not (tmp_path / "ran").exists()


def test_a_replay_provider_without_a_path_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    """It failed the step that called it (exit 1), after the steps before it had run, and
    `plait providers check` called it ok."""
    _workflow(tmp_path, "{kind: replay}")
    said = ("error: replay provider 'p' needs a cassette (hint: set `path:` on the provider, "
            "or run with `plait run --replay DIR`")
    out = plait("run", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(said), out.stderr
    assert not (tmp_path / "ran").exists()
    check = plait("providers", "check", "wf.yaml", cwd=tmp_path)
    assert check.returncode == 2 and check.stderr.startswith(said), check.stderr
