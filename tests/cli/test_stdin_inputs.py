"""`--inputs -`: the inputs of `plait run`/`plait resume` (one JSON object) and the rows of
`plait batch` (JSON Lines) read from stdin, as strictly as from a file, errors naming
`<stdin>`."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from runners.cli.run_cmd import run
from tests.cli.test_batch_edges import SLOW, interrupt_once
from tests.cli.test_cli import GOOD, ROOT
from tests.executor.test_crash_resume import plait as popen

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def plait(*args: str, cwd: Path, stdin: bytes | str = b"") -> subprocess.CompletedProcess[str]:
    """`plait ARGS` with `stdin` piped in."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    proc = subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          input=data, capture_output=True, timeout=60, env=ENV, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    return tmp_path


def test_run_reads_its_inputs_object_from_stdin(good: Path) -> None:
    out = plait("run", "good.yaml", "--inputs", "-", "--no-record", "--json", cwd=good,
                stdin='{"who": "ada"}\n')
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi ada"}
    # -i still wins over the object, as it does over a file
    out = plait("run", "good.yaml", "--inputs", "-", "-i", "who=bo", "--no-record", "--json",
                cwd=good, stdin='{"who": "ada"}')
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi bo"}, out.stderr
    # a byte-order mark, as some Windows tools write, is accepted
    out = plait("run", "good.yaml", "--inputs", "-", "--no-record", "--json", cwd=good,
                stdin=b'\xef\xbb\xbf{"who": "bom"}')
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi bom"}, out.stderr


def test_the_click_runner_input_reaches_inputs_dash(good: Path) -> None:
    """The command reads click's stdin stream, so an embedding (or a test) that hands the
    command its input through click is read too, not the process's own stdin. (The `run`
    command itself: invoking the `plait` group here would leave click's cached help option
    on it, which the CLI reference's generation then reads.)"""
    result = CliRunner().invoke(run, [str(good / "good.yaml"), "--inputs", "-", "--no-record",
                                      "--json"], input='{"who": "cli"}')
    assert result.exit_code == 0, (result.output, result.exception)
    assert json.loads(result.stdout)["outputs"] == {"reply": "echo: hi cli"}


@pytest.mark.parametrize(("stdin", "error", "hint"), [
    (b"", "cannot read inputs from <stdin>: Expecting value: line 1 column 1 (char 0)",
     "stdin was empty: pipe a JSON object into plait"),
    (b'{"who": "a", "who": "b"}', "cannot read inputs from <stdin>: duplicate key 'who'",
     "give each input once"),
    (b'{"who": "a"}\n{"who": "b"}\n', "cannot read inputs from <stdin>: Extra data",
     "--inputs takes one JSON object; for one run per line of a JSONL file use plait "
     "batch FILE --inputs -)"),
    (b'["ada"]', "inputs from <stdin> must hold a JSON object, got an array",
     'give the inputs by name, e.g. {"who": "ada"}'),
    (b'{"who": "\xff"}', "cannot read inputs from <stdin>: not UTF-8 text (byte 10)",
     "save it as UTF-8"),
    (b"[" * 100_000, "cannot read inputs from <stdin>: it is nested too deeply",
     "pass values with fewer levels of nesting"),
])
def test_bad_stdin_inputs_are_input_errors_naming_stdin(good: Path, stdin: bytes, error: str,
                                                       hint: str) -> None:
    out = plait("run", "good.yaml", "--inputs", "-", cwd=good, stdin=stdin)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith(f"error: {error}"), out.stderr
    assert f"(hint: {hint}" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (good / ".plait").exists()  # nothing ran, nothing was recorded


def test_a_closed_stdin_is_an_input_error(good: Path) -> None:
    for command in (["run", "good.yaml"], ["batch", "good.yaml"]):
        argv = " ".join([sys.executable, "-m", "runners.cli.main", *command, "--inputs", "-"])
        out = subprocess.run(["sh", "-c", f"exec {argv} <&-"], cwd=good, capture_output=True,
                             text=True, timeout=60, env=ENV, check=False)
        assert out.returncode == 2, out.stdout
        assert out.stderr.startswith("error: cannot read <stdin>: standard input is closed "
                                     "(hint: pipe "), out.stderr


def test_an_inputs_file_that_does_not_exist_points_at_dash(good: Path) -> None:
    out = plait("run", "good.yaml", "--inputs", "nope.json", cwd=good)
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot read inputs file nope.json: No such file or "
                                 "directory (hint: check the path; `--inputs -` reads"), out.stderr


def test_resume_takes_its_inputs_from_stdin(good: Path) -> None:
    """`plait resume` refuses other inputs than the run's; the same ones, piped, resume it."""
    (good / "r.yaml").write_text(
        "version: 1\nname: r\nproviders:\n  p: {kind: echo}\ninputs:\n  who: {type: string}\n"
        "steps:\n  a: {llm: p, prompt: 'hi ${{ inputs.who }}'}\n"
        "  b: {needs: [a], run: [test, -f, ok.flag]}\noutputs:\n  reply: ${{ steps.a.output }}\n")
    assert plait("run", "r.yaml", "--inputs", "-", cwd=good,
                 stdin='{"who": "ada"}').returncode == 1
    run_id = json.loads(plait("runs", "list", "--json", cwd=good).stdout)[0]["run_id"]
    (good / "ok.flag").write_text("")
    other = plait("resume", run_id, "--inputs", "-", cwd=good, stdin='{"who": "bo"}')
    assert other.returncode == 2 and f"input 'who' differs from run {run_id}'s: the run had " \
        '"ada", given "bo" (hint: leave them out' in other.stderr
    same = plait("resume", run_id, "--inputs", "-", "--json", cwd=good, stdin='{"who": "ada"}')
    assert same.returncode == 0, same.stderr
    result = json.loads(same.stdout)
    assert result["outputs"] == {"reply": "echo: hi ada"}
    assert result["steps"]["a"]["status"] == "succeeded"


