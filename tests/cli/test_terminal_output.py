"""What a person at a terminal sees of `plait run`: the live view with streamed text, and
a result that cannot be written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli import ROOT, under_a_terminal

STREAMED = ("version: 1\nname: st\nproviders:\n  m: {kind: echo, options: {latency: 50ms}}\n"
            "steps:\n  one:\n    llm: m\n    prompt: the quick brown fox\n"
            "  two:\n    needs: [one]\n    llm: m\n    prompt: jumps over\n")


def test_streamed_text_under_the_live_view_keeps_its_lines(tmp_path: Path) -> None:
    """Under the live table every streamed chunk was printed on a line of its own ("echo:",
    " the", " quick", ...): rich printed each flushed chunk as a line above the table."""
    (tmp_path / "st.yaml").write_text(STREAMED)
    code, screen = under_a_terminal(tmp_path, "run", "st.yaml", "--stream", "--no-record")
    assert code == 0, screen
    assert "echo: the quick brown fox\n" in screen, screen
    assert "echo: jumps over\n" in screen, screen
    assert re.search(r"│ two\s*│ succeeded │", screen), screen


def test_streamed_text_goes_to_a_redirected_stdout_under_the_live_view(tmp_path: Path) -> None:
    """`plait run --stream > out.txt` in a terminal: the live view (on stderr) took stdout
    over, so the streamed text went to the terminal and out.txt stayed empty."""
    (tmp_path / "st.yaml").write_text(STREAMED)
    out = tmp_path / "out.txt"
    code, screen = under_a_terminal(tmp_path, "run", "st.yaml", "--stream", "--no-record",
                                     stdout=out)
    assert code == 0, screen
    assert "echo: the quick brown fox" in out.read_text()
    assert "echo: jumps over" in out.read_text()
    assert "quick" not in screen, screen
    assert re.search(r"│ one\s*│ succeeded │", screen), screen


def test_text_a_stopped_run_left_mid_line_is_ended() -> None:
    """A step cancelled in mid-stream gets no StepFinished: its last line was left open (under
    the live view, rich kept it unprinted and it was lost when the view ended)."""
    import io

    from engine.executor.events import StepChunk
    from runners.cli.progress import StreamPrinter

    out = io.StringIO()
    printer = StreamPrinter(out, whole_lines=True)
    printer(StepChunk(at=0.0, run_id="r", step_id="a", text="half a"))
    printer(StepChunk(at=0.0, run_id="r", step_id="a", text=" line"))
    printer.close()
    assert out.getvalue() == "\n--- a ---\nhalf a line\n"


GOOD = ("version: 1\nname: ok\nproviders:\n  p: {kind: echo}\nsteps:\n  a:\n    llm: p\n"
        "    prompt: hi\noutputs:\n  reply: ${{ steps.a.output }}\n")


def _plait_to(stdout: int | None, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """plait with `stdout` as its standard output (None: closed, as `>&-` leaves it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "runners.cli.main", *args]
    if stdout is None:
        command = ["sh", "-c", 'exec "$@" >&-', "sh", *command]
    return subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL if stdout is None
                          else stdout, stderr=subprocess.PIPE, text=True, timeout=60,
                          env=env, check=False)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("as_json", [True, False])
def test_a_result_that_cannot_be_written_says_so_and_where_the_run_is(tmp_path: Path,
                                                                      as_json: bool) -> None:
    """`plait run --json > result.json` on a full disk ended in a traceback (OSError: No
    space left on device) and said nothing of the run, which had succeeded and was
    recorded."""
    (tmp_path / "ok.yaml").write_text(GOOD)
    with open("/dev/full", "w") as full:
        out = _plait_to(full.fileno(), tmp_path, "run", "ok.yaml",
                        *(["--json"] if as_json else []))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    error = out.stderr.strip().splitlines()[-1]
    assert "cannot write the result to stdout: No space left on device" in error, out.stderr
    assert re.search(r"run \w+ succeeded and is recorded; .*plait runs show \w+ --json",
                     error), out.stderr


def test_a_closed_stdout_is_an_error_not_a_traceback_or_silence(tmp_path: Path) -> None:
    """With stdout closed (`>&-`) `plait run --json` crashed (AttributeError: 'NoneType'
    object has no attribute 'write') and `plait run` printed its outputs nowhere, exit 0."""
    (tmp_path / "ok.yaml").write_text(GOOD)
    for args in (("--json",), ()):
        out = _plait_to(None, tmp_path, "run", "ok.yaml", *args)
        assert out.returncode == 1, out.stderr
        assert "Traceback" not in out.stderr, out.stderr
        assert "cannot write the result to stdout: standard output is closed" in out.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [("runs", "list", "--json"), ("runs", "list"),
                                  ("validate", "--json", "ok.yaml"), ("schema",),
                                  ("graph", "ok.yaml")])
def test_other_commands_on_a_full_disk_say_so_without_a_traceback(tmp_path: Path,
                                                                  args: tuple[str, ...]
                                                                  ) -> None:
    (tmp_path / "ok.yaml").write_text(GOOD)
    assert _plait_to(subprocess.DEVNULL, tmp_path, "run", "ok.yaml").returncode == 0
    with open("/dev/full", "w") as full:
        out = _plait_to(full.fileno(), tmp_path, *args)
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == "error: cannot write to stdout: No space left on device", \
        out.stderr


def _strict_json(text: str) -> object:
    """JSON as jq or JSON.parse read it: NaN and Infinity are not JSON."""
    import json

    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json_even_for_an_infinite_number(tmp_path: Path) -> None:
    """An output of 1e308 * 10 (or a tool's or model's JSON with Infinity in it, which Python
    reads) was printed as a bare `Infinity` by --json, runs show --json and batch: not JSON,
    so jq and JSON.parse refused the whole result."""
    (tmp_path / "inf.yaml").write_text(
        "version: 1\nname: inf\ninputs:\n  x: {type: string, default: a}\nproviders:\n"
        "  p: {kind: echo}\nsteps:\n  a:\n    llm: p\n    prompt: hi\noutputs:\n"
        "  up: ${{ 1e308 * 10 }}\n  down: ${{ [-1e308 * 10, 1.5] }}\n")
    (tmp_path / "rows.jsonl").write_text('{"x": "b"}\n')
    run = _plait_to(subprocess.PIPE, tmp_path, "run", "inf.yaml", "--json")
    assert run.returncode == 0, run.stderr
    result = _strict_json(run.stdout)
    assert isinstance(result, dict)
    assert result["outputs"] == {"up": "Infinity", "down": ["-Infinity", 1.5]}
    shown = _plait_to(subprocess.PIPE, tmp_path, "runs", "show", result["run_id"], "--json")
    assert _strict_json(shown.stdout)["outputs"]["up"] == "Infinity"  # type: ignore[index]
    batch = _plait_to(subprocess.PIPE, tmp_path, "batch", "inf.yaml", "--inputs", "rows.jsonl")
    assert batch.returncode == 0, batch.stderr
    assert _strict_json(batch.stdout)["outputs"]["up"] == "Infinity"  # type: ignore[index]
