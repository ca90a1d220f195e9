"""--junit for `plait run`, GitHub annotations and the job summary."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from runners.gh_text import inert
from runners.reporters import JUnitCase, write_junit
from tests.reporters.conftest import ROOT, WORKFLOW, plait


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line == needle)


def test_junit_one_testcase_per_step(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--no-record", "--junit", "reports/junit.xml",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    root = ET.parse(tmp_path / "reports" / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "1", "1")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert list(cases) == ["fetch", "think", "never", "broken", "after"]
    assert all(c.get("classname") == "mixed" for c in cases.values())
    failure = cases["broken"].find("failure")
    assert failure is not None and "exited with code 4" in failure.get("message", "")
    assert "went wrong" in (failure.text or "")
    assert cases["broken"].get("line") == str(_line_of(WORKFLOW, "  broken:"))
    assert cases["broken"].get("file") == "wf.yaml"
    skipped = cases["never"].find("skipped")
    assert skipped is not None and skipped.get("message") == "condition was false"
    out_text = cases["think"].findtext("system-out") or ""
    assert out_text.startswith("status: succeeded, attempts: 1, tokens: input_tokens=")
    assert "echo: about <script>" in out_text  # escaped by the XML writer, intact when parsed
    assert float(cases["think"].get("time", "-1")) >= 0


def test_write_junit_for_other_runners(tmp_path: Path) -> None:
    cases = [JUnitCase("quiet-day", "digest", "passed", 0.25, stdout="ok"),
             JUnitCase("loud-day", "digest", "failed", 1.5, message="snapshot differs",
                       details="- a\n+ b\x00"),
             JUnitCase("later", "digest", "skipped", message="no cassette"),
             JUnitCase("crashed", "digest", "error", message="cassette is corrupt")]
    path = tmp_path / "out.xml"
    write_junit(cases, path, suite="plait test")
    root = ET.parse(path).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors"),
            root.get("skipped")) == ("4", "1", "1", "1")
    by_name = {c.get("name"): c for c in root.iter("testcase")}
    failure = by_name["loud-day"].find("failure")
    assert failure is not None and failure.text == "- a\n+ b\N{REPLACEMENT CHARACTER}"
    assert by_name["crashed"].find("error") is not None
    assert not list(tmp_path.glob("*.tmp"))


def test_github_annotations_and_summary(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    errors = [line for line in out.stdout.splitlines() if line.startswith("::error ")]
    line = _line_of(WORKFLOW, "  broken:")
    assert errors == [f"::error file=wf.yaml,line={line},title=plait%3A step broken failed::"
                      "command 'echo \"went wrong\" >&2; exit 4' exited with code 4: "
                      "went wrong"]
    text = summary.read_text()
    assert text.startswith("# earlier step\n### ✅ plait run `mixed`: succeeded")
    assert "| Step | Status | Duration | Attempts | Tokens (in/out) | Cost |" in text
    rows = [r for r in text.splitlines() if r.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`fetch`", "`think`", "`never`",
                                                       "`broken`", "`after`"]
    assert "❌ failed" in rows[3] and "⏭️ skipped" in rows[2]
    assert "<script>" not in text


def test_annotations_go_to_stderr_with_json(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--no-record", "--json", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true"})
    assert json.loads(out.stdout)["status"] == "succeeded"
    assert "::error file=wf.yaml" in out.stderr


SIMPLE = "version: 1\nname: ok\nproviders:\n  p: {kind: echo}\nsteps:\n  a: {llm: p, prompt: hi}\n"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--junit", "afile/j.xml", "cannot write the JUnit report to afile/j.xml: afile is a file, "
                               "not a directory"),
    ("--junit", "adir", "cannot write the JUnit report to adir: it is a directory"),
    ("--trace-file", "adir", "cannot write the trace file to adir: it is a directory"),
    ("--trace-file", "afile/t.jsonl", "cannot write the trace file to afile/t.jsonl: afile is "
                                      "a file, not a directory"),
    ("--otlp", "http://[::1", "--otlp 'http://[::1' is not a valid URL: Invalid IPv6 URL"),
    ("--otlp", "localhost:4318", "--otlp 'localhost:4318' is not an http:// or https:// URL"),
])
def test_a_report_target_that_cannot_work_fails_before_the_run(
        tmp_path: Path, option: str, value: str, message: str) -> None:
    (tmp_path / "wf.yaml").write_text(SIMPLE)
    (tmp_path / "afile").write_text("a file, not a directory")
    (tmp_path / "adir").mkdir()
    # tracing on (the suite turns it off); every case fails before anything is exported
    out = plait("run", "wf.yaml", option, value, cwd=tmp_path, env={"OTEL_SDK_DISABLED": ""})
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: {message}") and "(hint: " in out.stderr
    assert len(out.stderr.splitlines()) == 1 and out.stdout == ""
    assert not (tmp_path / ".plait").exists()  # nothing ran, nothing recorded


def test_a_report_that_cannot_be_written_after_the_run_keeps_its_exit_code(
        tmp_path: Path) -> None:
    """The JUnit directory is turned into a file by the run itself, and the job summary's
    directory does not exist: both are said on stderr, and the run still exits 0."""
    reports = tmp_path / "reports"
    reports.mkdir()
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: ok\npolicies:\n  o: {level: low}\nsteps:\n"
        f"  a: {{run: 'rm -r {reports} && touch {reports}', policy: o}}\n")
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "no" / "s.md")}
    out = plait("run", "wf.yaml", "--junit", "reports/j.xml", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "error: cannot write the JUnit report reports/j.xml: " in out.stderr
    assert (f"warning: cannot append the job summary to $GITHUB_STEP_SUMMARY "
            f"({tmp_path / 'no' / 's.md'}): No such file or directory; the run itself is not "
            "affected") in out.stderr


def test_reports_are_readable_like_any_file_the_user_writes(tmp_path: Path) -> None:
    """A CI artefact uploader (often another user) must be able to read the reports."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS",)}
    env["PYTHONPATH"] = str(ROOT)
    cli = [sys.executable, "-m", "runners.cli.main"]
    ran = subprocess.run([*cli, "run", "wf.yaml", "--junit", "out/junit.xml"], cwd=tmp_path,
                         env=env, umask=0o022, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(plait("runs", "list", "--json", cwd=tmp_path).stdout)[0]["run_id"]
    made = subprocess.run([*cli, "runs", "report", run_id, "--html", "out/run.html"],
                          cwd=tmp_path, env=env, umask=0o022, capture_output=True, text=True,
                          timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    for name in ("junit.xml", "run.html"):
        assert stat.S_IMODE((tmp_path / "out" / name).stat().st_mode) == 0o644, name


def test_job_summary_lines_stay_whole_whatever_the_error_holds(tmp_path: Path) -> None:
    """A carriage return is a line break in Markdown: left in, it would cut the error's list
    item (or a table row) in two."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: crlf\npolicies:\n  o: {level: low}\nsteps:\n"
        "  a:\n    run: printf 'one | two\\r\\nthree\\rfour' >&2; exit 1\n    policy: o\n")
    summary = tmp_path / "summary.md"
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert out.returncode == 1, out.stderr
    with summary.open(encoding="utf-8", newline="") as handle:
        text = handle.read()
    assert "\r" not in text
    errors = [line for line in text.split("\n") if line.startswith("- `a`: ")]
    assert len(errors) == 1 and errors[0].endswith(r"one \| two"), text
    # the lines after the first, as they are, in a code block of that item
    assert "\n\n  ```\n  three\n  four\n  ```\n" in text, text


def _workflow_commands(log: str) -> list[str]:
    """The lines GitHub's runner would take as workflow commands: `::` at the start of a line
    (after leading spaces), or the legacy `##[` anywhere in it; lines end at \\n, \\r\\n or
    \\r; nothing counts between `::stop-commands::TOKEN` and `::TOKEN::`."""
    found, stopped = [], None
    for line in re.split(r"\r\n|\r|\n", log):
        text = line.lstrip()
        if stopped is not None:
            stopped = None if text == f"::{stopped}::" else stopped
        elif text.startswith("::stop-commands::"):
            stopped = text.removeprefix("::stop-commands::")
        elif text.startswith("::") or "##[" in line:
            found.append(line)
    return found


def test_step_output_cannot_issue_workflow_commands(tmp_path: Path) -> None:
    """Model and tool output is untrusted: printed by plait in a GitHub job it must not
    raise annotations, mask values or stop plait's own annotations."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: inject\npolicies:\n  o: {level: low}\ndefaults: {policy: o}\n"
        "steps:\n"
        "  talk:\n    run: printf 'ok\\n::error::from stdout\\n'\n"
        "  bad:\n    run: |-\n"
        "      printf 'x\\n::stop-commands::t\\r::warning::w\\n  ##[error]legacy' >&2; exit 1\n"
        "    continue_on_error: true\n"
        "outputs:\n  said: ${{ steps.talk.output.stdout }}\n")
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 0, out.stderr
    assert "::error::from stdout" in out.stdout and "legacy" in out.stderr  # still shown
    assert _workflow_commands(out.stderr) == []
    [annotation] = _workflow_commands(out.stdout)
    # text that no runner would take for a command is printed as it is, unwrapped
    gha = {"GITHUB_ACTIONS": "true"}
    assert inert("listening on ::1, std::move", gha) == "listening on ::1, std::move"
    assert inert("ok\r  ::warning::x", gha).startswith("::stop-commands::")
    assert annotation.startswith("::error file=wf.yaml,line=9,title=plait%3A step bad failed::")


BAD_OUTPUT = """\
version: 1
name: outs
providers:
  p: {kind: echo, model: echo-1}
steps:
  a: {llm: p, prompt: hi}
outputs:
  bad: ${{ steps.a.output.nope }}
"""


def test_a_run_that_fails_with_no_failed_step_is_reported_as_failed(tmp_path: Path) -> None:
    """Every step succeeded but an output could not be evaluated: the run failed (exit 1),
    and JUnit, the annotations and the job summary must say so, not show all green."""
    (tmp_path / "wf.yaml").write_text(BAD_OUTPUT)
    summary = tmp_path / "summary.md"
    out = plait("run", "wf.yaml", "--no-record", "--junit", "j.xml", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert out.returncode == 1, out.stderr
    root = ET.parse(tmp_path / "j.xml").getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    run_case = root.find("testsuite/testcase[@name='(run)']")
    assert run_case is not None
    failure = run_case.find("failure")
    assert failure is not None and "output 'bad'" in failure.get("message", "")
    errors = [line for line in out.stdout.splitlines() if line.startswith("::error ")]
    assert errors == ["::error file=wf.yaml,line=8,title=plait%3A run outs failed::"
                      "wf.yaml:8:8: output 'bad': expression ${{ steps.a.output.nope }} failed: "
                      "a string value has no attribute or key 'nope'"]
    text = summary.read_text()
    assert "**Errors**" in text and "- run: wf.yaml:8:8: output 'bad'" in text


def test_junit_stays_valid_xml_with_undecodable_input(tmp_path: Path) -> None:
    """A byte that is not UTF-8 in an argument reaches Python as a lone surrogate; written
    as `&#56575;` it would make the whole report unparseable for the CI. Such an input is
    refused before the run (exit 2); the writer still never writes one."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: sur\ninputs:\n  who: {type: string}\nproviders:\n"
        "  p: {kind: echo}\nsteps:\n  a: {llm: p, prompt: 'hi ${{ inputs.who }}'}\n")
    out = plait("run", "wf.yaml", "--no-record", "-i", "who=x\udcffy", "--junit",
                "reports/j.xml", cwd=tmp_path)
    assert out.returncode == 2 and "input 'who' holds text that is not valid UTF-8" in \
        out.stderr
    write_junit([JUnitCase("c\ud800", "w", "failed", message="m\udcff", file="f\udcff.yaml")],
                tmp_path / "direct.xml", suite="s\udfff")
    assert ET.parse(tmp_path / "direct.xml").getroot().get("name") == \
        "s\N{REPLACEMENT CHARACTER}"


def test_annotations_name_the_file_from_the_repository_root(tmp_path: Path) -> None:
    """A job step with `working-directory: flows` runs plait in a subdirectory: GitHub places
    annotations by the path from the workspace root, so `wf.yaml` would match no file."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--no-record", cwd=flows,
                env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    errors = [line for line in out.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1 and errors[0].startswith("::error file=flows/wf.yaml,line=")
    (flows / "bad.yaml").write_text("version: 1\nname: bad\nsteps:\n  a: {runn: ls}\n")
    out = plait("validate", "bad.yaml", cwd=flows,
                env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)})
    # at the unknown key `runn` of step a (line 4, column 7)
    assert out.stdout.startswith("::error file=flows/bad.yaml,line=4,col=7::"), out.stdout


TESTED = """\
version: 1
name: tested
providers:
  p: {kind: echo, model: echo-1}
steps:
  a: {llm: p, prompt: "hi | there"}
outputs:
  text: ${{ steps.a.output }}
tests:
  - name: good
    snapshot: false
    assert:
      - {output: text, contains: "hi"}
  - name: bad
    snapshot: false
    assert:
      - {output: text, equals: "a, b: c\\n::warning::no | pipe"}
"""


def test_plait_test_annotates_failed_cases_and_writes_a_job_summary(tmp_path: Path) -> None:
    """`plait test` in GitHub Actions: an error annotation per failed case, at the case in
    the workflow file, and a job summary table of the cases (as `plait run` does for steps)."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "wf.yaml").write_text(TESTED)
    summary = tmp_path / "summary.md"
    out = plait("test", "wf.yaml", cwd=flows,
                env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path),
                     "GITHUB_STEP_SUMMARY": str(summary)})
    assert out.returncode == 1, out.stdout + out.stderr
    commands = _workflow_commands(out.stdout)
    errors = [c for c in commands if c.startswith("::error ")]
    line = _line_of(TESTED, "  - name: bad")
    assert errors == [
        f"::error file=flows/wf.yaml,line={line},title=plait test%3A tested%3A%3Abad failed::"
        "assert[0]: output 'text' is \"echo: hi | there\", expected "
        "\"a, b: c\\n::warning::no | pipe\""], commands
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("### ❌ plait test: 1 passed, 1 failed\n")
    assert "| `tested` | `good` | ✅ passed |" in text
    assert "| `tested` | `bad` | ❌ failed |" in text
    assert "output 'text' is \"echo: hi \\| there\"" in text
    for row in [r for r in text.splitlines() if r.startswith("| `tested`")]:
        assert row.count("|") - row.count("\\|") == 5, row  # 4 cells: no pipe splits one


def _refused(report: Path) -> ET.Element:
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("errors")) == ("1", "1")
    (case,) = suite.iter("testcase")
    return case


def test_a_run_refused_before_its_first_step_still_writes_its_junit_report(
        tmp_path: Path) -> None:
    """CI reads the report of every run: an invalid file, bad inputs or a missing secret
    leave one error case that says why nothing ran (not a missing file)."""
    good = ("version: 1\nname: refused\nproviders:\n  p: {kind: echo}\n"
            "steps:\n  a:\n    llm: p\n    prompt: hi\n")
    bad = good.replace("    prompt: hi\n", "    prompt: hi\n    temprature: 2\n")
    (tmp_path / "bad.yaml").write_text(bad)
    out = plait("run", "bad.yaml", "--junit", "r/bad.xml", cwd=tmp_path)
    assert out.returncode == 2
    case = _refused(tmp_path / "r" / "bad.xml")
    assert (case.get("name"), case.get("classname")) == ("(workflow file)", "bad")
    assert (case.get("file"), case.get("line")) == (
        "bad.yaml", str(_line_of(bad, "    temprature: 2")))
    error = case.find("error")
    assert error is not None and "temprature" in error.get("message", "")

    (tmp_path / "wf.yaml").write_text(good)
    out = plait("run", "wf.yaml", "-i", "nope=1", "--junit", "r/inputs.xml", cwd=tmp_path)
    assert out.returncode == 2
    case = _refused(tmp_path / "r" / "inputs.xml")
    assert (case.get("name"), case.get("file")) == ("(run refused)", "wf.yaml")
    assert "nope" in (case.findtext("error") or "")

    secret = good.replace("steps:", "secrets: [PLAIT_TEST_ABSENT_KEY]\nsteps:")
    (tmp_path / "secret.yaml").write_text(secret)
    out = plait("run", "secret.yaml", "--junit", "r/secret.xml", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 2, out.stderr
    case = _refused(tmp_path / "r" / "secret.xml")
    assert case.get("classname") == "refused" and "PLAIT_TEST_ABSENT_KEY" in (
        case.findtext("error") or "")
    (annotation,) = [line for line in out.stdout.splitlines() if line.startswith("::error")]
    assert annotation.startswith("::error file=secret.yaml,title=plait%3A run refused::")
    assert "PLAIT_TEST_ABSENT_KEY" in annotation


STREAMED = """\
version: 1
name: streamed
providers:
  p:
    kind: echo
    options: {reply: "fine\\n::error::from the model\\n  ::add-mask::x\\r::stop-commands::t\\nend"}
steps:
  talk: {llm: p, prompt: hi}
"""


@pytest.mark.parametrize("as_json", [False, True])
def test_streamed_model_output_cannot_issue_workflow_commands(tmp_path: Path,
                                                              as_json: bool) -> None:
    """`--stream` printed a model's text as it arrived, unchecked: in a GitHub job a reply
    line `::error::...` raised an annotation and `::add-mask::` masked a value (stdout, or
    stderr with --json). Commands are stopped while it streams, and resumed after."""
    (tmp_path / "wf.yaml").write_text(STREAMED)
    out = plait("run", "wf.yaml", "--no-record", "--stream", *(["--json"] if as_json else []),
                cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 0, out.stderr
    streamed = out.stderr if as_json else out.stdout
    # (text=True reads the \r as a line end)
    assert "::error::from the model\n  ::add-mask::x\n::stop-commands::t\nend" in streamed
    assert _workflow_commands(out.stdout) == [] and _workflow_commands(out.stderr) == []
    # commands are read again once the run is over (plait's own annotations)
    assert _workflow_commands(streamed + "::error::after\n") == ["::error::after"], streamed


def test_json_printed_in_a_github_job_cannot_issue_legacy_workflow_commands(
        tmp_path: Path) -> None:
    """GitHub's runner reads the legacy `##[` anywhere in a line: `plait run --json`, `plait
    runs show --json` and `--trace-console` printed a step's output in JSON strings as it
    was, so a model's `##[add-mask]...` or `##[error]...` was obeyed. They stay JSON, with
    the same values: `#` is written as its escape there."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: legacy\nproviders:\n"
        "  m: {kind: echo, options: {reply: \"a ##[add-mask]x\\nb ##[error]y\"}}\n"
        "steps:\n  talk: {llm: m, prompt: hi}\noutputs:\n  said: ${{ steps.talk.output }}\n")
    gha = {"GITHUB_ACTIONS": "true", "OTEL_SDK_DISABLED": "false"}
    out = plait("run", "wf.yaml", "--state", "runs.db", "--json", "--trace-console",
                "--trace-content", cwd=tmp_path, env=gha)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["outputs"]["said"] == "a ##[add-mask]x\nb ##[error]y"
    assert "#\\u0023[add-mask]" in out.stderr  # the spans hold the reply too
    shown = plait("runs", "show", result["run_id"], "--state", "runs.db", "--json",
                  cwd=tmp_path, env=gha)
    assert json.loads(shown.stdout)["outputs"] == result["outputs"]
    for text in (out.stdout, out.stderr, shown.stdout):
        assert _workflow_commands(text) == [], text


