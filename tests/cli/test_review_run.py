"""`plait run` and the run commands as a demanding new user meets them: each test is a
problem found by trying the CLI (see the commit that added it)."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_runs_list_with_a_directory_as_workflow_does_not_read_its_parents_runs(
        tmp_path: Path) -> None:
    """`--workflow DIR` read DIR/../.plait/runs.db (the database beside a file named DIR):
    the runs of another directory, listed as if they were DIR's."""
    (tmp_path / "wf.yaml").write_text(WF)
    assert plait("run", "wf.yaml", cwd=tmp_path).returncode == 0
    inner = tmp_path / "flows"
    inner.mkdir()
    for args in (("runs", "list"), ("runs", "show", "1")):
        out = plait(*args, "--workflow", "flows", cwd=tmp_path)
        assert out.returncode == 2, out.stdout
        assert out.stdout == ""
        assert out.stderr.strip() == (
            "error: --workflow flows is a directory, not a workflow file (hint: give a workflow "
            "file in it (its .plait/runs.db is read), or --state flows/.plait/runs.db)")


def test_a_run_refused_for_its_inputs_leaves_no_run_record_database(tmp_path: Path) -> None:
    """Nothing ran (exit 2), but the store was opened before the inputs were checked: a
    typo in `-i` left a .plait/runs.db (and its directory) beside the workflow."""
    (tmp_path / "wf.yaml").write_text(WF.replace("default: ada", "default: ada}\n  n: {type: "
                                                 "integer"))
    out = plait("run", "wf.yaml", "-i", "n=three", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: input 'n' must be of type integer"), out.stderr
    assert not (tmp_path / ".plait").exists()
    out = plait("run", "wf.yaml", "-i", "n=3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".plait" / "runs.db").is_file()


def test_an_empty_inputs_file_is_said_to_be_empty(tmp_path: Path) -> None:
    """It said only `Expecting value: line 1 column 1 (char 0)`, Python's words for an
    empty document (an empty stdin already had a hint; an empty file, as `touch` or a failed
    `> in.json` leaves it, had none)."""
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "in.json").write_bytes(b"\xef\xbb\xbf \n")
    out = plait("run", "wf.yaml", "--inputs", "in.json", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().endswith(
        '(hint: the file is empty: write a JSON object of inputs in it, e.g. {"who": "ada"})'
    ), out.stderr


NUL = r"""version: 1
name: nul
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  esc: {run: "printf '\033[1mbold\n'"}
  argv: {run: ["echo", "a\0b"]}
  value: {run: "echo $X", env: {X: "a\0b"}}
  name: {run: "echo $X", env: {"A=B": x}}
"""


def test_a_nul_in_a_command_is_said_so_not_a_python_value_error(tmp_path: Path) -> None:
    """`"\033"` in YAML double quotes is NUL then "33" (a shell habit for ESC); the step failed
    with `ValueError: embedded null byte` (kind `error`), and an env name holding '=' with
    `ValueError: illegal environment variable name`."""
    import json

    (tmp_path / "wf.yaml").write_text(NUL)
    out = plait("run", "wf.yaml", "--keep-going", "--json", "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    steps = json.loads(out.stdout)["steps"]
    errors = {sid: (s["error"]["type"], s["error"]["message"]) for sid, s in steps.items()}
    assert errors == {
        "esc": ("CommandFailed", "the command holds a NUL character (\\0) at character 8, "
                                 "which cannot be passed to a process"),
        "argv": ("CommandFailed", "the command holds a NUL character (\\0) at character 1, "
                                  "which cannot be passed to a process"),
        "value": ("CommandFailed", "env 'X' holds a NUL character (\\0) at character 1, which "
                                   "cannot be passed to a process"),
        "name": ("CommandFailed", "env name 'A=B' is not a valid environment variable name"),
    }
    assert steps["esc"]["error"]["hint"].startswith("in a YAML double-quoted string \\0 is NUL")


def test_a_nul_from_an_input_is_said_where_to_remove_and_stdin_can_carry_it(
        tmp_path: Path) -> None:
    """A NUL in an input (JSON's \\u0000) reaching a command's argv: the hint says to remove
    it there or to hand the data over on stdin, which does carry it."""
    import json

    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: nul\ninputs:\n  x: {type: string}\npolicies:\n"
        "  lo: {level: low}\ndefaults: {policy: lo}\nsteps:\n"
        "  argv: {run: [printf, '%s', '${{ inputs.x }}']}\n"
        "  piped: {run: 'wc -c', stdin: '${{ inputs.x }}'}\n")
    (tmp_path / "in.json").write_text('{"x": "a\\u0000b"}')
    out = plait("run", "wf.yaml", "--inputs", "in.json", "--keep-going", "--json",
                "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    steps = json.loads(out.stdout)["steps"]
    assert "in an input, or in a model's or a tool's output, must be removed there, or the " \
        "data given to the command on `stdin:`" in steps["argv"]["error"]["hint"]
    assert steps["piped"]["status"] == "succeeded"
    assert steps["piped"]["output"]["stdout"].strip() == "3"


def test_a_step_that_timed_out_says_how_to_give_it_more_time(tmp_path: Path) -> None:
    """`step slow failed: timed out after 0.2s` said what, not how to fix it."""
    (tmp_path / "wf.yaml").write_text(WF.replace("a: {run: 'true'}",
                                                 "slow: {run: 'sleep 5', timeout: 200ms}"))
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert ("step slow failed: timed out after 0.2s (hint: raise the step's `timeout:` (or "
            "`defaults.timeout`); it applies to each attempt)") in out.stderr


def test_inputs_given_twice_is_refused_not_the_first_file_dropped(tmp_path: Path) -> None:
    """`--inputs a.json --inputs b.json` ran with b.json's inputs alone: a.json's were
    dropped without a word (-i refuses one input given two values)."""
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "a.json").write_text('{"who": "a"}')
    (tmp_path / "b.json").write_text('{}')
    out = plait("run", "wf.yaml", "--inputs", "a.json", "--inputs", "b.json", "--no-record",
                cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.endswith(
        "Error: Invalid value for '--inputs': given 2 times (a.json, b.json); it takes one JSON "
        "object: merge the files into one, or give single values with -i NAME=VALUE\n")
    out = plait("run", "wf.yaml", "--inputs", "a.json", "--inputs", "a.json", "--dry-run",
                "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert '"who": "a"' in out.stdout


EMOJI = """\
version: 1
name: emo
providers:
  local: {kind: echo}
steps:
  a: {llm: local, prompt: "日本 😀 é"}
outputs:
  o: ${{ steps.a.output }}
"""


def test_stdout_whose_encoding_cannot_write_a_character_gets_an_escape_not_a_traceback(
        tmp_path: Path) -> None:
    """Under a latin-1 locale or PYTHONIOENCODING=ascii the run ended in a UnicodeEncodeError
    traceback (exit 1) instead of its result. Now what the encoding cannot write is written
    as a JSON escape: --json stays valid JSON with the same values."""
    import json
    import os
    import subprocess
    import sys

    from tests.cli.test_cli import ROOT

    (tmp_path / "wf.yaml").write_text(EMOJI, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "ascii"}

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml",
                               "--no-record", *args], cwd=tmp_path, env=env,
                              capture_output=True, timeout=60, check=False)

    out = run()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"o: echo: \\u65e5\\u672c \\ud83d\\ude00 \\u00e9\n"
    out = run("--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"] == {"o": "echo: 日本 😀 é"}


def test_no_database_where_state_points_does_not_hint_to_pass_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --state (or PLAIT_STATE_URL) given, the hint still said `a run creates it next
    to its workflow file ... or pass --state PATH or set PLAIT_STATE_URL`."""
    out = plait("runs", "list", "--state", "nope.db", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        f"error: there is no run record database at {tmp_path}/nope.db (hint: check the path "
        "given with --state: a run records there only when it is given the same --state)")
    monkeypatch.setenv("PLAIT_STATE_URL", "sqlite:nope.db")
    out = plait("resume", "abc", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().endswith(
        "(hint: check PLAIT_STATE_URL: a run records there only when it runs with the same "
        "PLAIT_STATE_URL)")
    monkeypatch.delenv("PLAIT_STATE_URL")
    out = plait("runs", "list", cwd=tmp_path)
    assert "(hint: a run creates it next to its workflow file" in out.stderr


def test_batch_inputs_given_twice_is_refused_not_the_first_rows_dropped(tmp_path: Path
                                                                        ) -> None:
    """`plait batch --inputs a.jsonl --inputs b.jsonl` ran b's rows alone."""
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "a.jsonl").write_text('{"who": "a"}\n')
    (tmp_path / "b.jsonl").write_text('{"who": "b"}\n')
    out = plait("batch", "wf.yaml", "--inputs", "a.jsonl", "--inputs", "b.jsonl", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert out.stderr.endswith(
        "Error: Invalid value for '--inputs': given 2 times (a.jsonl, b.jsonl); it takes one "
        "JSONL file: join the files into one (e.g. cat a.jsonl b.jsonl | plait batch FILE "
        "--inputs -)\n")
    assert not (tmp_path / ".plait").exists()


ARGV = """\
version: 1
name: argv
inputs:
  n: {type: integer, default: 2}
  where: {type: integer, default: 0}
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  lines: {run: [printf, "%s,%s", "${{ inputs.n }}", "${{ [1, 'a'] }}"]}
  whole: {run: "${{ 'true' if inputs.n else 'false' }}", cwd: "${{ inputs.where }}"}
outputs:
  lines: ${{ steps.lines.output.stdout }}
"""


def test_a_number_in_an_argv_command_is_passed_as_its_text(tmp_path: Path) -> None:
    """`run: [head, -n, "${{ inputs.n }}"]` (the list form docs/security.md recommends) failed
    with `TypeError: expected str, bytes or os.PathLike object, not int`: a whole ${{ }}
    keeps its value's type. It is now written as it would be inside a string."""
    (tmp_path / "wf.yaml").write_text(ARGV)
    (tmp_path / "0").mkdir()
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == 'lines: 2,[1, "a"]\n'


STDIN_JSON = """\
version: 1
name: stdin
inputs:
  cfg: {type: object, default: {a: 1, b: [true, null]}}
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  e: {run: 'printf "%s|" "$CFG"; cat', env: {CFG: "${{ inputs.cfg }}"},
      stdin: "${{ inputs.cfg }}"}
outputs:
  e: ${{ steps.e.output.stdout }}
"""


def test_a_mapping_fed_to_stdin_or_env_is_json_not_python(tmp_path: Path) -> None:
    """`stdin: ${{ inputs.cfg }}` fed the command Python's `{'a': 1, 'b': [True, None]}`
    (str() of the value), which `jq` and every JSON reader refuse; a prompt got JSON."""
    import json

    (tmp_path / "wf.yaml").write_text(STDIN_JSON)
    out = plait("run", "wf.yaml", "--no-record", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    env, stdin = json.loads(out.stdout)["outputs"]["e"].split("|")
    assert json.loads(env) == json.loads(stdin) == {"a": 1, "b": [True, None]}


COE = """\
version: 1
name: coe
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  flaky: {run: "exit 1", continue_on_error: true}
  a: {run: "echo a"}
outputs:
  bad: ${{ steps.a.output.stdout + 1 }}
"""


def test_an_output_error_is_told_even_when_a_continue_on_error_step_failed(tmp_path: Path
                                                                         ) -> None:
    """The run failed on its output, but stderr named only the continue_on_error step's
    failure (which did not fail the run): the run's own error was printed only when no step
    had failed."""
    (tmp_path / "wf.yaml").write_text(COE)
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "step flaky failed: command 'exit 1' exited with code 1\n" in out.stderr
    assert "run failed: wf.yaml:11:8: output 'bad': expression" in out.stderr, out.stderr


SECRET = """\
version: 1
name: sec
secrets: [TOKEN]
inputs:
  auth: {type: string}
steps:
  a: {run: 'true'}
"""


def test_a_dry_run_masks_a_secret_in_its_inputs(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`plait run --dry-run --json` printed an input holding a declared secret in clear,
    though secrets are redacted everywhere else (the run record has `***`)."""
    import json

    (tmp_path / "wf.yaml").write_text(SECRET)
    monkeypatch.setenv("TOKEN", "s3cr3t-token")
    out = plait("run", "wf.yaml", "-i", "auth=Bearer s3cr3t-token", "--dry-run", "--json",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["inputs"] == {"auth": "Bearer ***"}
    assert "s3cr3t" not in out.stdout
