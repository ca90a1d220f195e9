"""Misses, corrupt cassettes, cassettes of another workflow version, unused interactions."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from engine.cassettes import CassetteError, CassetteNotSaved
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: bad
inputs:
  topic: {type: string, default: graphs}
providers:
  p: {kind: echo, model: m}
steps:
  first: {llm: p, prompt: "Tell me about ${{ inputs.topic }}"}
  second: {llm: p, prompt: "More on ${{ steps.first.output }}"}
outputs:
  second: ${{ steps.second.output }}
"""


async def _recorded(tmp_path: Path) -> Path:
    wf = load(write_workflow(tmp_path, FLOW))
    result = await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False)
    assert result.ok
    return tmp_path / "tape"


async def test_a_miss_names_the_step_and_the_closest_request(tmp_path: Path) -> None:
    tape = await _recorded(tmp_path)
    wf = load(tmp_path / "wf.yaml")
    result = await run_workflow(wf, {"topic": "trees"}, replay_dir=tape, record_state=False)
    assert result.status == "failed"
    error = result.steps["first"].error
    assert error is not None and error["type"] == "ReplayMiss"
    message = error["message"]
    assert message.startswith("step 'first': no recorded LLM call matches")
    assert "closest recorded request (step 'first')" in message
    assert '-   "content": "Tell me about graphs"' in message
    assert '+   "content": "Tell me about trees"' in message
    assert result.steps["second"].status == "cancelled"


