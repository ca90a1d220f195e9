"""A cassette is read in review: a text of several lines (a prompt, a reply, a file a tool
read) is written as a YAML literal block, line for line, and replays exactly the same."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.cassettes.format import write_cassette
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: lines
providers:
  p: {kind: echo, model: e}
steps:
  ask:
    llm: p
    prompt: |
      Review these notes:
      - ship on Friday
      - rotate the keys
outputs:
  said: ${{ steps.ask.output }}
"""


async def test_a_multi_line_prompt_and_reply_are_literal_blocks(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, FLOW))
    recorded = await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False,
                                  listeners=[])
    text = (tmp_path / "tape" / "lines.cassette.yaml").read_text()
    assert "      content: |\n        Review these notes:\n        - ship on Friday\n" \
           "        - rotate the keys\n" in text, text
    assert "    text: |\n      echo: Review these notes:\n      - ship on Friday\n" in text
    replayed = await run_workflow(wf, replay_dir=tmp_path / "tape", record_state=False,
                                  listeners=[])
    assert replayed.ok and replayed.outputs == recorded.outputs


@pytest.mark.parametrize("value", [
    "a\nb", "ends with a break\n", "two breaks\n\n\n", "\nstarts with one", "  indented\nx",
    "trailing space \nx", "tab\there\nx", "crlf\r\nx", "nul\x00\nx", "# looks like\n- yaml: x",
    "x\n ", "unicode é 😀\nline", "---\n...\n"])
def test_every_text_reads_back_exactly(tmp_path: Path, value: str) -> None:
    data = {"interactions": [{"request": {"text": value}, "also": [value]}]}
    text = write_cassette(tmp_path / "c.yaml", data)
    assert yaml.safe_load(text) == data
