"""The YAML examples in docs/scheduling.md are valid workflows with valid schedules."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from runners.cli.schedule import load_entries

JAN_1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DOC = Path(__file__).resolve().parents[2] / "docs" / "scheduling.md"


def test_yaml_examples_in_the_scheduling_doc_load(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        entries = load_entries((path,))
        assert entries
        for entry in entries:
            assert entry.next_fire(JAN_1) > JAN_1
