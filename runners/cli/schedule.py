"""`plait schedule FILE...`: run workflows at the times in their `on.schedule` (cron daemon).

The command is exported as ``command``; the CLI entry point adds it to the ``plait`` group.
It starts runs through :data:`RUN_WORKFLOW`, which the CLI sets to the real workflow runner.
"""

from __future__ import annotations

import datetime as _dt
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from engine.errors import ConfigError, Location, PlaitError, RunError, SpecError, SpecIssue
from engine.spec.models import WorkflowSpec
from engine.spec.triggers import croniter_class
from runners.cli.run_cmd import trace_config, trace_options
from runners.schedule import Clock, RunFunction, ScheduleEntry, Scheduler, entries_from_spec, zone
from runners.stop_signals import first_stop_signal

if TYPE_CHECKING:
    from runners.tracing_setup import TracingSession

#: ``await RUN_WORKFLOW(workflow_path, inputs)`` runs one workflow to the end. Set by the CLI.
RUN_WORKFLOW: Callable[[Path, dict[str, Any]], Awaitable[Any]] | None = None
#: The clock the daemon runs on (None: the system clock); tests set a virtual one.
CLOCK: Clock | None = None


def _load_spec(path: Path) -> WorkflowSpec:
    """The checked workflow: every problem located as file:line:col."""
    from engine.spec.loader import load

    return load(path).spec


async def run_workflow_file(path: Path, inputs: dict[str, Any], **options: Any) -> Any:
    """The runner behind `plait schedule`: load the file afresh (it may have changed since
    the daemon started), run it with a run record (and `options`: RunOptions fields such as
    the tracer), log the outcome: one line with the run id and its status, and for a run that
    did not succeed the command that shows it (or resumes it)."""
    from engine.executor import RunControl, run_workflow
    from engine.spec.loader import load

    log = logging.getLogger("plait.schedule")
    workflow = load(path)
    control = RunControl()
    try:
        result = await run_workflow(workflow, inputs, control=control, **options)
    except anyio.get_cancelled_exc_class():  # the daemon is stopping: the run is recorded
        if control.started:  # `interrupted`, resumable
            locate = _state_option(workflow, options.get("state_location"))
            log.warning("%s: run %s interrupted; resume it with: plait resume %s%s", path,
                        control.started, control.started, locate)
        raise
    log.info("%s: run %s %s in %.2fs", path, result.run_id, result.status, result.duration)
    if not result.ok:  # the scheduler logs why and counts the run as failed
        error = result.error or {}
        step = f"step {error['step']}: " if error.get("step") else ""
        locate = _state_option(workflow, options.get("state_location"))
        raise RunError(f"run {result.run_id} {result.status}: {step}"
                       f"{error.get('message', 'no error recorded')} "
                       f"(details: plait runs show {result.run_id}{locate})",
                       run_id=result.run_id)
    return result


def _state_option(workflow: Any, state_location: str | None) -> str:
    """` --state PATH` (absolute) of the run's database, for the commands in the daemon's log:
    it is read from anywhere (journalctl, a log file), not from the daemon's directory."""
    import shlex

    from engine.state.location import MEMORY, resolve_location

    try:
        path = resolve_location(state_location, workflow_path=workflow.path)
    except PlaitError:
        return ""
    return "" if path == MEMORY else f" --state {shlex.quote(str(Path(path).resolve()))}"


def load_entries(files: tuple[Path, ...]) -> list[ScheduleEntry]:
    """Every schedule entry of every file; all problems of all files in one SpecError.

    A file given twice (`a.yaml ./a.yaml`, a glob that overlaps) is scheduled once: each of
    its fires would otherwise start two runs of it at the same instant."""
    entries: list[ScheduleEntry] = []
    issues: list[SpecIssue] = []
    seen: set[Path] = set()
    for path in files:
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        try:
            found = entries_from_spec(path, _load_spec(path))
        except SpecError as exc:
            issues.extend(exc.issues)
            continue
        if not found:
            issues.append(SpecIssue(
                "the workflow has no schedule", Location(str(path)), ("on", "schedule"),
                hint="add e.g. on: {schedule: [{cron: '0 7 * * 1-5', timezone: UTC}]}"))
        entries.extend(found)
    if issues:
        raise SpecError(issues)
    return entries


