"""`plait runs list | show RUN_ID | report RUN_ID --html FILE`: read the run records."""

from __future__ import annotations

import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from engine.errors import InputError, PlaitError
from runners.cli.report import dump_json, print_error, state_option
from runners.words import count


def _store(state: str | None, workflow: Path | None) -> Any:
    from engine.state import RunStore

    if workflow is not None and state is None and workflow.is_dir():
        # its parent's .plait/runs.db would be read: another directory's runs, silently
        db = shlex.quote(str(workflow / ".plait" / "runs.db"))
        raise InputError(f"--workflow {workflow} is a directory, not a workflow file",
                         hint=f"give a workflow file in it (its .plait/runs.db is read), or "
                              f"--state {db}")
    return RunStore.open(state, workflow_path=(workflow or Path.cwd() / "workflow.yaml"),
                         create=False)


def _state_options(f: Any) -> Any:
    f = click.option("--state", metavar="PATH",
                     help="Run record database (default: PLAIT_STATE_URL, else "
                          ".plait/runs.db next to --workflow or in this directory).")(f)
    return click.option("--workflow", type=click.Path(path_type=Path),
                        help="A workflow file whose .plait/runs.db to read.")(f)


@click.group()
def runs() -> None:
    """List and inspect recorded runs."""


#: what --status accepts: the stored statuses, and `died` (a `running` run whose process is
#: gone, as the table shows it)
_STATUSES = ("running", "died", "succeeded", "failed", "interrupted", "cancelled")


@runs.command("list")
@_state_options
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1),
              metavar="N", help="Show at most this many runs.")
@click.option("--status", type=click.Choice(_STATUSES, case_sensitive=False), metavar="STATUS",
              help=f"Only runs with this status as the table shows it: {', '.join(_STATUSES)} "
                   "(died: recorded as running, its process gone).")
@click.option("--top-level", is_flag=True,
              help="Leave out the runs of sub-workflows (those CALLED BY another run's step).")
@click.option("--ids", "ids_only", is_flag=True,
              help="Print only the run ids, one a line, newest first (for scripts).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the runs as a JSON array (with `shown_status`; a sub-workflow's run "
                   "has `parent_run_id` and `meta.parent_step`).")
def list_runs(state: str | None, workflow: Path | None, limit: int, status: str | None,
              top_level: bool, ids_only: bool, as_json: bool) -> None:
    """The most recent runs, newest first. A sub-workflow's run is listed too, above the run
    that called it (it started later): CALLED BY names that run and its step."""
    from engine.state.render import format_runs_table

    if ids_only and as_json:
        raise click.UsageError("--ids and --json print the runs in two ways; give one of them")
    try:
        store = _store(state, workflow)
        try:  # one more than --limit: are there older ones?
            records = _runs(store, limit + 1, status, top_level)
            older, records = len(records) > limit, records[:limit]
            filtered_out = (not records and (status is not None or top_level)
                            and bool(store.list_runs(limit=1)))
        finally:
            store.close()
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    if as_json:
        dump_json([_brief(r) for r in records])
    elif ids_only:
        for record in records:
            click.echo(record.run_id)
    elif filtered_out:
        given = " ".join(([f"--status {status}"] if status else []) +
                         (["--top-level"] if top_level else []))
        click.echo(f"no runs match {given} (without {given} every run is listed)")
    else:
        click.echo(format_runs_table(records).rstrip("\n"))
        if older:  # a blank line between
            click.echo(f"\nolder runs are not shown (--limit N shows more than {limit})")


def _runs(store: Any, limit: int, status: str | None, top_level: bool) -> list[Any]:
    """The most recent `limit` runs with `status` as shown: `running` only while the run's
    process lives, `died` once it is gone (both are stored as `running`); only those without
    a parent run if `top_level`."""
    if status not in ("running", "died"):
        return list(store.list_runs(limit=limit, status=status, top_level=top_level))
    from engine.state.render import shown_status

    live = [r for r in store.list_runs(limit=None, status="running", top_level=top_level)
            if shown_status(r) == status]
    return live[:limit]


def _load_run(run_id: str, state: str | None, workflow: Path | None,
              ) -> tuple[Any, list[Any], str, dict[str, list[int]], list[Any]]:
    """The run (a unique id prefix is enough), its steps, the database they are in, the
    finished items of its unfinished foreach steps (step id -> indices) and the runs of its
    sub-workflow steps, or exit 2 saying why not."""
    try:
        store = _store(state, workflow)
        try:
            record = store.get_run(run_id)
            items = {sid: sorted(found)
                     for sid, found in store.step_items(record.run_id).items()}
            return (record, store.steps(record.run_id), store.path, items,
                    store.child_runs(record.run_id))
        finally:
            store.close()
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)


@runs.command("show")
@click.argument("run_id")
@_state_options
@click.option("--json", "as_json", is_flag=True,
              help="Print the run and its steps (outputs, errors, usage) as JSON.")
def show(run_id: str, state: str | None, workflow: Path | None, as_json: bool) -> None:
    """One run: every step's status, attempts, timings, errors, usage and audit."""
    from engine.state.render import child_entry, format_run

    record, steps, db_path, items, children = _load_run(run_id, state, workflow)
    if as_json:
        # the finished items of unfinished foreach steps (which may have no row yet)
        dump_json({**_brief(record), "steps": [asdict(s) for s in steps],
                   **({"finished_items": items} if items else {}),
                   **({"child_runs": [child_entry(c) for c in children]} if children
                      else {})})
    else:
        from runners.gh_text import inert
        from runners.reporters.html import step_order

        recorded = {s.step_id for s in steps}
        unrecorded = [s for s in step_order(record, steps) if s not in recorded]
        text = format_run(record, steps, locate=state_option(db_path), unrecorded=unrecorded,
                          finished_items={sid: len(found) for sid, found in items.items()},
                          children=children)
        click.echo(inert(text.rstrip("\n")))


@runs.command("report")
@click.argument("run_id")
@_state_options
@click.option("--html", "html_path", type=click.Path(path_type=Path), required=True,
              help="Write the report to this HTML file (one self-contained file).")
def report(run_id: str, state: str | None, workflow: Path | None, html_path: Path) -> None:
    """An HTML report of one run: its graph, a timeline and every step's data."""
    from runners.reporters.html import render_html
    from runners.targets import check_writable

    try:  # before the record is read: `cannot write x: File exists` said nothing useful
        check_writable(html_path, "--html", "the HTML report")
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    record, steps, *_ = _load_run(run_id, state, workflow)
    try:
        from engine.atomic import atomic_write

        atomic_write(html_path, render_html(record, steps))
    except OSError as exc:
        click.echo(f"error: cannot write {html_path}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(f"wrote {html_path} (run {record.run_id}, {count(len(steps), 'step')})")


def _brief(record: Any) -> dict[str, Any]:
    """A run as --json prints it: the record (its workflow text left out), and `shown_status`,
    the status as the table shows it (`died` for a `running` run whose process is gone)."""
    from engine.state.render import shown_status

    data = asdict(record)
    data["meta"] = {k: v for k, v in data.get("meta", {}).items() if k != "source"}
    data["shown_status"] = shown_status(record)
    return data
