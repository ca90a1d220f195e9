"""`plait run` and the run commands as a demanding new user meets them: each test is a
problem found by trying the CLI (see the commit that added it)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import plait

WF = """\
version: 1
name: review
inputs:
  who: {type: string, default: ada}
steps:
  a: {run: 'true'}
"""


def test_an_i_without_a_name_is_a_usage_error_not_an_unknown_input(tmp_path: Path) -> None:
    """`-i ' =3'` passed the NAME=VALUE check before the name was stripped, and failed
    later as `unknown input ''`; `-i who` said what was wrong but not how to write it."""
    (tmp_path / "wf.yaml").write_text(WF)
    out = plait("run", "wf.yaml", "-i", " =3", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: -i expects NAME=VALUE, got ' =3' (hint: name the "
                                  "input before the =)")
    out = plait("run", "wf.yaml", "-i", "who", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: -i expects NAME=VALUE, got 'who' (hint: write "
                                  "-i who=VALUE (-i who= gives it an empty string))")