def test_batch_reads_its_rows_from_stdin(good: Path) -> None:
    out = plait("batch", "good.yaml", "--inputs", "-", "--state", "runs.db", cwd=good,
                stdin=b'\xef\xbb\xbf{"who": "ada"}\n\n{"who": "bo"}\n{"nobody": 1}\n')
    assert out.returncode == 1, out.stderr  # the third row's input is unknown
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    # numbered by their line in the stream, blank lines counted
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "succeeded"), (3, "succeeded"), (4, "error")]
    assert [r["outputs"] for r in rows[:2]] == [{"reply": "echo: hi ada"},
                                                 {"reply": "echo: hi bo"}]
    assert out.stderr.strip().endswith("2 of 3 runs succeeded")


@pytest.mark.parametrize(("stdin", "error"), [
    (b'{"who": "a"}\n{"who": "b"\n', "<stdin>:2: not JSON: Expecting ',' delimiter"),
    (b'{"who": "a"}\n\n{"who": "b", "who": "c"}\n', "<stdin>:3: duplicate key 'who'"),
    (b'{"who": "a"}\n"b"\n', "<stdin>:2: each line must be a JSON object of inputs"),
    (b'{"who": "a"}\n{"who": "\xff"}\n', "<stdin>:2: not UTF-8 text (byte 10)"),
])
def test_a_bad_stdin_row_stops_the_batch_before_any_row_runs(good: Path, stdin: bytes,
                                                             error: str) -> None:
    out = plait("batch", "good.yaml", "--inputs", "-", "--state", "runs.db", cwd=good,
                stdin=stdin)
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert out.stderr.startswith(f"error: {error}"), out.stderr
    assert not (good / "runs.db").exists()  # no row ran


def test_ctrl_c_interrupts_a_batch_read_from_stdin(tmp_path: Path) -> None:
    """Reading the rows from a pipe changes nothing about Ctrl-C: runs in flight end
    `interrupted` (resumable), rows not started are not run, exit 130."""
    (tmp_path / "slow.yaml").write_text(SLOW)
    read, write = os.pipe()
    proc = popen("batch", "slow.yaml", "--inputs", "-", "--concurrency", "2", "--state",
                 "runs.db", cwd=tmp_path, stdin=read)
    os.close(read)
    os.write(write, "".join(f'{{"i": {i}}}\n' for i in range(3)).encode())
    os.close(write)
    out, err = interrupt_once(proc, tmp_path / "started-0", tmp_path / "started-1")
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "interrupted"), (2, "interrupted"), (3, "interrupted")]
    assert rows[2]["run_id"] is None and not (tmp_path / "started-2").exists()


def _read_until(fd: int, text: bytes, seconds: float = 20) -> bytes:
    """What a pty master gives until `text` appears in it (bounded in time)."""
    got = b""
    deadline = time.monotonic() + seconds
    while text not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{text!r} never appeared; got {got!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                got += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
    return got


def _on_a_terminal(*args: str, cwd: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`plait ARGS` with a terminal as its stdin and stderr (its stdout piped)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                            stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=ENV,
                            start_new_session=True)
    os.close(slave)
    return proc, master


def test_on_a_terminal_it_says_what_it_waits_for(good: Path) -> None:
    proc, master = _on_a_terminal("run", "good.yaml", "--inputs", "-", "--no-record",
                                  "--json", cwd=good)
    try:
        _read_until(master, b"reading a JSON object of inputs from stdin; end it with Ctrl-D")
        os.write(master, b'{"who": "tty"}\n\x04')  # Ctrl-D at the start of a line: the end
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)
    assert proc.returncode == 0
    assert json.loads(out)["outputs"] == {"reply": "echo: hi tty"}


def test_ctrl_c_while_it_waits_for_stdin_exits_130_having_run_nothing(good: Path) -> None:
    proc, master = _on_a_terminal("run", "good.yaml", "--inputs", "-", cwd=good)
    try:
        _read_until(master, b"end it with Ctrl-D")
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)
        err = _read_until(master, b"nothing ran")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(master)
    assert proc.returncode == 130
    assert b"interrupted while reading stdin; nothing ran" in err
    assert b"Traceback" not in err
    assert not (good / ".plait").exists()


def test_a_file_named_dash_is_read_as_a_file_when_written_dot_slash_dash(good: Path) -> None:
    (good / "-").write_text('{"who": "file"}')
    out = plait("run", "good.yaml", "--inputs", "./-", "--no-record", "--json", cwd=good,
                stdin='{"who": "stdin"}')
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi file"}, out.stderr
    (good / "-").write_text('{"who": "row"}\n')
    out = plait("batch", "good.yaml", "--inputs", "./-", "--state", "runs.db", cwd=good,
                stdin='{"who": "stdin"}\n')
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi row"}, out.stderr


@pytest.mark.parametrize("command", [("run", "-", "--inputs", "-"),
                                     ("batch", "-", "--inputs", "-"),
                                     ("resume", "RUN", "--file", "-", "--inputs", "-")])
def test_a_workflow_is_never_read_from_stdin(good: Path, command: tuple[str, ...]) -> None:
    """Only --inputs reads `-` from stdin: a workflow FILE of `-` is refused by name (not
    taken for a missing file called -), before stdin is read or anything runs."""
    out = plait(*command, cwd=good, stdin='{"who": "ada"}')
    assert out.returncode == 2, out.stdout
    assert ": a workflow is read from its file, not from stdin: give the file's path (only " \
           "--inputs reads - from stdin)" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert not (good / ".plait").exists()
