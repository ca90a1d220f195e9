"""The CLI as a user meets it: real processes, exit codes, error formats."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = "version: 1\nname: ok\nproviders:\n  p: {kind: echo}\nsteps:\n  a:\n    llm: p\n" \
       "    prompt: 'hi ${{ inputs.who }}'\ninputs:\n  who: {type: string, default: you}\n" \
       "outputs:\n  reply: ${{ steps.a.output }}\n"
BAD = "version: 1\nname: bad\nsteps:\n  a:\n    run: ls\n    promt: x\n  b:\n    llm: nope\n" \
      "    prompt: x\n"


def plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def test_version_and_help(files: Path) -> None:
    assert plait("--version", cwd=files).stdout.startswith("plait ")
    out = plait("--help", cwd=files).stdout
    for command in ("validate", "graph", "run", "runs", "schema"):
        assert command in out


def test_validate_ok_and_errors_in_editor_format(files: Path) -> None:
    ok = plait("validate", "good.yaml", cwd=files)
    assert ok.returncode == 0 and ok.stdout.strip() == "good.yaml: ok (1 step)"
    bad = plait("validate", "good.yaml", "bad.yaml", cwd=files)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("bad.yaml:6:5: unknown key 'promt' at 'steps.a.promt' "
                               "(expected one of: ")
    assert lines[1] == "bad.yaml:8:10: unknown provider 'nope' at 'steps.b.llm' " \
                       "(no provider is defined)"


def test_validate_json_lists_every_error(files: Path) -> None:
    out = plait("validate", "--json", "bad.yaml", cwd=files)
    assert out.returncode == 2
    data = json.loads(out.stdout)
    assert data["valid"] is False
    assert [(e["line"], e["column"], e["code"]) for e in data["errors"]] == [
        (6, 5, "unknown_key"), (8, 10, "reference")]


def test_github_annotations(files: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "validate", "bad.yaml"],
                         cwd=files, capture_output=True, text=True, env=env, check=False)
    assert "::error file=bad.yaml,line=6,col=5::unknown key 'promt'" in out.stdout


def test_github_annotation_properties_are_escaped(files: Path) -> None:
    """`,` and `:` separate an annotation's properties: a file name holding them must be
    escaped (%2C, %3A) or GitHub puts the annotation on a file that does not exist."""
    (files / "a,b:c.yaml").write_text(BAD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GITHUB_ACTIONS": "true"}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "validate", "a,b:c.yaml"],
                         cwd=files, capture_output=True, text=True, env=env, check=False)
    assert "::error file=a%2Cb%3Ac.yaml,line=6,col=5::unknown key 'promt'" in out.stdout


@pytest.mark.parametrize("fmt", ["mermaid", "dot", "json"])
def test_graph_formats(files: Path, fmt: str) -> None:
    out = plait("graph", "good.yaml", "--format", fmt, cwd=files)
    assert out.returncode == 0
    if fmt == "json":
        assert [n["id"] for n in json.loads(out.stdout)["nodes"]] == ["a"]
    else:
        assert "a" in out.stdout


def test_graph_of_an_invalid_file_exits_2(files: Path) -> None:
    assert plait("graph", "bad.yaml", cwd=files).returncode == 2


def test_schema_prints_the_json_schema(files: Path) -> None:
    data = json.loads(plait("schema", cwd=files).stdout)
    assert data["title"] == "WorkflowSpec" and "steps" in data["properties"]


def test_run_json_stream_keeps_stdout_json_and_streams_to_stderr(files: Path) -> None:
    out = plait("run", "good.yaml", "-i", "who=me", "--json", "--stream", cwd=files)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi me"}
    assert "--- a ---\necho: hi me" in out.stderr
    # the streamed text ends its line before the step's progress line, not joined to it
    assert "echo: hi me\n[" in out.stderr, out.stderr
    plain = plait("run", "good.yaml", "-i", "who=me", "--stream", cwd=files)
    assert "--- a ---\necho: hi me" in plain.stdout


def test_run_json_result_and_exit_codes(files: Path) -> None:
    out = plait("run", "good.yaml", "-i", "who=me", "--json", cwd=files)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "succeeded"
    assert data["outputs"] == {"reply": "echo: hi me"}
    assert data["steps"]["a"]["status"] == "succeeded"
    assert data["steps"]["a"]["usage"]["input_tokens"] > 0
    unknown = plait("run", "good.yaml", "-i", "whom=me", cwd=files)
    assert unknown.returncode == 2 and "unknown input 'whom'" in unknown.stderr
    assert "did you mean 'who'?" in unknown.stderr
    assert plait("run", "bad.yaml", cwd=files).returncode == 2
    (files / "fail.yaml").write_text("version: 1\nname: f\npolicies:\n  o: {level: low}\n"
                                     "steps:\n  a: {run: 'exit 4', policy: o}\n")
    failed = plait("run", "fail.yaml", cwd=files)
    assert failed.returncode == 1 and "step a failed" in failed.stderr


def test_an_unwritable_record_dir(files: Path) -> None:
    """Refused before anything runs (exit 2); if it only fails at the end, the run is still
    reported (--json, --junit) and the exit code says the cassette was not saved."""
    (files / "w.yaml").write_text(
        "version: 1\nname: w\npolicies:\n  o: {level: low}\nproviders:\n  p: {kind: echo}\n"
        "steps:\n  a: {llm: p, prompt: hi}\n"
        "  b: {run: 'rm -rf tape && echo x > tape && echo ran > marker', policy: o,"
        " needs: [a]}\n")
    (files / "afile").write_text("x")
    refused = plait("run", "w.yaml", "--record", "afile", "--json", cwd=files)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "afile is a file, not a directory" in refused.stderr
    assert not (files / "marker").exists()
    late = plait("run", "w.yaml", "--record", "tape", "--json", "--junit", "j.xml", cwd=files)
    assert late.returncode == 1
    assert json.loads(late.stdout)["status"] == "succeeded"
    assert 'failures="0"' in (files / "j.xml").read_text()
    assert "succeeded, but its cassette was not saved" in late.stderr
    assert "tape is a file, not a directory" in late.stderr


NUMS = "version: 1\nname: nums\ninputs:\n  num: {type: number, default: 1}\n" \
       "  obj: {type: object, default: {}}\nproviders:\n  p: {kind: echo}\nsteps:\n" \
       "  a: {llm: p, prompt: hi}\noutputs:\n  all: ${{ inputs }}\n"


def test_inputs_json_cannot_hold_exit_2_naming_the_input(files: Path) -> None:
    (files / "nums.yaml").write_text(NUMS)
    big = plait("run", "nums.yaml", "-i", "num=1e400", "--json", cwd=files)
    assert big.returncode == 2 and big.stdout == ""
    assert big.stderr.startswith("error: input 'num' holds the number Infinity,")
    (files / "nan.json").write_text('{"obj": {"x": [NaN]}}')
    nan = plait("run", "nums.yaml", "--inputs", "nan.json", cwd=files)
    assert nan.returncode == 2
    assert nan.stderr.startswith("error: input 'obj' holds the number NaN at obj[\"x\"][0]")
    (files / "deep.json").write_text('{"obj": ' + "[" * 1000 + "]" * 1000 + "}")
    deep = plait("run", "nums.yaml", "--inputs", "deep.json", cwd=files)
    assert deep.returncode == 2 and "Traceback" not in deep.stderr
    assert deep.stderr.startswith("error: cannot read inputs file deep.json: it is nested "
                                  "too deeply")
    deep_text = plait("run", "nums.yaml", "-i", "obj=" + "[" * 1000 + "]" * 1000, cwd=files)
    assert deep_text.returncode == 2 and "Traceback" not in deep_text.stderr
    assert deep_text.stderr.startswith("error: input 'obj' is nested too deeply")


def test_a_failed_step_prints_where_and_how_to_fix_it(files: Path) -> None:
    (files / "fe.yaml").write_text("version: 1\nname: fe\nproviders:\n  p: {kind: echo}\n"
                                   "inputs:\n  s: {type: string, default: abc}\n"
                                   "steps:\n  a:\n    foreach: ${{ inputs.s | trim }}\n"
                                   "    llm: p\n"
                                   "    prompt: ${{ item }}\n")
    out = plait("run", "fe.yaml", cwd=files)
    assert out.returncode == 1
    assert ("step a failed: fe.yaml:9:14: step 'a': foreach needs a list, got string \"abc\" "
            "(hint: make the foreach expression return a list; a mapping is iterated as "
            "[key, value] pairs)") in out.stderr.splitlines()


def test_a_resumed_run_stamps_restored_steps_at_its_start_not_before(files: Path) -> None:
    """Every line of a run's log is stamped from that run's start; a restored step is
    restored when the resume starts, however long ago it first finished."""
    (files / "r.yaml").write_text("version: 1\nname: r\nproviders:\n  p: {kind: echo}\n"
                                  "steps:\n  a: {llm: p, prompt: x}\n"
                                  "  b: {needs: [a], run: [test, -f, ok.flag]}\n")
    assert plait("run", "r.yaml", cwd=files).returncode == 1
    run_id = json.loads(plait("runs", "list", "--json", cwd=files).stdout)[0]["run_id"]
    (files / "ok.flag").write_text("")
    resumed = plait("resume", run_id, cwd=files)
    assert resumed.returncode == 0, resumed.stderr
    restored = [line for line in resumed.stderr.splitlines() if "a: restored" in line]
    assert len(restored) == 1
    assert float(restored[0][1:].split("s]", 1)[0]) >= 0, resumed.stderr


def test_plain_progress_lines_without_a_tty(files: Path) -> None:
    out = plait("run", "good.yaml", cwd=files)
    assert out.returncode == 0
    assert "a: started (llm)" in out.stderr and "run succeeded" in out.stderr
    assert "reply: echo: hi you" in out.stdout


def test_dry_run_runs_nothing(files: Path) -> None:
    out = plait("run", "good.yaml", "--dry-run", cwd=files)
    assert out.returncode == 0 and "1 step in 1 layer" in out.stdout
    assert not (files / ".plait").exists()


def test_runs_list_and_show(files: Path) -> None:
    run = json.loads(plait("run", "good.yaml", "--json", cwd=files).stdout)
    listing = plait("runs", "list", "--workflow", "good.yaml", cwd=files)
    assert run["run_id"] in listing.stdout
    shown = plait("runs", "show", run["run_id"][:8], "--workflow", "good.yaml", cwd=files)
    assert shown.returncode == 0 and "succeeded" in shown.stdout
    missing = plait("runs", "show", "nosuchrun", "--workflow", "good.yaml", cwd=files)
    assert missing.returncode == 2


def test_follow_up_hints_run_as_printed_from_where_the_run_started(files: Path) -> None:
    (files / "sub").mkdir()
    failing = ("version: 1\nname: f\npolicies:\n  o: {level: low}\nsteps:\n  a: {run: "
               "'exit 4', policy: o}\n")
    (files / "sub" / "fail.yaml").write_text(failing)
    failed = plait("run", "sub/fail.yaml", cwd=files)
    assert failed.returncode == 1
    inspect, resume = failed.stderr.strip().splitlines()[-2:]
    assert inspect.startswith("run ") and "; inspect with: plait runs show " in inspect
    command = shlex.split(inspect.split("inspect with: plait ", 1)[1])
    shown = plait(*command, cwd=files)
    assert shown.returncode == 0, shown.stderr
    assert "failed" in shown.stdout and "exited with code 4" in shown.stdout
    # a failed run can be resumed (its failed steps run again): the last line says how
    assert resume.startswith("once its cause is fixed, rerun only what did not succeed with: "
                             "plait resume ")
    (files / "sub" / "fail.yaml").write_text(failing.replace("exit 4", "exit 0"))  # fixed
    resumed = plait(*shlex.split(resume.split(" with: plait ", 1)[1]), cwd=files)
    assert resumed.returncode == 0, resumed.stderr
    runs = json.loads(plait("runs", "list", "--json", "--workflow", "sub/fail.yaml",
                            cwd=files).stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(command[2], "succeeded")]
    (files / "sub" / "fail.yaml").write_text(failing)
    unrecorded = plait("run", "sub/fail.yaml", "--no-record", cwd=files)
    assert unrecorded.returncode == 1 and "runs show" not in unrecorded.stderr
    assert "plait resume" not in unrecorded.stderr
    assert unrecorded.stderr.strip().splitlines()[-1].endswith(" failed (not recorded)")
    here = plait("run", "fail.yaml", cwd=files / "sub")  # beside the database: no option
    run_id = json.loads(plait("runs", "list", "--json", cwd=files / "sub").stdout)[0]["run_id"]
    assert here.stderr.strip().splitlines()[-2].endswith(f"inspect with: plait runs show "
                                                         f"{run_id}")
    assert here.stderr.strip().splitlines()[-1].endswith(f"with: plait resume {run_id}")


@pytest.mark.parametrize("command", [("runs", "list"), ("runs", "show", "x"), ("resume", "x"),
                                     ("runs", "report", "x", "--html", "r.html")])
def test_reading_commands_do_not_create_a_database(files: Path, command: tuple[str, ...]
                                                   ) -> None:
    out = plait(*command, cwd=files)
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: there is no run record database at "
                                 f"{files.resolve()}/.plait/runs.db (hint: ")
    assert "--state PATH" in out.stderr
    assert ("plait resume --file FILE" if command[0] == "resume" else "--workflow FILE"
            ) in out.stderr  # the option each command has to find the database
    assert not (files / ".plait").exists()


def test_runs_list_filters_by_status_as_shown_and_checks_its_options(files: Path) -> None:
    from engine.state import RunRecord, RunStore, new_run_id, owner_meta

    with RunStore.open(files / "runs.db") as store:
        for status, meta in [("succeeded", {}),
                             ("running", {"owner": {**owner_meta(), "host": "gone-host"}})]:
            store.create_run(RunRecord(run_id=new_run_id(), workflow_name="w",
                                       workflow_path="/w.yaml", spec_hash="s", inputs={},
                                       status="running", started_at=1.0, meta=meta))
            if status == "succeeded":
                store.finish_run(store.list_runs()[0].run_id, status="succeeded",
                                 finished_at=2.0, outputs={}, error=None, usage={}, cost=0)
        ok, died = sorted(store.list_runs(), key=lambda r: r.status, reverse=True)

    def listing(*args: str) -> subprocess.CompletedProcess[str]:
        return plait("runs", "list", "--state", "runs.db", *args, cwd=files)

    for status in ("died", "DIED", "Died"):
        out = listing("--status", status)
        assert out.returncode == 0 and f"{died.run_id}  died" in out.stdout
        assert ok.run_id not in out.stdout
    assert f"{ok.run_id}  succeeded" in listing("--status", "Succeeded").stdout
    [dead] = json.loads(listing("--status", "died", "--json").stdout)
    # the stored status, and the one the table shows (a script can tell a dead run apart)
    assert (dead["run_id"], dead["status"], dead["shown_status"]) == \
        (died.run_id, "running", "died")
    shown = json.loads(plait("runs", "show", died.run_id, "--state", "runs.db", "--json",
                             cwd=files).stdout)
    assert shown["shown_status"] == "died"
    none = listing("--status", "running")
    assert none.returncode == 0
    assert none.stdout.startswith("no runs match --status running")
    assert json.loads(listing("--status", "failed", "--json").stdout) == []
    bogus = listing("--status", "bogus")
    assert bogus.returncode == 2 and "'bogus' is not one of 'running', 'died'," in bogus.stderr
    for limit in ("0", "-1"):
        bad = listing("--limit", limit)
        assert bad.returncode == 2 and "is not in the range x>=1" in bad.stderr
    table, _, older = listing("--limit", "1").stdout.strip().partition("\n\n")
    assert len(table.splitlines()) == 2  # header + 1 run
    assert older.startswith("older runs are not shown")


def test_providers_check_names_a_missing_key(files: Path) -> None:
    (files / "keyed.yaml").write_text(
        "version: 1\nname: k\nproviders:\n  main: {kind: anthropic, model: claude-x}\n"
        "steps:\n  a: {llm: main, prompt: hi}\n")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "providers", "check",
                          "keyed.yaml"], cwd=files, capture_output=True, text=True, env=env,
                         check=False)
    assert out.returncode == 2
    assert "ANTHROPIC_API_KEY" in out.stderr
    ok = plait("providers", "check", "good.yaml", cwd=files)
    assert ok.returncode == 0 and ok.stdout.strip() == "p: echo: ok"
    run = subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "keyed.yaml"],
                         cwd=files, capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 2 and "ANTHROPIC_API_KEY" in run.stderr
    assert not (files / ".plait").exists() or "a: started" not in run.stderr


def test_providers_check_lists_every_problem_as_lines_or_json(files: Path) -> None:
    (files / "two.yaml").write_text(
        "version: 1\nname: k\nproviders:\n  main: {kind: anthropic, model: claude-x}\n"
        "  other: {kind: google, model: gemini-x}\n"
        "steps:\n  a: {llm: main, prompt: hi}\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runners.cli.main", "providers", "check",
                               *args], cwd=files, capture_output=True, text=True, env=env,
                              check=False)
    text = check("two.yaml")
    assert text.returncode == 2
    lines = text.stderr.strip().splitlines()
    assert len(lines) == 2 and "ANTHROPIC_API_KEY" in lines[0] and "GEMINI_API_KEY" in lines[1]
    data = check("two.yaml", "--json")
    assert data.returncode == 2
    problems = json.loads(data.stdout)["problems"]
    assert [p.split(":")[0] for p in problems] == [line.removeprefix("error: ").split(":")[0]
                                                    for line in lines]
    spec = check("bad.yaml", "--json")
    assert spec.returncode == 2
    assert json.loads(spec.stdout)["problems"][0].startswith("bad.yaml:6:5: unknown key")


def test_providers_check_live_says_why_a_provider_is_unhealthy(files: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (files / "dead.yaml").write_text(
        "version: 1\nname: d\nproviders:\n  dead: {kind: openai, model: m, api_key: k,\n"
        f"    base_url: 'http://127.0.0.1:{port}/v1', timeout: 5}}\n"
        "  p: {kind: echo}\nsteps:\n  a: {llm: p, prompt: hi}\n")
    text = plait("providers", "check", "--live", "dead.yaml", cwd=files)
    assert text.returncode == 1
    dead = next(line for line in text.stdout.splitlines() if line.startswith("dead:"))
    assert "ok UNHEALTHY: " in dead and "connect" in dead.lower()
    rows = json.loads(plait("providers", "check", "--live", "--json", "dead.yaml",
                            cwd=files).stdout)
    by_name = {row["name"]: row for row in rows}
    assert by_name["dead"]["healthy"] is False and by_name["dead"]["error"]
    assert by_name["p"]["healthy"] is True and "error" not in by_name["p"]


def test_providers_check_names_every_missing_setting_of_a_provider_at_once(files: Path
                                                                           ) -> None:
    """An Azure OpenAI provider without endpoint and api_version was refused for its endpoint;
    once that was set, for its api_version; then for its key: one round trip per setting."""
    (files / "az.yaml").write_text(
        "version: 1\nname: k\nproviders:\n  az: {kind: azure_openai, deployment: d}\n"
        "  g: {kind: google, vertex: true}\n  one: {kind: anthropic, model: claude-x}\n"
        "steps:\n  a: {llm: az, prompt: hi}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AZURE_OPENAI_", "OPENAI_", "ANTHROPIC_", "GOOGLE_", "GEMINI_"))}
    env["PYTHONPATH"] = str(ROOT)

    def check(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "runners.cli.main", "providers", "check",
                               "az.yaml", *args], cwd=files, capture_output=True, text=True,
                              env={**env, **more}, check=False, timeout=60)

    out = check()
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "error: provider 'az' (azure_openai) needs `endpoint`, `api_version` and an API key "
        "(AZURE_OPENAI_API_KEY is not set) (hint: set endpoint: "
        "https://<resource>.openai.azure.com or AZURE_OPENAI_ENDPOINT; set api_version (e.g. "
        "2024-10-21) or OPENAI_API_VERSION; export AZURE_OPENAI_API_KEY=... or set api_key: "
        "${{ secrets.NAME }} on the provider)",
        "error: provider 'g' (google, vertex) needs `project` and `model` (hint: set project: "
        "and location: (or GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION), or an api_key for "
        "Vertex express mode; set model: on the provider (or on each llm step))",
        "error: provider 'one' (anthropic) has no API key: ANTHROPIC_API_KEY is not set (hint: "
        "export ANTHROPIC_API_KEY=... or set api_key: ${{ secrets.NAME }} on the provider)"]
    problems = json.loads(check("--json").stdout)["problems"]
    assert problems == [line.removeprefix("error: ") for line in out.stderr.splitlines()]
    # what is set from the environment is not asked for
    fewer = check(AZURE_OPENAI_ENDPOINT="https://r.openai.azure.com",
                  AZURE_OPENAI_API_KEY="k", GOOGLE_CLOUD_PROJECT="p")
    assert fewer.stderr.splitlines()[:2] == [
        "error: provider 'az' (azure_openai) needs `api_version` (hint: set api_version (e.g. "
        "2024-10-21) or OPENAI_API_VERSION)",
        "error: provider 'g' (google) has no `model` (hint: set model: on the provider (or on "
        "each llm step))"]


def under_a_terminal(cwd: Path, *args: str, stdout: Path | None = None) -> tuple[int, str]:
    """Run plait with a pseudo-terminal as stderr (and stdout, unless `stdout` names a file
    to send it to): its exit code and what the terminal received, escapes removed."""
    import pty
    import re
    import select

    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "TERM": "xterm"}
    pid, fd = pty.fork()
    if pid == 0:  # the child: plait with the pty as its terminal
        os.chdir(cwd)
        if stdout is not None:
            out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
        os.execve(sys.executable, [sys.executable, "-m", "runners.cli.main", *args], env)
    chunks = []
    try:
        for _ in range(10_000):
            ready, _, _ = select.select([fd], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode(errors="replace"))
    return os.waitstatus_to_exitcode(status), screen.replace("\r", "")


def test_a_terminal_gets_a_live_table(files: Path) -> None:
    """Run under a pseudo-terminal: the live view draws a table with every step."""
    import re

    code, screen = under_a_terminal(files, "run", "good.yaml")
    assert code == 0
    assert re.search(r"┃ step\s*┃ state\s*┃ time\s*┃ tries\s*┃ note\s*┃", screen), screen
    assert re.search(r"│ a\s*│ succeeded │", screen), screen
    assert "reply: echo: hi you" in screen


def test_the_live_table_shows_brackets_in_an_error_as_they_are(files: Path) -> None:
    """A step's error is not rich markup: `[/oops]` crashed the live view (MarkupError)
    and `[bold]` would have been obeyed."""
    (files / "markup.yaml").write_text(
        "version: 1\nname: markup\npolicies:\n  o: {level: low}\nsteps:\n  a:\n"
        "    run: echo '[/oops] [bold]x' >&2; exit 1\n    policy: o\n")
    code, screen = under_a_terminal(files, "run", "markup.yaml", "--no-record")
    assert code == 1, screen
    assert "MarkupError" not in screen and "Traceback" not in screen, screen
    assert "[/oops] [bold]x" in screen, screen


def test_batch_runs_one_workflow_per_row(files: Path) -> None:
    (files / "rows.jsonl").write_text('{"who": "ada"}\n\n{"who": "bob"}\n{"whom": "x"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=files)
    assert out.returncode == 1, out.stderr  # the third row has an unknown input
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["line"], r["status"]) for r in lines] == [
        (1, "succeeded"), (3, "succeeded"), (4, "error")]
    assert lines[1]["outputs"] == {"reply": "echo: hi bob"}
    assert "unknown input 'whom'" in lines[2]["error"]["message"]
    assert set(lines[2]) == set(lines[0])  # every row has the same fields
    assert "2 of 3 runs succeeded" in out.stderr
    (files / "bad.jsonl").write_text('{"who": "ada"}\n[1]\n')
    bad = plait("batch", "good.yaml", "--inputs", "bad.jsonl", cwd=files)
    assert bad.returncode == 2 and "bad.jsonl:2: each line must be a JSON object" in bad.stderr
    (files / "deep.jsonl").write_text('{"who": "ada"}\n{"who": ' + "[" * 1000 + "]" * 1000
                                      + "}\n")
    deep = plait("batch", "good.yaml", "--inputs", "deep.jsonl", cwd=files)
    assert deep.returncode == 2 and "Traceback" not in deep.stderr
    assert "deep.jsonl:2: nested too deeply to read" in deep.stderr


def test_batch_on_ray(files: Path) -> None:
    """The same batch on a local Ray runtime (tasks in Ray worker processes)."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    (files / "rows.jsonl").write_text('{"who": "ada"}\n{"who": "bob"}\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DISABLE_USAGE_STATS": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "HOME": str(files)}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "batch", "good.yaml",
                          "--inputs", "rows.jsonl", "--executor", "ray"], cwd=files,
                         capture_output=True, text=True, timeout=120, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["outputs"] for r in lines] == [{"reply": "echo: hi ada"},
                                           {"reply": "echo: hi bob"}]


