"""Equal requests made by the items of one foreach step are answered item by item: each
item gets the reply recorded for it, whatever order the calls come in (retries with jitter,
a `max_parallel` limit and slow replies change that order between recording and replay)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.cassettes import cassette_path
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: samples
providers:
  p: {kind: echo, model: m}
steps:
  ask:
    foreach: ${{ range(3) | list }}
    llm: p
    prompt: Give me one idea.
outputs:
  ideas: ${{ steps.ask.output }}
"""


async def test_equal_requests_of_foreach_items_get_their_own_replies(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, FLOW))
    tape = tmp_path / "tape"
    assert (await run_workflow(wf, record_dir=tape, record_state=False)).ok
    path = cassette_path(tape, "samples")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert [i.get("item") for i in data["interactions"]] == [0, 1, 2]
    # as a sampling model answers: another idea each time, and recorded in another order
    for item in data["interactions"]:
        item["response"]["text"] = f"idea of item {item['item']}"
    data["interactions"].reverse()
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    result = await run_workflow(wf, replay_dir=tape, record_state=False)
    assert result.ok, result.error
    assert result.outputs["ideas"] == ["idea of item 0", "idea of item 1", "idea of item 2"]


async def test_an_item_that_is_not_a_whole_number_is_a_corrupt_cassette(
        tmp_path: Path) -> None:
    from engine.cassettes import CassetteError

    wf = load(write_workflow(tmp_path, FLOW))
    tape = tmp_path / "tape"
    assert (await run_workflow(wf, record_dir=tape, record_state=False)).ok
    path = cassette_path(tape, "samples")
    path.write_text(path.read_text(encoding="utf-8").replace("item: 1", "item: one", 1),
                    encoding="utf-8")
    with pytest.raises(CassetteError, match=r"interaction 1 \(llm, step 'ask'\): `item` is "
                                            r"'one', not a whole number"):
        await run_workflow(wf, replay_dir=tape, record_state=False)
