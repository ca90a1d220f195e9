"""Attack suite: a hostile input pasted into a `run:` command line through `${{ }}`.

A whole workflow runs (real shell, real sandbox runner). The control shows the payload does
run when pasted as is (what docs/security.md warns about); `| shquote` and the list form
keep it one argument.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text

pytestmark = pytest.mark.anyio


def _workflow(tmp_path: Path, run: str) -> str:
    return ("version: 1\nname: inject\ninputs:\n  word: {type: string}\n"
            "policies:\n  open: {level: low}\ndefaults:\n  policy: open\n"
            f"steps:\n  say:\n    run: {run}\n")


@pytest.mark.parametrize("run", ["echo ${{ inputs.word }}", "echo ${{ inputs.word | shquote }}",
                                 '[echo, "${{ inputs.word }}"]'])
async def test_an_input_becomes_a_command_only_when_pasted_unquoted(tmp_path: Path,
                                                                    run: str) -> None:
    marker = tmp_path / "pwned"
    payload = f"hi; touch {marker}; echo 'it\"s' $(id -u) `id -g`"
    wf = load_text(_workflow(tmp_path, run), str(tmp_path / "w.yaml"))
    result = await run_workflow(wf, {"word": payload}, record_state=False)
    assert result.ok, result.error
    stdout = result.steps["say"].output["stdout"]
    if "shquote" in run or run.startswith("["):
        assert stdout == payload + "\n"
        assert not marker.exists()
    else:  # the control: pasted as is, the payload is shell code
        assert marker.exists()


@pytest.mark.parametrize("run", ["grep -c ${{ inputs.word | shquote }} notes.txt",
                                 "grep -c -- ${{ inputs.word | shquote }} notes.txt",
                                 '[grep, -c, --, "${{ inputs.word }}", notes.txt]'])
async def test_one_word_is_still_an_option_without_a_double_dash(tmp_path: Path,
                                                                 run: str) -> None:
    """shquote keeps a value one word, not a non-option: `-f<file>` makes grep read its
    patterns from a file the input names. docs/security.md's example puts `--` first."""
    word = f"-f{tmp_path / 'patterns'}"
    (tmp_path / "notes.txt").write_text(f"alpha\nbeta\n{word}\n")
    (tmp_path / "patterns").write_text("^alpha$\n^beta$\n")
    wf = load_text(_workflow(tmp_path, run).replace("    run:", f"    cwd: {tmp_path}\n    run:"),
                   str(tmp_path / "w.yaml"))
    result = await run_workflow(wf, {"word": word}, record_state=False)
    assert result.ok, result.error
    count = result.steps["say"].output["stdout"].strip()
    if "--" in run:  # the value is the pattern, which one line holds
        assert count == "1"
    else:  # the control: the value is an option, and grep counts the file's patterns
        assert count == "2"


@pytest.mark.parametrize(("run", "column"), [('echo "${{ inputs.word | shquote }}"', 17),
                                             ("echo '${{ inputs.word | shquote }}'", 18),
                                             ('echo "${{ inputs.word }}" "x ${{ inputs.word '
                                              '| shquote }}"', 40)])
def test_shquote_inside_quotes_is_refused(tmp_path: Path, run: str, column: int) -> None:
    """Inside "..." the quotes shquote adds are literal, so `$(touch p)` in the value ran as
    a command (and inside '...' they close the quote): `plait validate` refuses it."""
    from engine.errors import SpecError

    text = _workflow(tmp_path, run.replace("'", "''").join("''"))
    with pytest.raises(SpecError) as info:
        load_text(text, str(tmp_path / "w.yaml"))
    (issue,) = info.value.issues
    assert "`| shquote` inside quotes" in issue.message
    assert (issue.location.line, issue.location.column) == (11, column)


def test_shquote_outside_quotes_is_accepted(tmp_path: Path) -> None:
    run = 'echo "a b" ${{ inputs.word | shquote }} "${{ inputs.word }}" \\"x'
    load_text(_workflow(tmp_path, run.replace("'", "''").join("''")), str(tmp_path / "w.yaml"))