async def test_unused_interactions_are_a_warning(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    tape = await _recorded(tmp_path)
    shorter = FLOW.replace('  second: {llm: p, prompt: "More on ${{ steps.first.output }}"}\n',
                           "").replace("${{ steps.second.output }}", "${{ steps.first.output }}")
    wf = load(write_workflow(tmp_path, shorter))
    with caplog.at_level(logging.WARNING, logger="plait.cassettes"):
        result = await run_workflow(wf, replay_dir=tape, record_state=False)
    assert result.ok
    text = caplog.text
    assert "another version of workflow 'bad'" in text
    assert "1 recorded interaction(s) were not used: step second: llm to p (m)" in text


async def test_corrupt_cassettes_are_clear_errors(tmp_path: Path) -> None:
    tape = await _recorded(tmp_path)
    wf = load(tmp_path / "wf.yaml")
    path = tape / "bad.cassette.yaml"
    cases = {
        "plait_cassette: 1\ninteractions: [\n": "not valid YAML",
        "- just a list\n": "no `plait_cassette:` header",
        "plait_cassette: 1\nworkflow: bad\ninteractions: {a: 1}\n": "`interactions` is not",
        "plait_cassette: 1\nworkflow: bad\ninteractions:\n- {kind: llm, request: {}}\n":
            "neither `response`",
        "plait_cassette: 9\ninteractions: []\n": "format version 9",
    }
    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(CassetteError) as info:
            await run_workflow(wf, replay_dir=tape, record_state=False)
        assert expected in str(info.value), text
        assert str(path) in str(info.value)



def test_invalid_yaml_in_a_cassette_is_located_and_says_what_is_wrong(tmp_path: Path) -> None:
    """A hand edit that breaks the YAML: the error gives the line and column of the problem
    and the parser's own words for it, not only the construct it was reading."""
    from engine.cassettes import read_cassette

    path = tmp_path / "x.cassette.yaml"
    path.write_text("plait_cassette: 1\nworkflow: x\ninteractions:\n"
                    "- {kind: llm, step: a\n  request: {}}\n")
    with pytest.raises(CassetteError) as info:
        read_cassette(path)
    message = str(info.value)
    assert message.startswith(f"cassette {path} is corrupt (not valid YAML) at line 5, "
                              "column 10: did not find expected ',' or '}' (in the flow "
                              "mapping at line 4, column 3)"), message
    path.write_text("plait_cassette: 1\nworkflow: x\n\tinteractions: []\n")
    with pytest.raises(CassetteError) as info:
        read_cassette(path)
    assert "at line 3, column 1: found a tab character" in str(info.value)

async def test_malformed_interactions_name_the_interaction_and_the_field(
        tmp_path: Path) -> None:
    """Each would have crashed a step with a raw Python error, or replayed a wrong reply."""
    tape = await _recorded(tmp_path)
    wf = load(tmp_path / "wf.yaml")
    path = tape / "bad.cassette.yaml"
    good = yaml.safe_load(path.read_text())
    llm = {"kind": "llm", "step": "x", "request": {"provider": "p"}}
    cases: list[tuple[dict[str, object], str]] = [
        ({"response": "just a string"}, "`response` is 'just a string', not a mapping"),
        ({"error": "boom"}, "`error` is 'boom', not a mapping"),
        ({"error": {"type": "Unavailable"}}, "`error.message` is missing"),
        ({"response": {"text": "t", "usage": {"input_tokens": "many"}}},
         "`response.usage.input_tokens` is 'many', not a whole number"),
        ({"response": {"usage": {}}}, "`response.text` is missing"),
        ({"response": {"text": 42}}, "`response.text` is 42, not a string"),
        ({"response": {"text": "t", "tool_calls": [{"id": "1"}]}},
         "`response.tool_calls[0].name` is missing"),
        ({"kind": "llm_stream", "chunks": [{"text": "a"}, {"usage": {"output_tokens": -1}}]},
         "`chunks[1].usage.output_tokens` is -1"),
        ({"kind": "llm_stream", "response": {"text": "t"}}, "`chunks` is missing"),
        ({"kind": "tool", "response": {"text": "t", "is_error": "no"}},
         "`response.is_error` is 'no', not true or false"),
        ({"kind": "tool_list", "response": {"tools": [{"description": "d"}]}},
         "`response.tools[0].name` is missing"),
        ({"step": 3, "response": {"text": "t"}}, "`step` is 3, not a string"),
    ]
    for change, expected in cases:
        item = {**llm, **change}
        path.write_text(yaml.safe_dump({**good, "interactions": [
            *good["interactions"], item]}))
        with pytest.raises(CassetteError) as info:
            await run_workflow(wf, replay_dir=tape, record_state=False)
        text = str(info.value)
        assert f"cassette {path} is corrupt: interaction 2 ({item['kind']}" in text, change
        assert expected in text, (change, text)
        assert "a malformed interaction: re-record it" in text


async def test_a_cassette_of_another_workflow_or_none_at_all(tmp_path: Path) -> None:
    tape = await _recorded(tmp_path)
    (tape / "bad.cassette.yaml").rename(tape / "other.cassette.yaml")
    other = load(write_workflow(tmp_path, FLOW.replace("name: bad", "name: other"), "o.yaml"))
    text = (tape / "other.cassette.yaml").read_text().replace("workflow: bad", "workflow: x")
    (tape / "other.cassette.yaml").write_text(text)
    with pytest.raises(CassetteError, match="recorded for workflow 'x', not 'other'"):
        await run_workflow(other, replay_dir=tape, record_state=False)
    with pytest.raises(CassetteError, match=r"no cassette at .*bad\.cassette\.yaml"):
        await run_workflow(load(tmp_path / "wf.yaml"), replay_dir=tape, record_state=False)
    with pytest.raises(CassetteError, match="cannot be used together"):
        await run_workflow(other, replay_dir=tape, record_dir=tape, record_state=False)


async def test_replay_missing_live_calls_through(tmp_path: Path) -> None:
    tape = await _recorded(tmp_path)
    wf = load(tmp_path / "wf.yaml")
    result = await run_workflow(wf, {"topic": "trees"}, replay_dir=tape,
                                replay_missing="live", record_state=False)
    assert result.ok
    assert result.outputs == {"second": "echo: More on echo: Tell me about trees"}


async def test_an_unwritable_record_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    wf = load(write_workflow(tmp_path, FLOW))
    with pytest.raises(CassetteError, match="cannot write cassette"):
        await run_workflow(wf, record_dir=tmp_path / "file" / "tape", record_state=False)


MARKED = """
version: 1
name: marked
policies:
  o: {level: low}
providers:
  p: {kind: echo, model: m}
steps:
  a: {llm: p, prompt: hi}
  b: {run: "COMMAND", policy: o, needs: [a]}
outputs:
  a: ${{ steps.a.output }}
"""


async def test_an_unwritable_record_dir_fails_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    wf = load(write_workflow(tmp_path, MARKED.replace("COMMAND", f"echo ran > {marker}")))
    (tmp_path / "file").write_text("x")
    for record_dir, expected in [
            (tmp_path / "file", r"file is a file, not a directory"),
            (tmp_path / "file" / "below", r"file is a file, not a directory"),
            (tmp_path / "tape", r"marked\.cassette\.yaml: it is a directory")]:
        (tmp_path / "tape" / "marked.cassette.yaml").mkdir(parents=True, exist_ok=True)
        with pytest.raises(CassetteError, match=expected) as info:
            await run_workflow(wf, record_dir=record_dir, state_location=tmp_path / "runs.db")
        assert info.value.hint
        assert not marker.exists()


async def test_a_cassette_not_saved_at_the_end_keeps_the_runs_result(tmp_path: Path) -> None:
    tape = tmp_path / "tape"
    wf = load(write_workflow(tmp_path, MARKED.replace(
        "COMMAND", f"rm -rf {tape} && echo x > {tape}")))
    with pytest.raises(CassetteNotSaved, match=r"succeeded, but its cassette was not saved: "
                       r"cannot write cassette .*tape is a file, not a directory") as info:
        await run_workflow(wf, record_dir=tape, record_state=False)
    assert info.value.result.ok and info.value.result.outputs == {"a": "echo: hi"}

async def test_a_cassette_from_a_newer_plait_says_to_upgrade(tmp_path: Path) -> None:
    """A newer format's hint was "re-record it with this version of plait": in a team, that
    downgrades a cassette a colleague's newer plait wrote. And `plait_cassette: true` was read
    as version 1 (True == 1 in Python)."""
    tape = await _recorded(tmp_path)
    wf = load(tmp_path / "wf.yaml")
    path = tape / "bad.cassette.yaml"
    path.write_text("plait_cassette: 9\nworkflow: bad\ninteractions: []\n")
    with pytest.raises(CassetteError) as info:
        await run_workflow(wf, replay_dir=tape, record_state=False)
    assert "newer plait" in str(info.value) and "upgrade plait" in str(info.value)
    path.write_text("plait_cassette: 0\nworkflow: bad\ninteractions: []\n")
    with pytest.raises(CassetteError) as info:
        await run_workflow(wf, replay_dir=tape, record_state=False)
    assert "upgrade" not in str(info.value) and "re-record it" in str(info.value)
    path.write_text("plait_cassette: true\nworkflow: bad\ninteractions: []\n")
    with pytest.raises(CassetteError) as info:
        await run_workflow(wf, replay_dir=tape, record_state=False)
    assert "format version True" in str(info.value)
