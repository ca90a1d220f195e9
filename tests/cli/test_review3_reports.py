"""What plait writes about a run (its record, `--json`, `plait runs show`, the HTML report,
GitHub Actions output) when a step's output holds text that is hard to write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import ROOT, under_a_terminal

LONE = r"""
version: 1
name: lone
steps:
  reply:
    run: [echo, '{"text": "a\ud800b"}']
  pass_on:
    run: 'echo "$X"'
    env: {X: '${{ (steps.reply.output.stdout | fromjson).text }}'}
    continue_on_error: true
outputs:
  text: ${{ (steps.reply.output.stdout | fromjson).text }}
"""


def _plait(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # stdout as Python sets it up under C.UTF-8 (GitHub's runners) or the C locale:
    # surrogateescape, which cannot write a lone surrogate either
    full = {**os.environ, "PYTHONPATH": str(ROOT),
            "PYTHONIOENCODING": "utf-8:surrogateescape", **env}
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=full, check=False)


def test_a_lone_surrogate_in_a_steps_output_is_recorded_and_shown_everywhere(
        tmp_path: Path) -> None:
    """JSON's "\\ud800" in a model's or a tool's reply decodes to a lone surrogate, which has
    no UTF-8 form: the run record could not be written (`UnicodeEncodeError` traceback at the
    end of the run, the run left `running`, then `died`), and `--json`, `plait runs show`
    and `plait runs report --html` failed the same way. The surrogate is written as that
    escape."""
    (tmp_path / "wf.yaml").write_text(LONE)
    run = _plait("run", "wf.yaml", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    result = json.loads(run.stdout)
    assert result["outputs"] == {"text": "a\ud800b"}
    assert result["steps"]["pass_on"]["status"] == "failed"
    text = _plait("run", "wf.yaml", cwd=tmp_path)
    assert (text.returncode, text.stdout) == (0, "text: a\\ud800b\n"), text.stderr

    listed = _plait("runs", "list", "--json", cwd=tmp_path)
    assert [r["shown_status"] for r in json.loads(listed.stdout)] == ["succeeded"] * 2
    run_id = result["run_id"]
    show = _plait("runs", "show", run_id, cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert 'outputs    {"text": "a\\ud800b"}' in show.stdout, show.stdout
    shown = _plait("runs", "show", run_id, "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["outputs"] == {"text": "a\ud800b"}
    steps = {s["step_id"]: s for s in record["steps"]}
    assert steps["pass_on"]["rendered_input"]["env"] == {"X": "a\ud800b"}
    report = _plait("runs", "report", run_id, "--html", "r.html", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "a\\ud800b" in (tmp_path / "r.html").read_text(encoding="utf-8")


ESCAPES = r"""
version: 1
name: esc
providers:
  m:
    kind: echo
    options: {reply: "hi \e]52;c;cGF5bG9hZA==\a\e[2J\rhidden\x9b\e]0;title\a done"}
steps:
  talk: {llm: m, prompt: hi}
outputs:
  said: ${{ steps.talk.output }}
"""
#: the reply as a terminal must see it: every control character as a visible escape
SHOWN = r"hi \x1b]52;c;cGF5bG9hZA==\x07\x1b[2J\rhidden\x9b\x1b]0;title\x07 done"


def test_control_characters_in_a_run_output_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A succeeded run prints its outputs: a model's reply was printed as it was, so its
    escape sequences (OSC 52 writes the clipboard, OSC 0 the title, ESC[2J clears the screen,
    \\r overwrites the line) reached the terminal, which obeyed them; a failed step's error
    and `plait runs show` already showed them as escapes."""
    (tmp_path / "wf.yaml").write_text(ESCAPES)
    out = _plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"said: {SHOWN}\n", out.stdout
    # --json is for programs: the reply as it is
    data = json.loads(_plait("run", "wf.yaml", "--no-record", "--json", cwd=tmp_path).stdout)
    assert data["outputs"]["said"].startswith("hi \x1b]52;")


def test_control_characters_streamed_to_a_terminal_are_shown_not_obeyed(
        tmp_path: Path) -> None:
    """`--stream` on a terminal wrote a model's text as it arrived, escape sequences and
    all; sent to a file (`--stream > reply.txt`) it is still the text as it is."""
    (tmp_path / "wf.yaml").write_text(ESCAPES)
    code, screen = under_a_terminal(tmp_path, "run", "wf.yaml", "--stream", "--no-record")
    assert code == 0, screen
    assert not set(screen) & {"\x07", "\x9b"} and "\x1b]" not in screen, repr(screen)
    assert SHOWN in screen, repr(screen)
    code, screen = under_a_terminal(tmp_path, "run", "wf.yaml", "--stream", "--no-record",
                                     stdout=tmp_path / "reply.txt")
    assert code == 0, screen
    assert "hi \x1b]52;c;cGF5bG9hZA==\x07" in (tmp_path / "reply.txt").read_text()


TESTED = r"""
version: 1
name: tested
providers:
  m:
    kind: echo
    options: {reply: "line one\nREPLY"}
steps:
  talk: {llm: m, prompt: hi}
outputs:
  said: ${{ steps.talk.output }}
tests:
  - name: c
    assert:
      - {output: said, contains: "nope"}
"""


def test_control_characters_in_a_failed_test_cases_problems_are_shown_not_obeyed(
        tmp_path: Path) -> None:
    """`plait test` quotes outputs in its problems, as JSON text, which leaves the C1
    controls raw (U+009B is a one-byte CSI), and DEL in an assertion's message: they reached
    the terminal raw, in the snapshot diff and in the assertion's message."""
    (tmp_path / "wf.yaml").write_text(TESTED)
    stored = _plait("test", "wf.yaml", "--update-snapshots", cwd=tmp_path)
    assert "said" in (tmp_path / "__plait_snapshots__" / "wf.c.json").read_text(), stored
    (tmp_path / "wf.yaml").write_text(TESTED.replace(
        "REPLY", r"\e]52;c;cGF5bG9hZA==\a\x9b2J\x7f"))
    out = _plait("test", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert not set(out.stdout) & {"\x1b", "\x07", "\x9b", "\x7f"}, repr(out.stdout)
    # the diff, and the assertion's message
    assert r"+      | \u001b]52;c;cGF5bG9hZA==\u0007\x9b2J\u007f" in out.stdout, out.stdout
    assert r"\u001b]52;c;cGF5bG9hZA==\u0007\x9b2J\x7f" in out.stdout, out.stdout