def test_an_error_quoting_a_given_value_cannot_issue_workflow_commands(
        tmp_path: Path) -> None:
    """An input's value can come from anywhere a CI job reads (a pull request's title, an
    issue's body): `error: input 'n' must be of type integer, got "##[add-mask]abc"` went to
    stderr as it was, and the runner obeyed the legacy `##[`."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: given\ninputs:\n  n: {type: integer}\n"
        "providers:\n  m: {kind: echo}\nsteps:\n  s: {llm: m, prompt: '${{ inputs.n }}'}\n")
    out = plait("run", "wf.yaml", "--no-record", "-i", "n=##[add-mask]abc", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 2, out.stderr
    assert 'got "##[add-mask]abc"' in out.stderr, out.stderr  # still said
    assert _workflow_commands(out.stderr) == [], out.stderr
    [annotation] = _workflow_commands(out.stdout)  # plait's own, which is read
    assert annotation.startswith("::error file=wf.yaml,title=plait%3A run refused::")


def test_control_characters_in_an_annotation_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A failed step's annotation quotes its error (a command's stderr) and is printed on
    stdout, a terminal when the job runs locally (act, GITHUB_ACTIONS=true by hand): its
    escape sequences went out raw, while the same error on stderr was escaped."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: esc\npolicies:\n  o: {level: low}\ndefaults: {policy: o}\n"
        "steps:\n  bad:\n    run: printf '\\033]52;c;cGF5bG9hZA==\\007\\302\\233' >&2; exit 1\n")
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path, env={"GITHUB_ACTIONS": "true"})
    assert out.returncode == 1, out.stderr
    [annotation] = _workflow_commands(out.stdout)
    assert not set(annotation) & {"\x1b", "\x07", "\x9b"}, repr(annotation)
    assert annotation.endswith(r"exited with code 1: \x1b]52;c;cGF5bG9hZA==\x07\x9b"), annotation
