"""`plait batch FILE --inputs rows.jsonl` (or `--inputs -`, stdin): one run per row, results
as JSONL."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio
import click

from engine.errors import ConfigError, PlaitError
from runners.cli.report import json_text, print_error
from runners.cli.run_cmd import one_inputs_file, trace_config, trace_options
from runners.cli.stdin import workflow_file
from runners.gh_text import inert_json
from runners.stop_signals import interrupt_on_stop_signals

if TYPE_CHECKING:
    from runners.batch import BatchControl, Row
    from runners.tracing_setup import TraceConfig, TracingSession


@click.command()
@click.argument("file", type=click.Path(path_type=Path), callback=workflow_file)
@click.option("--inputs", "rows_file", required=True, type=click.Path(allow_dash=True),
              multiple=True, callback=one_inputs_file(
                  "it takes one JSONL file: join the files into one (e.g. cat a.jsonl "
                  "b.jsonl | plait batch FILE --inputs -)"),
              help="JSONL: one JSON object of inputs per line; - reads them from stdin "
                   "(to its end, before the first row runs).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where the runs execute.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Runs at once (local executor).")
@click.option("--output", type=click.Path(path_type=Path),
              help="Write the results JSONL here instead of stdout.")
@click.option("--state", "state_location", metavar="PATH",
              help="Run record database (default: PLAIT_STATE_URL, else .plait/runs.db next "
                   "to FILE).")
@trace_options
def batch(file: Path, rows_file: str, executor: str, concurrency: int, output: Path | None,
          state_location: str | None, **trace: Any) -> None:
    """Run FILE once per row of a JSONL file; print one JSON result per row, in row order.
    Exit 1 if any run did not succeed. With a trace option every run is traced (one trace
    per row), into one trace file or collector for the whole batch."""
    from runners.batch import parse_rows, read_rows
    from runners.cli.stdin import STDIN, is_stdin, read_stdin

    options: dict[str, Any] = {"state_location": state_location}
    session: TracingSession | None = None
    try:
        from engine.spec.loader import load

        workflow = load(file)  # a bad workflow is reported once, before any row runs
        from engine.secrets import load_secrets

        # as is a missing secret: every row would fail on it
        load_secrets(workflow.spec.secrets, dotenv_path=workflow.base_dir / ".env")
        rows = (parse_rows(read_stdin("JSON Lines of inputs"), STDIN) if is_stdin(rows_file)
                else read_rows(Path(rows_file)))
        session = _start_tracing(trace_config(**trace), workflow, executor)
        sink = _open_output(output, None if is_stdin(rows_file) else Path(rows_file)) \
            if output else sys.stdout
    except PlaitError as exc:
        if session is not None:
            session.close()
        print_error(exc)
        sys.exit(2)
    if session is not None:
        options.update(session.run_options())
    try:
        _run_batch(file, workflow, rows, executor, concurrency, options, sink, state_location,
                   str(output) if output else "stdout")
    finally:
        if output:
            with contextlib.suppress(OSError):  # a write error was reported already
                sink.close()
        if session is not None:  # once, whatever ended the batch (Ctrl-C included)
            session.close()


def _start_tracing(config: TraceConfig, workflow: Any, executor: str) -> TracingSession | None:
    """One tracing session for every run of the batch; ConfigError before any row runs."""
    from runners.tracing_setup import start_tracing

    if executor == "ray":
        if config.file or config.console or config.otlp:
            raise ConfigError("the runs of --executor ray are not traced",
                              hint="drop --trace-file, --trace-console and --otlp, or use "
                                   "--executor local")
        return None
    return start_tracing(config, masked_for=lambda: [workflow])


def _run_batch(file: Path, workflow: Any, rows: list[Row], executor: str, concurrency: int,
               options: dict[str, Any], sink: TextIO, state_location: str | None,
               sink_name: str) -> None:
    from runners.batch import BatchControl, run_ray

    failed = 0
    control = BatchControl()
    unwritten: OSError | None = None

    def write(result: dict[str, Any]) -> None:  # each row as soon as those before it are done
        nonlocal failed, unwritten
        failed += result["status"] != "succeeded"
        if unwritten is not None:
            return
        try:
            sink.write(inert_json(json_text(result, indent=None)) + "\n")
            sink.flush()
        except OSError as exc:  # a full disk, a reader gone: stop, no more results can go out
            unwritten = exc
            control.interrupt()

    try:
        if executor == "ray":
            for result in run_ray(file, rows, options=options):
                write(result)
                if unwritten is not None:
                    break
        else:
            anyio.run(_run_local, file, rows, concurrency, options, control, write)
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    if unwritten is not None:
        _unwritten(unwritten, sink_name, workflow, state_location)
    click.echo(f"{len(rows) - failed} of {len(rows)} runs succeeded", err=True)
    if control.interrupted:
        from runners.cli.run_cmd import _locate

        locate = _locate(workflow, state_location)
        click.echo("batch interrupted; resume a row's run with: plait resume RUN_ID"
                   + (locate or ""), err=True)
        sys.exit(130)
    sys.exit(1 if failed else 0)


def _unwritten(exc: OSError, sink_name: str, workflow: Any, state_location: str | None
               ) -> None:
    """The results could not be written: the batch stopped (its runs in flight interrupted,
    its rows not started not run). Say so and where the runs are recorded; exit 1."""
    from runners.cli.run_cmd import _locate
    from runners.cli.stdout import give_up_stdout

    if sink_name == "stdout":
        give_up_stdout()
    locate = _locate(workflow, state_location)
    where = ("its runs are not recorded" if locate is None else
             f"the runs it started are recorded: plait runs list{locate}")
    click.echo(f"error: cannot write the results to {sink_name}: {exc.strerror or exc} "
               f"(hint: the batch stopped; {where}; free space, or give --output a place "
               "that can take them)", err=True)
    sys.exit(1)


def _open_output(path: Path, rows_file: Path | None) -> TextIO:
    """The results file, opened before any row runs (so a bad path costs no runs). Never the
    rows file: opening it for writing would empty it, losing the rows the batch runs."""
    with contextlib.suppress(OSError):
        if rows_file is not None and path.exists() and path.samefile(rows_file):
            raise ConfigError(f"--output {path} is the rows file: writing the results there "
                              "would overwrite the rows",
                              hint="give --output another file, e.g. results.jsonl")
    try:
        return path.open("w", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}",
                          hint="give --output a path in a directory that exists and that "
                          "you may write to") from None


async def _run_local(file: Path, rows: list[Row], concurrency: int, options: dict[str, Any],
                     control: BatchControl, write: Callable[[dict[str, Any]], None]) -> None:
    """The rows, with Ctrl-C (or SIGTERM) interrupting the batch rather than killing it."""
    from runners.batch import run_local

    async with anyio.create_task_group() as tg:
        tg.start_soon(interrupt_on_stop_signals, control.interrupt)
        try:
            await run_local(file, rows, concurrency=concurrency, options=options,
                            control=control, on_result=write)
        finally:
            tg.cancel_scope.cancel()
