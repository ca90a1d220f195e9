"""The pytest plugin, run with pytester on a copy of the example workflow and its test."""

from __future__ import annotations

import shutil
from importlib.metadata import entry_points

import pytest

from tests.cassettes.conftest import ROOT


def _plugin_args(request: pytest.FixtureRequest) -> list[str]:
    installed = any(e.name == "plait" for e in entry_points(group="pytest11"))
    return ["-p", "no:cacheprovider"] + ([] if installed else ["-p", "runners.pytest_plugin"])


@pytest.fixture
def example(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    shutil.copytree(ROOT / "workflows" / "fallback", pytester.path / "fallback")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return pytester


def test_the_example_test_passes_offline(example: pytest.Pytester,
                                         request: pytest.FixtureRequest) -> None:
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback")
    result.assert_outcomes(passed=1)


def test_a_changed_snapshot_fails(example: pytest.Pytester,
                                  request: pytest.FixtureRequest) -> None:
    ambr = example.path / "fallback" / "__snapshots__" / "test_fallback.ambr"
    ambr.write_text(ambr.read_text().replace("'confidence': 0.0", "'confidence': 0.5"))
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*confidence*"])


def test_plait_record_rerecords_and_unused_interactions_fail(
        example: pytest.Pytester, request: pytest.FixtureRequest) -> None:
    tape = example.path / "fallback" / "cassettes" / "outage" / "fallback.cassette.yaml"
    tape.write_text(tape.read_text() + tape.read_text().split("interactions:\n", 1)[1])
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*5 recorded interaction(s) were not used*"])
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback", "--plait-record")
    result.assert_outcomes(passed=1)
    assert tape.read_text().count("- kind:") == 5
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback")
    result.assert_outcomes(passed=1)


def test_a_new_test_without_cassette_says_how_to_record(
        example: pytest.Pytester, request: pytest.FixtureRequest) -> None:
    example.makepyfile(test_new="""
        def test_new(plait_run):
            result = plait_run("fallback/fallback.yaml", inputs={"question": "Why?"})
            assert result.ok
    """)
    result = example.runpytest_subprocess(*_plugin_args(request), "test_new.py")
    result.assert_outcomes(errors=0, failed=1)
    result.stdout.fnmatch_lines(
        ["*no cassette at*test_new*; record it with `pytest --plait-record`"])
    # said once, not a second time as the error being handled when the test failed
    assert result.stdout.str().count("no cassette at") == 2  # the failure and the summary
    result.stdout.no_fnmatch_line("*During handling of the above exception*")


TWO_CASES = """
version: 1
name: wf
inputs:
  q: {type: string, default: hello}
providers:
  e: {kind: echo, model: m}
steps:
  a: {llm: e, prompt: "Q: ${{ inputs.q }}"}
outputs:
  text: ${{ steps.a.output }}
tests:
  - name: two
    inputs: {q: bye}
    cassette: cassettes/two
  - name: one
    cassette: cassettes/one
"""


def test_the_default_cassette_is_the_case_with_the_same_inputs(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (pytester.path / "wf.yaml").write_text(TWO_CASES)
    pytester.makepyfile(test_wf="""
        def test_default(plait_run):
            assert plait_run("wf.yaml").outputs == {"text": "echo: Q: hello"}

        def test_bye(plait_run):
            assert plait_run("wf.yaml", inputs={"q": "bye"}).outputs == {"text": "echo: Q: bye"}
    """)
    recorded = pytester.runpytest_subprocess(*_plugin_args(request), "--plait-record")
    recorded.assert_outcomes(passed=2)
    one = pytester.path / "cassettes" / "one" / "wf.cassette.yaml"
    two = pytester.path / "cassettes" / "two" / "wf.cassette.yaml"
    assert "Q: hello" in one.read_text() and "Q: bye" not in one.read_text()
    assert "Q: bye" in two.read_text() and "Q: hello" not in two.read_text()
    pytester.runpytest_subprocess(*_plugin_args(request)).assert_outcomes(passed=2)
    # an explicit cassette of a case with other inputs is never re-recorded
    before = two.read_text()
    pytester.makepyfile(test_wf="""
        def test_default(plait_run):
            plait_run("wf.yaml", cassette="cassettes/two")
    """)
    refused = pytester.runpytest_subprocess(*_plugin_args(request), "--plait-record")
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*would overwrite the cassette in *two of case 'two'*"])
    assert two.read_text() == before


def test_a_miss_returns_the_failed_result(example: pytest.Pytester,
                                          request: pytest.FixtureRequest) -> None:
    """A miss leaves recorded calls unused; the test gets the failed run to look at, not a
    failure about the unused calls."""
    example.makepyfile(test_miss="""
        def test_miss(plait_run):
            result = plait_run("fallback/fallback.yaml", inputs={"question": "Why?"},
                               cassette="cassettes/outage")
            assert not result.ok
            message = result.steps["draft"].error["message"]
            assert "no recorded LLM call matches" in message
            assert "closest recorded request (step 'draft')" in message
    """)
    result = example.runpytest_subprocess(*_plugin_args(request), "test_miss.py")
    result.assert_outcomes(passed=1)


def test_syrupy_snapshot_update_leaves_plait_test_snapshots_alone(
        example: pytest.Pytester, request: pytest.FixtureRequest) -> None:
    """syrupy deletes files it does not know in its __snapshots__ on --snapshot-update; plait
    test's snapshots are not there."""
    ours = example.path / "fallback" / "__plait_snapshots__" / "fallback.outage.json"
    result = example.runpytest_subprocess(*_plugin_args(request), "fallback",
                                          "--snapshot-update")
    result.assert_outcomes(passed=1)
    assert ours.is_file()
    result.stdout.no_fnmatch_line("*fallback.outage.json*")


def test_plait_record_records_a_shared_cassette_once(pytester: pytest.Pytester,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     request: pytest.FixtureRequest) -> None:
    """Two tests replaying one cassette: `pytest --plait-record` recorded it live in each, the
    second overwriting the reply the first test's snapshot was taken from (a model seldom
    answers the same twice; here the run id in an output). The second now replays it."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    (pytester.path / "wf.yaml").write_text(
        "version: 1\nname: shared\nproviders:\n  p: {kind: echo, model: m}\n"
        "steps:\n  a: {llm: p, prompt: hi}\noutputs:\n  rid: ${{ run.id }}\n"
        "tests:\n  - name: one\n    cassette: tape\n")
    pytester.makepyfile(test_shared="""
        from pathlib import Path

        def test_first(plait_run):
            Path("first.txt").write_text(plait_run("wf.yaml").outputs["rid"])

        def test_second(plait_run):
            assert plait_run("wf.yaml").outputs["rid"] == Path("first.txt").read_text()
    """)
    result = pytester.runpytest_subprocess(*_plugin_args(request), "--plait-record")
    result.assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess(*_plugin_args(request))
    result.assert_outcomes(passed=2)
