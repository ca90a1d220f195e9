"""`plait run` as a demanding user meets it when a run does not simply succeed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.test_cli import plait, under_a_terminal

STOPPED = """\
version: 1
name: stopped
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  bad: {run: "sleep 0.3; exit 3"}
  slow: {run: "sleep 20"}
  after: {run: "echo after", needs: [bad]}
"""


def test_plain_lines_say_which_steps_a_failure_cancelled(tmp_path: Path) -> None:
    """The log ended at the failure: a step cancelled in flight, or never started, had no
    line at all (its last line said `started`)."""
    (tmp_path / "wf.yaml").write_text(STOPPED)
    done = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert re.search(r"\] slow: cancelled \(run stopped\)$", done.stderr, re.M), done.stderr
    assert re.search(r"\] after: cancelled \(run stopped\)$", done.stderr, re.M), done.stderr
    assert done.stderr.index("slow: cancelled") < done.stderr.index("run failed in")


def test_the_live_table_ends_with_the_cancelled_steps_cancelled(tmp_path: Path) -> None:
    """Its last frame showed them `running` and `waiting` after the run had ended."""
    (tmp_path / "wf.yaml").write_text(STOPPED)
    code, screen = under_a_terminal(tmp_path, "run", "wf.yaml", "--no-record")
    assert code == 1, screen
    last = screen[screen.rindex("┃ step"):]
    assert re.search(r"│ slow\s*│ cancelled │", last), last
    assert re.search(r"│ after\s*│ cancelled │", last), last
    assert "waiting" not in last and "running" not in last, last


def test_a_retried_foreach_item_is_named_in_the_plain_lines(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("""\
version: 1
name: items
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  f:
    foreach: ${{ ['a', 'b'] }}
    run: "test -f ${{ item }}.ok || { touch ${{ item }}.ok; exit 1; }"
    retry: {attempts: 2, initial: 0s, on: [command]}
