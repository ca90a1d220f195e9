"""`plait test` takes the trace options of `plait run` (and the OTEL_* variables): one tracing
session for the whole command, one trace per case, rooted at a ``plait.test <case>`` span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tracing.test_exporters import plait

SECRET = "case-s3cr3t-value"
WORKFLOW = """\
version: 1
name: cased
secrets: [CASE_TOKEN]
inputs:
  who: {type: string, default: ada}
providers:
  p: {kind: echo, model: echo-1}
steps:
  hello:
    llm: p
    prompt: "hello ${{ inputs.who }} ${{ secrets.CASE_TOKEN }}"
  sub:
    workflow: child.yaml
    with: {text: "${{ steps.hello.output }}"}
outputs:
  said: ${{ steps.sub.output.said }}
tests:
  - name: good
    cassette: cassettes/ada
    snapshot: false
    assert: [{output: said, contains: ada}]
  - name: bad
    cassette: cassettes/ada
    snapshot: false
    assert: [{output: said, contains: grace}]
"""
CHILD = """\
version: 1
name: child
inputs:
  text: {type: string}
providers:
  p: {kind: echo, model: echo-2}
steps:
  say:
    llm: p
    prompt: "child ${{ inputs.text }}"
outputs:
  said: ${{ steps.say.output }}
"""


def _spans(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert SECRET not in text
    return [json.loads(line) for line in text.splitlines()]


def _recorded(tmp_path: Path) -> Path:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "child.yaml").write_text(CHILD)
    out = plait("run", "wf.yaml", "--no-record", "--record", "cassettes/ada", cwd=tmp_path,
                env={"CASE_TOKEN": SECRET})
    assert out.returncode == 0, out.stderr
    return tmp_path


def test_each_case_is_a_trace_of_its_own_under_a_case_span(tmp_path: Path) -> None:
    _recorded(tmp_path)
    out = plait("test", "wf.yaml", "--trace-file", "t.jsonl", "--trace-content", cwd=tmp_path,
                env={"CASE_TOKEN": SECRET, "OTEL_RESOURCE_ATTRIBUTES": f"k={SECRET}"})
    assert out.returncode == 1, out.stdout + out.stderr  # the `bad` case fails
    spans = _spans(tmp_path / "t.jsonl")
    by_id = {s["context"]["span_id"]: s for s in spans}
    cases = {s["attributes"]["plait.test.case"]: s for s in spans
             if s["name"].startswith("plait.test ")}
    assert sorted(cases) == ["bad", "good"]
    assert {s["context"]["trace_id"] for s in spans} == {
        c["context"]["trace_id"] for c in cases.values()}  # every span in a case's trace
    assert len({c["context"]["trace_id"] for c in cases.values()}) == 2
    for name, case in cases.items():
        assert case["parent_id"] is None
        assert case["name"] == f"plait.test {name}"
        assert case["attributes"]["plait.workflow"] == "cased"
        assert case["attributes"]["code.file.path"] == "wf.yaml"
        assert case["resource"]["attributes"]["k"] == "***"
        trace = [s for s in spans if s["context"]["trace_id"] == case["context"]["trace_id"]]
        runs = [s for s in trace if s["name"] == "plait.run"]
        top = next(r for r in runs if r["attributes"]["plait.workflow"] == "cased")
        child = next(r for r in runs if r["attributes"]["plait.workflow"] == "child")
        assert top["parent_id"] == case["context"]["span_id"]
        assert by_id[child["parent_id"]]["name"] == "plait.step sub"
        assert sorted(s["name"] for s in trace) == [
            "chat echo-1", "chat echo-2", "plait.run", "plait.run", "plait.step hello",
            "plait.step say", "plait.step sub", f"plait.test {name}"]
    assert cases["good"]["attributes"]["plait.test.status"] == "passed"
    assert cases["good"]["status"]["status_code"] == "UNSET"
    assert cases["bad"]["attributes"]["plait.test.status"] == "failed"
    assert cases["bad"]["status"]["status_code"] == "ERROR"
    assert "does not contain 'grace'" in cases["bad"]["status"]["description"]


def test_trace_settings_plait_cannot_use_are_refused_before_any_case(tmp_path: Path) -> None:
    _recorded(tmp_path)
    out = plait("test", "wf.yaml", cwd=tmp_path, env={"OTEL_TRACES_EXPORTER": "bogus"})
    assert out.returncode == 2
    assert "OTEL_TRACES_EXPORTER" in out.stderr and "PASS" not in out.stdout
    out = plait("test", "wf.yaml", "--trace-file", "wf.yaml/t.jsonl", cwd=tmp_path)
    assert out.returncode == 2
    assert "cannot write the trace file" in out.stderr and "PASS" not in out.stdout


def test_otel_sdk_disabled_turns_the_trace_flags_off(tmp_path: Path) -> None:
    _recorded(tmp_path)
    out = plait("test", "wf.yaml", "-k", "good", "--trace-file", "t.jsonl", cwd=tmp_path,
                env={"OTEL_SDK_DISABLED": "true"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed, 0 failed" in out.stdout
    assert not (tmp_path / "t.jsonl").exists()
