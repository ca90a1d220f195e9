"""`plait test` end to end, as a user runs it (a subprocess of the real CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from tests.cassettes.conftest import ROOT


def plait(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = "/usr/bin:/bin"  # no plait-mcp-* commands: replay must not need them
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def fallback(tmp_path: Path) -> Path:
    target = tmp_path / "fallback"
    shutil.copytree(ROOT / "workflows" / "fallback", target)
    return target


def test_every_example_workflow_passes_offline() -> None:
    before = subprocess.run(["git", "status", "--porcelain", "workflows"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    done = plait("test", "workflows", "--junit", "/dev/null")
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("agent-recipe", "daily-report", "digest", "fallback"):
        assert f"PASS    workflows/{name}/" in done.stdout
    assert "4 passed, 0 failed" in done.stdout
    after = subprocess.run(["git", "status", "--porcelain", "workflows"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    assert after == before  # a test run leaves the examples as they were


def test_a_changed_output_fails_with_a_diff_and_update_rewrites(fallback: Path) -> None:
    snap = fallback / "__plait_snapshots__" / "fallback.outage.json"
    data = json.loads(snap.read_text())
    data["outputs"]["confidence"] = 0.5
    snap.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    done = plait("test", str(fallback), "--junit", str(fallback / "junit.xml"))
    assert done.returncode == 1
    assert "FAIL" in done.stdout and "outputs differ from the snapshot" in done.stdout
    assert '-    "confidence": 0.5' in done.stdout
    assert '+    "confidence": 0.0' in done.stdout
    (failure,) = ET.parse(fallback / "junit.xml").getroot().iter("failure")
    # the message is the problem's first line (a report lists it as the failure's title);
    # the diff is in the failure's text
    assert failure.get("message") == (
        "outputs differ from the snapshot (update it with `plait test --update-snapshots` if "
        "the change is intended):")
    assert '-    "confidence": 0.5' in (failure.text or "")
    done = plait("test", str(fallback), "--update-snapshots")
    assert done.returncode == 0 and "UPDATED" in done.stdout
    assert json.loads(snap.read_text())["outputs"]["confidence"] == 0.0
    assert plait("test", str(fallback)).returncode == 0


def test_a_failed_assertion_and_a_missing_snapshot(fallback: Path) -> None:
    wf = fallback / "fallback.yaml"
    wf.write_text(wf.read_text().replace('contains: "What is a DAG?"', 'contains: "tree"'))
    (fallback / "__plait_snapshots__" / "fallback.outage.json").unlink()
    done = plait("test", str(wf))
    assert done.returncode == 1
    assert "assert[0]: output 'answer' does not contain 'tree'" in done.stdout
    assert "no snapshot at" in done.stdout and "--update-snapshots" in done.stdout


def test_another_workflow_version_is_an_error(fallback: Path) -> None:
    wf = fallback / "fallback.yaml"
    wf.write_text(wf.read_text().replace("latency: 10ms", "latency: 20ms"))
    done = plait("test", str(wf))
    assert done.returncode == 1
    assert "ERROR" in done.stdout and "another version of workflow 'fallback'" in done.stdout
    assert "plait test --record" in done.stdout
    # said once, in the case's report: not again as a `plait run` warning on stderr
    assert "another version" not in done.stderr, done.stderr


def test_descriptions_and_triggers_do_not_make_a_cassette_stale(fallback: Path) -> None:
    """What cannot change a recorded call (a description, of the workflow, a step or an
    input; the schedule) leaves its cassette current: editing the docs of a workflow must not
    force a live re-record."""
    wf = fallback / "fallback.yaml"
    text = wf.read_text()
    text = text.replace('question: {type: string, default: "What is a DAG?"}',
                        'question: {type: string, default: "What is a DAG?", '
                        'description: what to ask}')
    text = text.replace("  draft:\n    llm: primary\n",
                        "  draft:\n    description: the first answer\n    llm: primary\n")
    text = text.replace("\ninputs:", '\non:\n  schedule: [{cron: "0 7 * * 1-5"}]\ninputs:')
    wf.write_text(text)
    assert "description: the first answer" in text and "cron:" in text
    done = plait("test", str(wf))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "another version" not in done.stdout + done.stderr


def test_unused_interactions_and_a_corrupt_cassette(fallback: Path) -> None:
    tape = fallback / "cassettes" / "outage" / "fallback.cassette.yaml"
    text = tape.read_text()
    extra = text.split("interactions:\n", 1)[1].split("- kind:")[1]
    tape.write_text(text + "- kind:" + extra)
    done = plait("test", str(fallback))
    assert done.returncode == 1 and "1 recorded interaction(s) were not used" in done.stdout
    assert "were not used" not in done.stderr, done.stderr
    tape.write_text("plait_cassette: 1\ninteractions: [")
    done = plait("test", str(fallback))
    assert done.returncode == 1
    assert "ERROR" in done.stdout and "is corrupt (not valid YAML)" in done.stdout


def test_an_unwritable_snapshot_dir(fallback: Path) -> None:
    snaps = fallback / "__plait_snapshots__"
    shutil.rmtree(snaps)
    snaps.write_text("a file where the snapshot directory should be")
    for update in ((), ("--update-snapshots",)):
        done = plait("test", str(fallback), *update)
        assert done.returncode == 1 and "ERROR" in done.stdout
        assert f"{snaps} is a file, not a directory" in done.stdout, update
        assert f"remove or rename the file {snaps}" in done.stdout
        assert "no snapshot at" not in done.stdout and "writable (or run" not in done.stdout
    if os.geteuid() != 0:  # root writes through read-only modes
        snaps.unlink()
        snaps.mkdir(mode=0o500)
        done = plait("test", str(fallback), "--update-snapshots")
        assert done.returncode == 1 and "cannot write snapshot" in done.stdout


def test_a_file_named_twice_runs_once(fallback: Path) -> None:
    done = plait("test", str(fallback), str(fallback / "fallback.yaml"),
                 str(fallback / "." / "fallback.yaml"))
    assert done.returncode == 0, done.stdout
    assert done.stdout.count("PASS") == 1
    assert "1 passed, 0 failed, 1 case in 1 workflow file" in done.stdout


def test_bad_spec_and_bad_paths_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nname: bad\nsteps:\n  a: {llm: nope}\n")
    done = plait("test", str(tmp_path / "bad.yaml"))
    assert done.returncode == 2 and "nope" in done.stderr
    assert plait("test", str(tmp_path / "absent")).returncode == 2
    empty = tmp_path / "empty.yaml"
    empty.write_text("version: 1\nname: e\nsteps:\n  a: {run: [\"true\"]}\n")
    done = plait("test", str(empty))
    assert done.returncode == 2 and "no test cases found" in done.stderr


def test_without_paths_and_without_a_workflows_dir_it_says_what_to_give(tmp_path: Path) -> None:
    """It said only `no such file or directory: workflows`, a path the user never typed."""
    done = plait("test", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: there is no workflows/ directory here, which plait "
                                  "test reads when no PATHS are given (hint: name the workflow "
                                  "files or directories, e.g. plait test . "), done.stderr
    absent = plait("test", "absent.yaml", cwd=tmp_path)
    assert absent.returncode == 2
    assert absent.stderr.startswith("error: no such file or directory: absent.yaml (hint: ")


def test_a_snapshot_in_the_old_directory_is_read_and_moved_on_update(fallback: Path) -> None:
    """Snapshots used to live in __snapshots__, which syrupy owns next to a pytest file."""
    new = fallback / "__plait_snapshots__" / "fallback.outage.json"
    old = fallback / "__snapshots__" / "fallback.outage.json"
    old.write_text(new.read_text())
    new.unlink()
    assert plait("test", str(fallback)).returncode == 0
    done = plait("test", str(fallback), "--update-snapshots")
    assert done.returncode == 0, done.stdout
    assert new.is_file() and not old.exists()
    assert (fallback / "__snapshots__" / "test_fallback.ambr").is_file()  # syrupy's stays


def test_a_junit_path_that_cannot_be_written_fails_before_any_case(fallback: Path) -> None:
    (fallback / "afile").write_text("a file, not a directory")
    done = plait("test", str(fallback), "--junit", str(fallback / "afile" / "j.xml"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: cannot write the JUnit report to "
                                  f"{fallback / 'afile' / 'j.xml'}: {fallback / 'afile'} is "
                                  "a file, not a directory (hint: ")


def test_an_invalid_workflow_file_is_an_error_in_the_junit_report(fallback: Path) -> None:
    """plait test exits 2 on a broken file: its JUnit report must not show all green."""
    (fallback / "broken.yaml").write_text("version: 1\nname: broken\nsteps:\n  a: {runn: ls}\n")
    done = plait("test", str(fallback), "--junit", str(fallback / "j.xml"))
    assert done.returncode == 2
    root = ET.parse(fallback / "j.xml").getroot()
    assert (root.get("tests"), root.get("errors")) == ("2", "1")
    [broken] = [c for c in root.iter("testcase") if c.find("error") is not None]
    assert broken.get("file") == str(fallback / "broken.yaml")
    error = broken.find("error")
    assert error is not None and "broken.yaml:4:7: a step needs one of" in (error.text or "")
    assert "unknown key 'runn'" in (error.text or "")


def test_a_snapshot_of_a_case_that_is_gone_is_reported_and_removed_on_update(
        fallback: Path) -> None:
    """A renamed or deleted case leaves its snapshot behind: `plait test` names it (without
    failing), `--update-snapshots` removes it; never with -k (other cases did not run), and
    never a file of another workflow file in the same directory."""
    snaps = fallback / "__plait_snapshots__"
    stale = snaps / "fallback.old-name.json"
    stale.write_text('{"outputs": {}}\n')
    other = snaps / "fallback.v2.outage.json"  # of fallback.v2.yaml, which is no workflow here
    other.write_text('{"outputs": {}}\n')
    sibling = fallback / "fallback.v2.yaml"
    sibling.write_text("# not a workflow\n")
    done = plait("test", str(fallback))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (f"STALE   {stale}: no case 'old-name' in {fallback / 'fallback.yaml'} (remove it "
            "with `plait test --update-snapshots`)") in done.stdout
    assert "1 passed, 0 failed, 1 case in 1 workflow file, 1 stale snapshot" in done.stdout
    assert "fallback.v2.outage" not in done.stdout
    done = plait("test", str(fallback), "--update-snapshots", "-k", "outage")
    assert stale.exists() and "STALE" not in done.stdout
    done = plait("test", str(fallback), "--update-snapshots")
    assert done.returncode == 0
    assert f"REMOVED {stale}" in done.stdout
    assert not stale.exists() and other.exists()
    assert (snaps / "fallback.outage.json").exists()
    assert "STALE" not in plait("test", str(fallback)).stdout


def test_a_case_without_cassette_never_calls_a_real_provider(tmp_path: Path) -> None:
    """`plait test` is offline: a case with no cassette on a workflow whose provider or MCP
    server is reached over the network is an error that says how to record one; it does not
    spend a CI key. Echo-only cases run as they are."""
    wf = tmp_path / "live.yaml"
    wf.write_text(
        "version: 1\nname: live\n"
        "providers:\n"
        "  remote: {kind: openai, model: gpt-test, base_url: 'http://127.0.0.1:9/v1',"
        " api_key: sk-test}\n"
        "  local: {kind: echo}\n"
        "mcp_servers:\n  far: {url: 'http://127.0.0.1:9/mcp'}\n"
        "steps:\n  a: {llm: local, prompt: hi}\n  b: {llm: remote, prompt: hi}\n"
        "outputs: {a: '${{ steps.a.output }}'}\n"
        "tests:\n  - name: nocassette\n    snapshot: false\n")
    done = plait("test", str(wf))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR   " in done.stdout and "live.yaml::nocassette" in done.stdout
    assert ("the case has no cassette, and the workflow would call provider 'remote' "
            "(openai), MCP server 'far' (by URL) live: add `cassette: DIR`") in done.stdout
    assert not (tmp_path / "__plait_snapshots__").exists()

    echo = tmp_path / "echo.yaml"
    echo.write_text(
        "version: 1\nname: echo\nproviders:\n  local: {kind: echo}\n"
        "steps:\n  a: {llm: local, prompt: hi}\noutputs: {a: '${{ steps.a.output }}'}\n"
        "tests:\n  - name: offline\n    snapshot: false\n"
        "    assert:\n      - {output: a, equals: 'echo: hi'}\n")
    done = plait("test", str(echo))
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_workflow_files_of_one_stem_do_not_share_snapshots(tmp_path: Path) -> None:
    text = ("version: 1\nname: {name}\nproviders:\n  local: {{kind: echo}}\n"
            "steps:\n  a: {{llm: local, prompt: '{name}'}}\n"
            "outputs: {{a: '${{{{ steps.a.output }}}}'}}\n"
            "tests:\n  - name: same\n")
    (tmp_path / "wf.yaml").write_text(text.format(name="first"))
    (tmp_path / "wf.yml").write_text(text.format(name="second"))
    done = plait("test", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "its snapshots would have the names of those of wf.yml" in done.stderr
    assert "hint: rename wf.yaml or wf.yml" in done.stderr
    assert not (tmp_path / "__plait_snapshots__").exists()  # neither wrote over the other


def test_a_case_that_could_not_run_is_counted_as_an_error_not_a_failure(tmp_path: Path
                                                                        ) -> None:
    """The summary said "1 passed, 2 failed" when one of the two had failed its assertion
    and the other could not run at all (its cassette was missing): two things to fix in two
    ways. Errors are counted apart; the exit code is 1 for either (docs/testing.md)."""
    (tmp_path / "cases.yaml").write_text(
        "version: 1\nname: cases\nproviders:\n  local: {kind: echo}\n"
        "steps:\n  a: {llm: local, prompt: hi}\noutputs: {a: '${{ steps.a.output }}'}\n"
        "tests:\n"
        "  - name: good\n    snapshot: false\n"
        "    assert:\n      - {output: a, equals: 'echo: hi'}\n"
        "  - name: wrong\n    snapshot: false\n"
        "    assert:\n      - {output: a, equals: 'bye'}\n"
        "  - name: untaped\n    snapshot: false\n    cassette: cassettes/none\n")
    junit = tmp_path / "junit.xml"
    done = plait("test", str(tmp_path), "--junit", str(junit))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR   " in done.stdout and "cases.yaml::untaped" in done.stdout, done.stdout
    assert done.stdout.splitlines()[-1] == (
        "1 passed, 1 failed, 1 error, 3 cases in 1 workflow file"), done.stdout
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    by_name = {c.get("name"): c for c in suite.iter("testcase")}
    assert by_name["untaped"].find("error") is not None
    assert by_name["untaped"].find("failure") is None
    assert by_name["wrong"].find("failure") is not None
    # only errors: exit 1 still, and no "0 failed" read as all clear
    (tmp_path / "cases.yaml").write_text(
        (tmp_path / "cases.yaml").read_text().split("  - name: good")[0]
        + "  - name: untaped\n    snapshot: false\n    cassette: cassettes/none\n")
    alone = plait("test", str(tmp_path))
    assert alone.returncode == 1, alone.stdout + alone.stderr
    assert alone.stdout.splitlines()[-1] == "0 passed, 0 failed, 1 error, 1 case in 1 " \
                                            "workflow file"