def traced_runner(session: TracingSession, run: RunFunction | None = None) -> RunFunction:
    """`run` (default: run_workflow_file into `session`'s tracer) followed by a flush of the
    session: a daemon writes each run's spans when the run ends, rather than holding them
    until thousands have gathered or the daemon stops (and losing them if it is killed)."""
    import anyio.to_thread

    runner = run or partial(run_workflow_file, **session.run_options())

    async def traced(path: Path, inputs: dict[str, Any]) -> Any:
        try:
            return await runner(path, inputs)
        finally:  # in a thread: an OTLP collector that is slow must not stall the daemon
            await anyio.to_thread.run_sync(session.flush)

    return traced


def _start_tracing(files: tuple[Path, ...], trace: dict[str, Any]) -> TracingSession | None:
    """One tracing session for every run the daemon starts (ConfigError before any)."""
    from engine.spec.loader import load
    from runners.tracing_setup import start_tracing

    # appended to: the daemon's earlier starts (a service restarted) keep their traces
    config = replace(trace_config(**trace), append=True)
    return start_tracing(config, masked_for=lambda: [load(path) for path in files])


def _check_secrets(files: tuple[Path, ...]) -> None:
    """A declared secret that is not set fails the daemon at once (exit 2), not every run."""
    from engine.secrets import load_secrets
    from engine.spec.loader import load

    for path in files:
        workflow = load(path)
        try:
            load_secrets(workflow.spec.secrets, dotenv_path=workflow.base_dir / ".env")
        except ConfigError as exc:  # which of the files wants it
            raise ConfigError(f"{path}: {exc.message}", hint=exc.hint) from None


def _print_next(entries: list[ScheduleEntry], count: int) -> None:
    now = _dt.datetime.now(_dt.UTC)
    for entry in entries:
        click.echo(entry.label)
        when = now
        for _ in range(count):
            when = entry.next_fire(when)
            click.echo(f"  {when.astimezone(zone(entry.timezone)).isoformat()}")


@click.command("schedule")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--next", "show_next", type=click.IntRange(1, 1000), default=None,
              metavar="N", help="Print the next N fire times of each schedule and exit.")
@click.option("--max-runs", type=click.IntRange(1), default=None, metavar="N",
              help="Exit after starting N runs (and waiting for them); exit 1 if any "
              "of them failed.")
@trace_options
def command(files: tuple[Path, ...], show_next: int | None, max_runs: int | None,
            **trace: Any) -> None:
    """Run FILE(s) at the times in their `on.schedule` until interrupted. With a trace
    option every run is traced, each run's spans written when it ends."""
    from runners.cli.report import print_error

    try:  # the cron extra, said once and up front: not a traceback at the first fire time
        croniter_class()
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    try:
        entries = load_entries(files)
    except SpecError as exc:
        click.echo(exc.format(), err=True)
        sys.exit(2)
    if show_next is not None:
        _print_next(entries, show_next)
        return
    try:
        _check_secrets(files)
        session = _start_tracing(files, trace)
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                            stream=sys.stderr)
    run = RUN_WORKFLOW or run_workflow_file
    scheduler = Scheduler(entries, run if session is None else traced_runner(session,
                                                                             RUN_WORKFLOW),
                          CLOCK, max_runs=max_runs)
    try:
        stopped_by = anyio.run(_serve_until_signal, scheduler)
    except KeyboardInterrupt:
        stopped_by = "SIGINT"
    except PlaitError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if session is not None:  # once, however the daemon ends (Ctrl-C included)
            session.close()
    if stopped_by:
        click.echo(f"plait schedule: stopped by {stopped_by}", err=True)
        sys.exit(130)
    failed = scheduler.failed
    if failed:
        click.echo(f"plait schedule: {failed} of {scheduler.started} run(s) failed "
                   "(their errors are logged above)", err=True)
        sys.exit(1)


async def _serve_until_signal(scheduler: Scheduler) -> str | None:
    """Serve; SIGINT or SIGTERM cancels the runs in flight and returns the signal's name."""
    stopped: list[str] = []
    async with anyio.create_task_group() as tg:

        async def watch(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            stopped.append(await first_stop_signal(task_status=task_status))
            tg.cancel_scope.cancel()

        if hasattr(signal, "SIGTERM") and sys.platform != "win32":
            await tg.start(watch)  # handlers installed before the first run can start
        await scheduler.serve()
        tg.cancel_scope.cancel()
    return stopped[0] if stopped else None
