"""`plait resume` refused another input value with "input 'n' differs from run ID's": which
values, the user had to find out with `plait runs show`. The message now shows the run's and
the given value (as JSON, cut when long), and never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import ROOT

WORKFLOW = """\
version: 1
name: picky
secrets: [PROBE_TOKEN]
policies:
  open: {level: low}
defaults:
  policy: open
inputs:
  n: {type: integer}
  note: {type: string, default: short}
  auth: {type: string, default: none}
steps:
  a: {run: "echo ran >> a.log"}
  b:
    needs: [a]
    run: exit 1
"""
TOKEN = "s3cr3t-value-1"


def plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROBE_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def _failed_run(tmp_path: Path, *args: str) -> str:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    first = plait("run", "wf.yaml", "-i", "n=3", *args, "--json", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    return str(json.loads(first.stdout)["run_id"])


def test_a_refused_resume_shows_the_recorded_and_the_given_value(tmp_path: Path) -> None:
    run_id = _failed_run(tmp_path)
    one = plait("resume", run_id, "-i", "n=4", cwd=tmp_path)
    assert one.returncode == 2
    assert one.stderr == (f"error: input 'n' differs from run {run_id}'s: the run had 3, given "
                          "4 (hint: leave them out to reuse the run's values, or start a new "
                          "run (plait run FILE, without --resume) to use the new ones)\n")
    long = "x" * 500
    two = plait("resume", run_id, "-i", "n=4", "-i", f"note={long}", cwd=tmp_path)
    assert two.returncode == 2
    message = two.stderr.splitlines()[0]
    assert message.startswith(f"error: inputs 'n', 'note' differ from run {run_id}'s: 'n': the "
                              f"run had 3, given 4; 'note': the run had \"short\", given "
                              f"\"{'x' * 56}... (hint: ")
    assert long not in message and len(message) < 400, message
    assert (tmp_path / "a.log").read_text() == "ran\n"  # nothing ran again


def test_a_value_that_held_a_secret_is_shown_masked_or_not_at_all(tmp_path: Path) -> None:
    """The run's inputs are recorded with secrets masked; the given ones are compared, and
    shown, masked the same way. An input that held a secret shows neither value: another
    value given for it may be another secret, which plait does not know to mask."""
    run_id = _failed_run(tmp_path, "-i", f"auth=Bearer {TOKEN}")
    other = plait("resume", run_id, "-i", f"auth=Bearer {TOKEN}", "-i", "n=4", "-i",
                  f"note=has {TOKEN}", cwd=tmp_path)
    assert other.returncode == 2
    assert "'note': the run had \"short\", given \"has ***\"" in other.stderr, other.stderr
    rotated = plait("resume", run_id, "-i", "auth=Bearer rotated-token-2", cwd=tmp_path)
    assert rotated.returncode == 2
    assert rotated.stderr.startswith(f"error: input 'auth' differs from run {run_id}'s: it held "
                                     "a secret, so neither value is shown (hint: "), rotated.stderr
    for out in (other, rotated):
        assert TOKEN not in out.stderr and "rotated-token-2" not in out.stderr


def test_a_shown_value_cannot_steer_the_terminal(tmp_path: Path) -> None:
    """json.dumps(ensure_ascii=False) escapes ESC but leaves the C1 controls raw: U+009B is
    an 8-bit CSI, so a value holding it (an input, or one recorded from a webhook's run)
    recoloured or cleared the terminal of whoever read the refusal."""
    run_id = _failed_run(tmp_path)
    refused = plait("resume", run_id, "-i", "note=a\x9b2J\x1b[31mb\x7f", cwd=tmp_path)
    assert refused.returncode == 2
    assert "given \"a\\u009b2J\\u001b[31mb\\u007f\" (hint: " in refused.stderr, refused.stderr
    assert not any(c in refused.stderr for c in "\x9b\x1b\x7f"), refused.stderr
