"""docs/testing.md stays true: its workflow examples validate, and the `tests:` example
records, snapshots and passes with `plait test` as the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.spec.models import WorkflowSpec
from runners.cli.test_cmd import execute
from tests.cassettes.conftest import ROOT

PAGE = ROOT / "docs" / "testing.md"
WORKFLOWS = [b for b in re.findall(r"```yaml\n(.*?)```", PAGE.read_text(), re.S)
             if b.startswith("version: 1")]


def test_the_page_has_workflow_examples() -> None:
    assert len(WORKFLOWS) >= 1


@pytest.mark.parametrize("block", WORKFLOWS)
def test_workflow_examples_validate(block: str) -> None:
    WorkflowSpec.model_validate(yaml.safe_load(block))


def test_the_tests_example_records_and_passes(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fallback.yaml"
    path.write_text(WORKFLOWS[0])
    assert execute([path], record=True, update=True) == 0
    assert (tmp_path / "cassettes" / "outage" / "fallback.cassette.yaml").is_file()
    assert (tmp_path / "__plait_snapshots__" / "fallback.outage.json").is_file()
    assert not (tmp_path / "__plait_snapshots__" / "fallback.no-snapshot.json").exists()
    assert execute([tmp_path]) == 0
    out = capsys.readouterr().out
    assert "2 passed, 0 failed, 2 cases in 1 workflow file" in out
    assert execute([tmp_path], select="outage") == 0
