"""`run:` steps given text that no process can be handed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import plait

SURROGATES = """\
version: 1
name: surrogates
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  stdin: {run: cat, stdin: '${{ "ab\\udcff" }}'}
  argv: {run: [echo, '${{ "x\\ud800" }}']}
  value: {run: 'echo "$X"', env: {X: '${{ "\\udcff" }}'}}
  cwd: {run: [echo, hi], cwd: '${{ "d\\ud800" }}'}
"""


def test_a_lone_surrogate_in_a_command_is_said_so_not_a_unicode_encode_error(
        tmp_path: Path) -> None:
    """A lone surrogate (a JSON or expression escape such as \\udcff; a tool's or a model's
    output may hold one) has no UTF-8 form: the step failed with Python's
    `UnicodeEncodeError: 'utf-8' codec can't encode character` (kind `error`, retried by
    `on: [error]`), not naming the value; as a NUL already is, it is a CommandFailed that
    says which value and how to fix it."""
    (tmp_path / "wf.yaml").write_text(SURROGATES)
    out = plait("run", "wf.yaml", "--keep-going", "--json", "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    steps = json.loads(out.stdout)["steps"]
    at = len(str(tmp_path.resolve())) + 2  # cwd is made absolute: <dir>/d<surrogate>
    errors = {sid: (s["error"]["type"], s["error"]["kind"], s["error"]["message"])
              for sid, s in steps.items() if s["error"]}
    ends = "which is no text (a lone surrogate) and cannot be passed to a process"
    assert errors == {
        "stdin": ("CommandFailed", "command",
                  f'stdin holds "\\udcff" at character 2, {ends}'),
        "argv": ("CommandFailed", "command",
                 f'the command holds "\\ud800" at character 1, {ends}'),
        "value": ("CommandFailed", "command", f'env \'X\' holds "\\udcff" at character 0, {ends}'),
        "cwd": ("CommandFailed", "command", f'cwd holds "\\ud800" at character {at}, {ends}'),
    }, errors
    assert "UnicodeEncodeError" not in out.stdout + out.stderr
    assert "lone surrogate" in steps["stdin"]["error"]["hint"], steps["stdin"]["error"]


def test_a_failed_command_too_long_to_start_is_not_repeated_whole_in_its_error(
        tmp_path: Path) -> None:
    """An argument of 200,000 characters cannot be passed (E2BIG): the step's error repeated
    the whole command, a 200 kB line on the terminal and in the run record, where the
    command's stderr and stdout are already cut to their tails."""
    (tmp_path / "wf.yaml").write_text(SURROGATES.split("steps:")[0] + """steps:
  big: {run: [echo, "${{ 'x' * 200000 }}"]}
  script: {run: "${{ 'true; ' * 1000 }}exit 3"}
""")
    out = plait("run", "wf.yaml", "--keep-going", "--json", "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    steps = json.loads(out.stdout)["steps"]
    big, script = steps["big"]["error"]["message"], steps["script"]["error"]["message"]
    assert big.startswith("command 'echo xxxx") and "characters in all)" in big, big[:500]
    assert big.endswith("exited with code 127: cannot start 'echo': [Errno 7] Argument list "
                        "too long: 'echo'"), big[-300:]
    assert len(big) < 600 and len(script) < 600, (len(big), len(script))
    assert script.endswith("(6006 characters in all) exited with code 3"), script
    assert len(out.stderr) < 2000, len(out.stderr)
