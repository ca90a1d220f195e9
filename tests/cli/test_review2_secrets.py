"""Input errors of a workflow that declares a secret: the values they show are masked."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import anyio
import pytest

from engine.errors import InputError
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cli.test_cli import plait

SECRET = "hunter2-review2-secret"
WF = """\
version: 1
name: sec
secrets: [REVIEW2_TOKEN]
policies:
  o: {level: low}
defaults:
  policy: o
inputs:
  x: {type: string}
  n: {type: integer, default: 1}
  c: {type: string, enum: [a, b], default: a}
steps:
  a: {run: [echo, hi]}
"""


@pytest.mark.parametrize("args", [
    ("-i", f"x={SECRET}", "-i", "x=other"),
    ("-i", "x=a", "-i", f"n={SECRET}"),
    ("-i", "x=a", "-i", f"c={SECRET}-too"),
])
@pytest.mark.parametrize("dry", [False, True])
def test_an_input_error_does_not_print_a_declared_secret(tmp_path: Path, args: tuple[str, ...],
                                                         dry: bool) -> None:
    """`-i x=SECRET -i x=other` said `input 'x' is given twice with -i ('SECRET', then
    'other')`, and a wrong type or enum value showed it too, in clear, though plait masks a
    declared secret everywhere else (a run record, a dry run's JSON)."""
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / ".env").write_text(f"REVIEW2_TOKEN={SECRET}\n")  # read beside the workflow
    out = plait("run", "wf.yaml", "--no-record", *(("--dry-run",) if dry else ()), *args,
                cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: input "), out.stderr
    assert SECRET not in out.stdout + out.stderr, out.stderr
    assert "***" in out.stderr, out.stderr


def test_the_library_masks_a_secret_in_an_input_error_too(tmp_path: Path) -> None:
    """run_workflow's InputError (a caller may log it) masks it as the CLI does, with the
    secrets of the run's `environ`."""
    (tmp_path / "wf.yaml").write_text(WF)
    with pytest.raises(InputError) as caught:
        anyio.run(functools.partial(
            run_workflow, load(tmp_path / "wf.yaml"), {"x": "a", "n": SECRET},
            record_state=False, environ={"REVIEW2_TOKEN": SECRET}))
    assert SECRET not in str(caught.value) and "***" in caught.value.message
    assert SECRET not in json.dumps(caught.value.to_dict())