""")
    (tmp_path / "a.ok").touch()  # only item 1 fails once
    done = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"\] f\[1\]: attempt 1 failed \(command: ", done.stderr), done.stderr


def test_resuming_a_run_whose_workflow_file_is_gone_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(STOPPED)
    failed = plait("run", "wf.yaml", "--json", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    import json

    run_id = json.loads(failed.stdout)["run_id"]
    (tmp_path / "wf.yaml").unlink()
    resumed = plait("resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 2
    assert f"run {run_id}'s workflow file {tmp_path / 'wf.yaml'} is gone" in resumed.stderr
    assert "--file" in resumed.stderr


def test_dry_run_with_resume_is_refused_not_ignored(tmp_path: Path) -> None:
    """--dry-run printed the plan of a fresh run and exited 0, even for a run id that does
    not exist: the --resume was silently dropped."""
    (tmp_path / "wf.yaml").write_text(STOPPED)
    done = plait("run", "wf.yaml", "--resume", "nosuchrun", "--dry-run", cwd=tmp_path)
    assert done.returncode == 2
    assert "--dry-run" in done.stderr and "--resume" in done.stderr
    assert done.stdout == ""


def _read_only_copy(tmp_path: Path, db: Path) -> Path:
    """`db` on a read-only file system (a tmpfs remounted read-only: root ignores
    permissions) or, for another user, in a directory without write permission."""
    import os
    import shutil
    import subprocess

    import pytest

    place = tmp_path / "ro"
    place.mkdir()
    if os.geteuid() != 0:
        shutil.copy(db, place / "runs.db")
        (place / "runs.db").chmod(0o444)
        place.chmod(0o555)
        return place / "runs.db"
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(place)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a file system here to make it read-only")
    shutil.copy(db, place / "runs.db")
    subprocess.run(["mount", "-o", "remount,ro", str(place)], check=True)
    return place / "runs.db"


def test_the_reading_commands_read_a_database_they_cannot_write(tmp_path: Path) -> None:
    """An archived CI artifact on a read-only mount, another user's database: `plait runs
    list` said 'cannot use the run record database ...: unable to open database file'
    because opening it tried to write (WAL, schema check in a write transaction)."""
    import json
    import subprocess

    (tmp_path / "wf.yaml").write_text(STOPPED)
    ran = plait("run", "wf.yaml", "--json", "--state", "runs.db", cwd=tmp_path)
    run_id = json.loads(ran.stdout)["run_id"]
    db = _read_only_copy(tmp_path, tmp_path / "runs.db")
    try:
        listed = plait("runs", "list", "--state", str(db), cwd=tmp_path)
        shown = plait("runs", "show", run_id[:6], "--state", str(db), cwd=tmp_path)
        resumed = plait("resume", run_id, "--state", str(db), cwd=tmp_path)
    finally:
        subprocess.run(["umount", str(db.parent)], capture_output=True, check=False)
        db.parent.chmod(0o755)
    assert listed.returncode == 0, listed.stderr
    assert f"{run_id}  failed" in listed.stdout
    assert shown.returncode == 0 and "bad" in shown.stdout, shown.stderr
    assert resumed.returncode == 2  # a resume writes: the error says where
    assert "runs.db" in resumed.stderr and "Traceback" not in resumed.stderr


def test_runs_list_says_when_it_shows_only_the_most_recent(tmp_path: Path) -> None:
    """With more runs than --limit (20 by default) the table just stopped: nothing said
    that older runs exist."""
    (tmp_path / "wf.yaml").write_text("version: 1\nname: w\nsteps:\n  a: {run: 'true'}\n")
    for _ in range(3):
        assert plait("run", "wf.yaml", cwd=tmp_path).returncode == 0
    cut = plait("runs", "list", "--limit", "2", cwd=tmp_path)
    whole = plait("runs", "list", "--limit", "3", cwd=tmp_path)
    assert cut.returncode == whole.returncode == 0
    assert cut.stdout.count(" succeeded ") == 2
    assert "older runs are not shown (--limit N shows more than 2)" in cut.stdout
    assert "older runs" not in whole.stdout and whole.stdout.count(" succeeded ") == 3


def test_resume_with_no_record_is_refused_in_the_words_of_the_command_line(tmp_path: Path
                                                                          ) -> None:
    """`plait resume ID --no-record` said "--resume needs run records (hint: do not disable
    the state store)": an option `plait resume` does not have, and no word of --no-record."""
    (tmp_path / "wf.yaml").write_text(STOPPED)
    for args in (("resume", "somerun", "--file", "wf.yaml", "--no-record"),
                 ("run", "wf.yaml", "--resume", "somerun", "--no-record")):
        done = plait(*args, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert "--no-record" in done.stderr and "state store" not in done.stderr, done.stderr
        assert "drop --no-record" in done.stderr, done.stderr
        assert done.stdout == ""


def test_runs_list_ends_without_a_blank_line_and_documents_json(tmp_path: Path) -> None:
    """The table ended with an empty line (its text's newline, then echo's); `--json` of
    `runs list` and `runs show` had no help text."""
    (tmp_path / "ok.yaml").write_text("version: 1\nname: ok\nsteps:\n  a: {run: 'true', "
                                      "policy: o}\npolicies:\n  o: {level: low}\n")
    for _ in range(2):
        assert plait("run", "ok.yaml", cwd=tmp_path).returncode == 0
    listed = plait("runs", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "\n\n" not in listed.stdout, repr(listed.stdout)
    assert listed.stdout.endswith("\n")
    table, _, older = plait("runs", "list", "--limit", "1", cwd=tmp_path
                                ).stdout.partition("\n\n")  # one blank line before the note
    assert len(table.splitlines()) == 2 and older.startswith("older runs are not shown")
    assert older.endswith(")\n"), older
    empty = plait("runs", "list", "--status", "failed", cwd=tmp_path).stdout
    assert empty.endswith("\n") and not empty.endswith("\n\n")
    for command in ("list", "show"):
        helped = plait("runs", command, "--help", cwd=tmp_path).stdout
        assert re.search(r"--json\s+\S", helped), helped


def test_a_moved_workflow_is_resumed_as_the_hint_says_and_a_wrong_place_creates_nothing(
        tmp_path: Path) -> None:
    """The hint for a moved workflow file said `give its new place with --file FILE`; doing
    just that looked for the run in a database beside the new place, failed ("no run"), and
    left a new empty database there, though resume only reads."""
    import json
    import shlex

    (tmp_path / "wf.yaml").write_text(STOPPED)
    failed = plait("run", "wf.yaml", "--json", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    (tmp_path / "moved").mkdir()
    (tmp_path / "wf.yaml").rename(tmp_path / "moved" / "wf.yaml")

    wrong = plait("resume", run_id, "--file", "moved/wf.yaml", cwd=tmp_path)
    assert wrong.returncode == 2, wrong.stderr
    assert "there is no run record database at" in wrong.stderr, wrong.stderr
    assert not (tmp_path / "moved" / ".plait").exists()
    wrong = plait("run", "moved/wf.yaml", "--resume", run_id, cwd=tmp_path)
    assert wrong.returncode == 2 and not (tmp_path / "moved" / ".plait").exists(), wrong.stderr

    gone = plait("resume", run_id, cwd=tmp_path)
    assert gone.returncode == 2
    hint = re.search(r"give its new place with (--file FILE .*)\)$", gone.stderr.strip())
    assert hint, gone.stderr
    args = shlex.split(hint.group(1).replace("FILE", "moved/wf.yaml"))
    (tmp_path / "moved" / "wf.yaml").write_text(STOPPED.replace("exit 3", "exit 0").replace(
        "sleep 20", "true"))
    resumed = plait("resume", run_id, *args, cwd=tmp_path)
    assert "there is no run record" not in resumed.stderr, resumed.stderr
    assert f"resuming stopped (3 steps), run {run_id}" in resumed.stderr, resumed.stderr


def test_an_input_given_twice_with_i_is_refused_not_last_wins(tmp_path: Path) -> None:
    """`-i who=x -i who=y` ran with y, silently, where a JSON object or a YAML mapping that
    names a key twice is refused; a repeat of the same value stays harmless."""
    from tests.cli.test_cli import GOOD

    (tmp_path / "good.yaml").write_text(GOOD)
    done = plait("run", "good.yaml", "-i", "who=x", "-i", "who=y", "--no-record",
                 cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert "input 'who' is given twice with -i ('x', then 'y')" in done.stderr, done.stderr
    assert "give it once" in done.stderr
    same = plait("run", "good.yaml", "-i", "who=x", "-i", "who=x", "--no-record",
                 cwd=tmp_path)
    assert same.returncode == 0 and "reply: echo: hi x" in same.stdout, same.stderr


def test_json_of_a_run_whose_record_failed_mid_run_is_still_a_json_result(tmp_path: Path
                                                                         ) -> None:
    """`plait run --json` promises one JSON object once the run has ended, whatever the
    status; a run stopped by its record failing (a file size limit crossed by a big step's
    record) left stdout empty, exit 1: a script reading the result got nothing to parse."""
    import json

    from tests.executor.test_crash_resume import run_with_a_record_too_big

    proc = run_with_a_record_too_big(tmp_path, "--json")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    result = json.loads(out)
    assert result["status"] == "failed" and result["workflow"] == "big", result
    assert re.fullmatch(r"\w+", result["run_id"]) and result["run_id"] in err
    assert result["error"]["message"].startswith("could not save 1 step record(s)"), result
    assert "stopped after it had started" in err


def test_a_dotenv_file_that_is_not_utf8_is_an_error_naming_it(tmp_path: Path) -> None:
    """A .env saved as UTF-16 (as some Windows editors do) ended `plait run` in a raw
    ExceptionGroup traceback (UnicodeDecodeError), and `plait batch` in a traceback."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: s\nsecrets: [TOKEN]\nproviders:\n  p: {kind: echo}\nsteps:\n"
        "  a: {llm: p, prompt: hi}\n")
    (tmp_path / ".env").write_bytes("TOKEN=abcd\n".encode("utf-16"))
    (tmp_path / "rows.jsonl").write_text("{}\n")
    env_free = {k: v for k, v in __import__("os").environ.items() if k != "TOKEN"}
    for args in (("run", "wf.yaml"), ("batch", "wf.yaml", "--inputs", "rows.jsonl")):
        import subprocess
        import sys

        from tests.cli.test_cli import ROOT

        done = subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**env_free, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and done.stdout == "", done.stderr
        assert f"cannot read {tmp_path / '.env'}: not UTF-8 text (byte 1)" in done.stderr, \
            done.stderr
        assert "save it as UTF-8" in done.stderr


def test_resume_uses_the_database_it_found_the_run_in(tmp_path: Path) -> None:
    """A run recorded in this directory's .plait/runs.db (`--state .plait/runs.db`) of a
    workflow kept elsewhere: `plait resume ID`, as the run's last line says, found the run
    here, then resumed against the database beside the workflow: "there is no run record
    database at .../flows/.plait/runs.db" (before that, it made one and said "no run")."""
    import json

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "wf.yaml").write_text(STOPPED.replace("sleep 20", "true"))
    failed = plait("run", "flows/wf.yaml", "--state", ".plait/runs.db", "--json",
                   cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    resumed = plait("resume", run_id, cwd=tmp_path)
    assert f"resuming stopped (3 steps), run {run_id}" in resumed.stderr, resumed.stderr
    assert resumed.returncode == 1 and "step bad failed" in resumed.stderr, resumed.stderr
    assert not (tmp_path / "flows" / ".plait").exists()


def test_a_bug_below_the_run_is_its_own_error_not_an_exception_group(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception the engine did not expect (a bug: before they were fixed, an echo option
    of the wrong type, a .env that was not UTF-8) reached the user wrapped in the CLI's own
    task group: "ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)" around
    the real error. A fault is injected where the run starts; the CLI must let it through
    as itself."""
    from click.testing import CliRunner

    import engine.executor
    from runners.cli.run_cmd import run

    async def broken(*_args: object, **_kwargs: object) -> None:
        raise LookupError("a bug below the run")

    monkeypatch.setattr(engine.executor, "run_workflow", broken)
    (tmp_path / "wf.yaml").write_text(STOPPED)
    done = CliRunner().invoke(run, [str(tmp_path / "wf.yaml"), "--no-record"])
    assert type(done.exception) is LookupError, repr(done.exception)
    assert str(done.exception) == "a bug below the run"


def test_runs_list_marks_the_runs_of_sub_workflows_and_can_leave_them_out(tmp_path: Path
                                                                          ) -> None:
    """A sub-workflow's runs were listed like any other, newest first, so above the run that
    called them: nothing told them apart, and a script that took the first run id of the list
    got a sub-workflow's run."""
    import json

    (tmp_path / "child.yaml").write_text(
        "version: 1\nname: child\ninputs:\n  who: {type: string}\nsteps:\n  a: {run: 'true', "
        "policy: o}\npolicies:\n  o: {level: low}\n")
    (tmp_path / "parent.yaml").write_text(
        "version: 1\nname: parent\nsteps:\n  one:\n    workflow: child.yaml\n    with: {who: x}"
        "\n  many:\n    foreach: [a, b]\n    max_parallel: 1\n    workflow: child.yaml\n"
        "    with: {who: '${{ item }}'}\n    needs: [one]\n")
    done = plait("run", "parent.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    top = json.loads(done.stdout)["run_id"]
    listed = plait("runs", "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[-2:] == ["CALLED", "BY"]
    assert len(rows) == 4 and rows[-1].split()[:2] == [top, "succeeded"]
    assert " step " not in rows[-1] and rows[-1].count(top) == 1  # called by nobody
    callers = sorted(row.split(f"{top} step ", 1)[1] for row in rows[:-1])
    assert callers == ["many[0]", "many[1]", "one"]
    assert all(row.split()[2] == "child" for row in rows[:-1])
    # --json carries the parent: its run id and the step (and foreach item) that called it
    runs = json.loads(plait("runs", "list", "--json", cwd=tmp_path).stdout)
    assert sorted((r["parent_run_id"], tuple(r["meta"]["parent_step"])) for r in runs[:-1]) \
        == [(top, ("many", 0)), (top, ("many", 1)), (top, ("one", None))]
    assert runs[-1]["parent_run_id"] is None
    # the newest top-level run's id, for a script
    ids = plait("runs", "list", "--top-level", "--limit", "1", "--ids", cwd=tmp_path)
    assert (ids.returncode, ids.stdout) == (0, f"{top}\n")
    alone = plait("runs", "list", "--top-level", cwd=tmp_path).stdout.splitlines()
    assert len(alone) == 2 and alone[1].split()[:3] == [top, "succeeded", "parent"]
    every = plait("runs", "list", "--ids", cwd=tmp_path).stdout.split()
    assert len(every) == 4 and every[-1] == top
    none = plait("runs", "list", "--top-level", "--status", "failed", cwd=tmp_path)
    assert none.stdout.startswith("no runs match --status failed --top-level (without ")
    both = plait("runs", "list", "--ids", "--json", cwd=tmp_path)
    assert both.returncode == 2 and "give one of them" in both.stderr
