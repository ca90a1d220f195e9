"""`plait test [PATH...]`: run the `tests:` cases of workflow files offline, against snapshots.

Exit codes: 0 every case passed, 1 a case failed, 2 a workflow file is invalid (or no case).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from engine.errors import ConfigError, PlaitError
from engine.state.render import printable
from runners.cli.report import print_error
from runners.cli.run_cmd import trace_config, trace_options, tracing_asked
from runners.gh_text import in_github_actions, inert
from runners.reporters.github import (
    append_summary,
    case_annotation,
    tests_summary_markdown,
)
from runners.reporters.junit import problems
from runners.words import count
from runners.workflow_tests import (
    SNAPSHOT_DIR,
    CaseResult,
    cassette_file,
    find_workflows,
    load_workflow,
    run_case,
    snapshot_clash,
    stale_snapshots,
    tally,
)

if TYPE_CHECKING:
    from runners.tracing_setup import TraceConfig, TracingSession

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--update-snapshots", is_flag=True,
              help="Rewrite the snapshots of cases whose outputs changed.")
@click.option("--record", is_flag=True,
              help="Re-record every case's cassette by running it live (real providers and "
                   "MCP servers), then check it as usual.")
@click.option("-k", "select", metavar="TEXT", help="Only cases whose name contains TEXT.")
@click.option("--junit", "junit", type=click.Path(path_type=Path), metavar="FILE",
              help="Also write a JUnit XML report to FILE.")
@trace_options
def test(paths: tuple[Path, ...], update_snapshots: bool, record: bool, select: str | None,
         junit: Path | None, **trace: Any) -> None:
    """Run the test cases of the workflows in PATHS (files or directories; default
    workflows/) offline from their cassettes, and compare outputs with snapshots. With a
    trace option every case is traced (one trace per case)."""
    asked = tracing_asked(trace["trace_file"], trace["trace_console"], trace["otlp"])
    if not paths and not Path("workflows").exists():
        click.echo("error: there is no workflows/ directory here, which plait test reads when "
                   "no PATHS are given (hint: name the workflow files or directories, e.g. "
                   "plait test . or plait test flow.yaml)", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(execute(list(paths) or [Path("workflows")], update=update_snapshots,
                     record=record, select=select, junit=junit,
                     trace=trace_config(**trace) if asked else None))


def execute(paths: list[Path], *, update: bool = False, record: bool = False,
            select: str | None = None, junit: Path | None = None,
            trace: TraceConfig | None = None) -> int:
    missing = [p for p in paths if not p.exists()]
    if missing:
        click.echo(f"error: no such file or directory: {', '.join(map(str, missing))} "
                   "(hint: check the path; plait test takes workflow files and directories)",
                   err=True)
        return EXIT_USAGE
    if junit is not None:
        from runners.targets import check_writable

        try:
            check_writable(junit, "--junit", "the JUnit report")
        except PlaitError as exc:
            print_error(exc)
            return EXIT_USAGE
    files = find_workflows(paths)
    loaded = [(file, _load(file)) for file in files]
    session: TracingSession | None = None
    if trace is not None:
        from runners.tracing_setup import start_tracing

        try:  # one session for every case, before any runs: a bad target is exit 2
            session = start_tracing(trace, masked_for=lambda: [
                w for _, w in loaded if not isinstance(w, PlaitError)])
        except PlaitError as exc:
            print_error(exc)
            return EXIT_USAGE
    try:
        return _run_files(loaded, update=update, record=record, select=select, junit=junit,
                          session=session)
    finally:
        if session is not None:
            session.close()


def _load(file: Path) -> Any:
    """The workflow in `file`, or the PlaitError that says why it cannot be loaded."""
    try:
        return load_workflow(file)
    except PlaitError as exc:
        return exc


def _run_files(loaded: list[tuple[Path, Any]], *, update: bool, record: bool,
               select: str | None, junit: Path | None,
               session: TracingSession | None) -> int:
    results: list[CaseResult] = []
    invalid: list[CaseResult] = []  # for the JUnit report: a file that cannot be loaded
    stale = 0
    names: list[str] = []  # every case's, to name when -k selects none
    #: with --record, the cassettes recorded so far: a later case that shares one (with the
    #: same inputs) replays it, else its live run would overwrite the reply the earlier
    #: case's snapshot was taken from
    recorded: set[Path] = set()
    for file, workflow in loaded:
        if isinstance(workflow, PlaitError):
            print_error(workflow)
            invalid.append(CaseResult(workflow=file.stem, file=file, case="(workflow file)",
                                      status="error", problems=problems(workflow)))
            continue
        clash = snapshot_clash(file) if any(c.snapshot for c in workflow.spec.tests) else None
        if clash is not None:
            exc = ConfigError(f"{file}: its snapshots would have the names of those of "
                              f"{clash.name} ({SNAPSHOT_DIR}/{file.stem}.<case>.json) and "
                              "overwrite them", hint=f"rename {file.name} or {clash.name}")
            print_error(exc)
            invalid.append(CaseResult(workflow=file.stem, file=file, case="(workflow file)",
                                      status="error", problems=problems(exc)))
            continue
        names += [c.name for c in workflow.spec.tests]
        cases = [c for c in workflow.spec.tests if select is None or select in c.name]
        for case in cases:
            tape = cassette_file(workflow, case)
            again = tape is not None and tape in recorded  # replay what this run recorded
            outcome = anyio.run(_run_case, workflow, case, update, record and not again,
                                session)
            if record and tape is not None and tape.is_file():
                recorded.add(tape)
            _print_case(outcome, workflow)
            results.append(outcome)
        if select is None:  # with -k, the other cases' snapshots are not judged
            stale += _stale(workflow, update)
    if in_github_actions():
        _job_summary(invalid + results)
    if junit is not None:
        try:
            write_junit(invalid + results, junit)
        except OSError as exc:
            click.echo(f"error: cannot write the JUnit report {junit}: {exc.strerror or exc}",
                       err=True)
    return _summary(results, len(invalid), len(loaded), stale,
                    unselected=names if select is not None else None, select=select)


async def _run_case(workflow: Any, case: Any, update: bool, record: bool,
                    session: TracingSession | None = None) -> CaseResult:
    if session is None:
        return await run_case(workflow, case, update=update, record=record)
    from runners.tracing_setup import traced_case

    with traced_case(session, workflow, case) as done:
        return done(await run_case(workflow, case, update=update, record=record,
                                   run_options=session.run_options()))


def _stale(workflow: Any, update: bool) -> int:
    """Name the snapshots no case of ``workflow`` uses (or, updating, remove them), as syrupy
    does its unused ones; they do not fail the run. How many are left."""
    left = 0
    for path, why in stale_snapshots(workflow):
        if not update:
            click.echo(f"STALE   {path}: {why} (remove it with `plait test "
                       "--update-snapshots`)")
            left += 1
            continue
        try:
            path.unlink()
        except OSError as exc:
            click.echo(f"error: cannot remove the stale snapshot {path}: "
                       f"{exc.strerror or exc}", err=True)
            left += 1
        else:
            click.echo(f"REMOVED {path}: {why}")
    return left


def _print_case(outcome: CaseResult, workflow: Any) -> None:
    label = {"passed": "PASS", "updated": "UPDATED", "failed": "FAIL", "error": "ERROR"}
    click.echo(f"{label[outcome.status]:7} {outcome.file}::{outcome.case} "
               f"({outcome.duration:.2f}s)")
    for problem in outcome.problems:  # they quote outputs: shown, not obeyed by a terminal
        click.echo(inert("\n".join(f"    {printable(line)}" for line in problem.splitlines())))
    if not outcome.ok and in_github_actions():
        click.echo(case_annotation(outcome, workflow))


def _job_summary(results: list[CaseResult]) -> None:
    """Append the cases to $GITHUB_STEP_SUMMARY (if set); a failure to is only a warning."""
    try:
        append_summary(None, markdown=tests_summary_markdown(results))
    except OSError as exc:
        click.echo(f"warning: cannot append the job summary to $GITHUB_STEP_SUMMARY: "
                   f"{exc.strerror or exc}", err=True)


def _summary(results: list[CaseResult], bad_spec: int, files: int, stale: int = 0, *,
             unselected: list[str] | None = None, select: str | None = None) -> int:
    click.echo(f"{tally(results)}, {count(len(results), 'case')} in "
               f"{count(files, 'workflow file')}"
               + (f", {count(stale, 'stale snapshot')}" if stale else "")
               + (f"; {count(bad_spec, 'workflow file')} refused (the errors say why)"
                  if bad_spec else ""))
    if bad_spec:
        return EXIT_USAGE
    if not results and unselected:  # there are cases: -k matched none of them
        shown = ", ".join(unselected[:10]) + (", ..." if len(unselected) > 10 else "")
        click.echo(f"error: no test case matches -k {select!r} (hint: -k keeps the cases "
                   f"whose name contains it; the cases are: {shown})", err=True)
        return EXIT_USAGE
    if not results:
        click.echo("error: no test cases found (add `tests:` to a workflow file)", err=True)
        return EXIT_USAGE
    return EXIT_OK if all(r.ok for r in results) else EXIT_FAILED  # an error as a failure


def write_junit(results: list[CaseResult], path: Path) -> None:
    """One <testcase> per test case, through the shared JUnit writer."""
    from runners.reporters.junit import JUnitCase
    from runners.reporters.junit import write_junit as write

    write([JUnitCase(name=r.case, classname=r.workflow,
                     outcome="passed" if r.ok else ("error" if r.status == "error" else "failed"),
                     time=r.duration, message=_title((r.problems or [r.status])[0]),
                     details="\n".join(r.problems), file=str(r.file))
           for r in results], path, suite="plait test")


def _title(problem: str) -> str:
    """A failure's message in the report: the problem's first line (a snapshot diff or a
    replay miss's diff is in the failure's text, whole)."""
    return (problem.splitlines() or [""])[0][:200]