def test_batch_starts_each_mcp_server_once(files: Path) -> None:
    from tests.pid_workflow import write_pid_workflow

    write_pid_workflow(files / "pids.yaml", inputs="inputs:\n  n: {type: integer}\n")
    (files / "rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(4)))
    out = plait("batch", "pids.yaml", "--inputs", "rows.jsonl", "--concurrency", "2", cwd=files)
    assert out.returncode == 0, out.stderr
    pids = {json.loads(line)["outputs"]["pid"] for line in out.stdout.splitlines()}
    assert len(pids) == 1  # one server process answered every row


def test_replay_missing_without_replay_is_a_usage_error(files: Path) -> None:
    out = plait("run", "good.yaml", "-i", "who=ada", "--replay-missing=live", cwd=files)
    assert out.returncode == 2 and out.stdout == ""
    assert "--replay-missing=live only applies to a run with --replay DIR" in out.stderr


def test_terminal_control_sequences_in_step_output_are_shown_not_obeyed(files: Path) -> None:
    """A failing command's stderr is untrusted: escape sequences in it (set the title, clear
    the screen, write the clipboard with OSC 52, `\\r` to overwrite a line) must reach the
    terminal as visible text from `plait run` and `plait runs show`."""
    (files / "esc.yaml").write_text(
        "version: 1\nname: esc\npolicies:\n  o: {level: low}\nsteps:\n  a:\n    run: |-\n"
        "      printf '\\033]52;c;cGF5bG9hZA==\\007\\033[2J\\rhidden\\302\\233' >&2; exit 1\n"
        "    policy: o\n")
    ran = plait("run", "esc.yaml", "--state", "runs.db", cwd=files)
    assert ran.returncode == 1
    shown = plait("runs", "show", ran.stderr.split("plait runs show ")[-1].split()[0],
                  "--state", "runs.db", cwd=files)
    assert shown.returncode == 0, shown.stderr
    for text in (ran.stderr, shown.stdout):
        assert not set(text) & {"\x1b", "\x07", "\r", "\x9b"}, text
        assert r"\x1b]52;c;cGF5bG9hZA==\x07" in text and r"\rhidden\x9b" in text, text


def test_streamed_foreach_items_each_get_their_own_block(files: Path) -> None:
    """The items of a streamed foreach step said nothing of which item wrote what: their texts
    ran straight into each other."""
    (files / "st.yaml").write_text(
        "version: 1\nname: st\nproviders:\n  m: {kind: echo}\nsteps:\n  each:\n"
        "    foreach: ${{ ['alpha beta', 'one two'] }}\n    llm: m\n"
        "    prompt: say ${{ item }}\n    stream: true\n")
    out = plait("run", "st.yaml", "--no-record", "--stream", cwd=files)
    assert out.returncode == 0, out.stderr
    texts: dict[str, str] = {}  # items may take turns: each turn is a block with its name
    for block in out.stdout.split("\n--- ")[1:]:
        name, _, text = block.partition(" ---\n")
        texts[name] = texts.get(name, "") + text
    assert {name: text.strip() for name, text in texts.items()} == {
        "each[0]": "echo: say alpha beta", "each[1]": "echo: say one two"}
