"""`plait run` and `plait resume`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from engine.errors import CassetteNotSaved, InputError, PlaitError, SpecError
from engine.jsontext import DuplicateKey, loads_strict
from runners.cli.report import dump_json, print_error, state_option
from runners.cli.stdin import STDIN, is_stdin, read_stdin, workflow_file
from runners.cli.stdout import StdoutError, give_up_stdout, stdout_error, write_stdout
from runners.gh_text import inert
from runners.stop_signals import interrupt_on_stop_signals
from runners.words import count

if TYPE_CHECKING:
    from engine.secrets import Redactor

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parse_inputs(pairs: tuple[str, ...], inputs_file: str | None) -> tuple[dict[str, Any],
                                                                           frozenset[str]]:
    """Inputs from --inputs FILE.json or `--inputs -` (stdin; typed) and -i k=v (strings,
    converted later)."""
    given: dict[str, Any] = {}
    if inputs_file is not None:
        given.update(_inputs_object(inputs_file))
    from_text = set()
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"-i expects NAME=VALUE, got {pair!r}",
                             hint=f"write -i {name}=VALUE (-i {name}= gives it an empty "
                             "string)" if name else "name the input before the =")
        if name in from_text and given[name] != value:
            raise InputError(f"input {name!r} is given twice with -i ({given[name]!r}, then "
                             f"{value!r})", hint="give it once", input=name)
        given[name] = value
        from_text.add(name)
    return given, frozenset(from_text)


def _inputs_object(inputs_file: str) -> dict[str, Any]:
    """The JSON object of an inputs file, or of stdin for `-` (strict: a key given twice is
    an error; a UTF-8 byte-order mark, as some Windows editors write, is not)."""
    if is_stdin(inputs_file):
        name, what = STDIN, f"inputs from {STDIN}"
        raw = read_stdin("a JSON object of inputs")
    else:
        name, what = str(inputs_file), f"inputs file {inputs_file}"
        try:
            raw = Path(inputs_file).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {what}: {exc.strerror or exc}",
                             hint="check the path; `--inputs -` reads the JSON object from "
                             "stdin") from None
    try:
        data = loads_strict(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {what}: not UTF-8 text (byte {exc.start + 1})",
                         hint="save it as UTF-8") from None
    except ValueError as exc:
        several = isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data"
        raise InputError(f"cannot read {what}: {exc}", hint=_hint(exc, name, raw, several)
                         ) from None
    except RecursionError:
        raise InputError(f"cannot read {what}: it is nested too deeply",
                         hint="pass values with fewer levels of nesting") from None
    if not isinstance(data, dict):
        raise InputError(f"{what} must hold a JSON object, got {_json_type(data)}",
                         hint='give the inputs by name, e.g. {"who": "ada"}')
    return data


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {list: "an array", str: "a string", int: "a number", float: "a number"}.get(
        type(value), "null")


def _hint(exc: ValueError, name: str, raw: bytes, several: bool) -> str | None:
    if several:
        return ("--inputs takes one JSON object; for one run per line of a JSONL file use "
                f"plait batch FILE --inputs {'-' if name == STDIN else 'rows.jsonl'}")
    if isinstance(exc, DuplicateKey):
        return "give each input once"
    if name == STDIN and not raw.strip():
        return ("stdin was empty: pipe a JSON object into plait, e.g. "
                "echo '{\"who\": \"ada\"}' | plait run FILE --inputs -")
    if not raw.removeprefix(b"\xef\xbb\xbf").strip():
        return 'the file is empty: write a JSON object of inputs in it, e.g. {"who": "ada"}'
    return None


def one_inputs_file(advice: str) -> Callable[[click.Context, click.Parameter,
                                               tuple[str, ...]], str | None]:
    """A click callback for an --inputs option declared `multiple=True`: the one file it
    names. Given twice, click would keep the last and drop the first file's inputs without
    a word (as -i refuses one input given two values); `advice` says what to do instead."""
    def one(_ctx: click.Context, _param: click.Parameter, value: tuple[str, ...]
            ) -> str | None:
        files = list(dict.fromkeys(value))
        if len(files) > 1:
            raise click.BadParameter(f"given {len(files)} times ({', '.join(files)}); {advice}")
        return files[0] if files else None
    return one


def run_options(f: Any) -> Any:
    options = [
        click.option("-i", "--input", "pairs", multiple=True, metavar="NAME=VALUE",
                     help="An input value (repeatable)."),
        # a str, not a Path: Path("./-") is Path("-"), and ./- names a file called -
        click.option("--inputs", "inputs_file", type=click.Path(allow_dash=True),
                     multiple=True, callback=one_inputs_file(
                         "it takes one JSON object: merge the files into one, or give single "
                         "values with -i NAME=VALUE"),
                     help="A JSON file of inputs (an object); - reads it from stdin."),
        click.option("--concurrency", type=click.IntRange(min=1),
                     help="Steps in flight at once (overrides the workflow)."),
        click.option("--keep-going", is_flag=True,
                     help="Let independent branches finish after a step fails."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print a machine-readable result on stdout."),
        click.option("--stream", is_flag=True,
                     help="Show model output as it streams (on stderr with --json)."),
        click.option("--allow-weaker-sandbox", is_flag=True,
                     help="Run below a policy's level when it cannot be enforced here "
                          "(recorded in the run record)."),
        click.option("--state", "state_location", metavar="PATH",
                     help="Run record database (default: PLAIT_STATE_URL, else "
                          ".plait/runs.db next to the workflow)."),
        click.option("--no-record", is_flag=True, help="Do not write a run record."),
        click.option("--record", "record_dir", type=click.Path(path_type=Path),
                     metavar="DIR",
                     help="Record every provider and MCP tool call into a cassette in DIR."),
        click.option("--replay", "replay_dir", type=click.Path(path_type=Path), metavar="DIR",
                     help="Answer provider and MCP tool calls from the cassette in DIR "
                          "(offline: no key, no server)."),
        click.option("--replay-missing", type=click.Choice(["fail", "live"]), default="fail",
                     show_default=True,
                     help="Under --replay, what a call missing from the cassette does."),
    ]
    # in --help: these, the trace options, then --junit
    f = click.option("--junit", "junit", type=click.Path(path_type=Path),
                     help="Write a JUnit XML report (one testcase per step).")(f)
    f = trace_options(f)
    for option in reversed(options):
        f = option(f)
    return f


def trace_options(f: Any) -> Any:
    """The tracing flags of every command that starts runs (run, resume, batch, schedule, test):
    the function gets trace_file, trace_console, otlp and trace_content (see trace_config)."""
    options = [
        click.option("--trace-file", type=click.Path(path_type=Path),
                     help="Write OpenTelemetry spans to this file, one JSON span a line."),
        click.option("--trace-console", is_flag=True,
                     help="Print OpenTelemetry spans on stderr."),
        click.option("--otlp", "otlp", metavar="URL",
                     help="Send spans to an OTLP collector (HTTP/protobuf, e.g. "
                          "http://127.0.0.1:4318); OTEL_* variables are honoured too."),
        click.option("--trace-content", is_flag=True,
                     help="Record prompts, replies and tool arguments on spans "
                          "(secrets are still redacted)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def tracing_asked(trace_file: Path | None, trace_console: bool, otlp: str | None) -> bool:
    """A trace flag, or an ``OTEL_*`` variable that could turn tracing on (or be malformed):
    without either, the tracing code (and OpenTelemetry) is not even imported."""
    return bool(trace_file or trace_console or otlp) or any(
        name.startswith("OTEL_") for name in os.environ)


def trace_config(trace_file: Path | None = None, trace_console: bool = False,
                 otlp: str | None = None, trace_content: bool = False) -> Any:
    """The runners.tracing_setup.TraceConfig of the flags trace_options adds."""
    from runners.tracing_setup import TraceConfig

    return TraceConfig(trace_file, trace_console, otlp, trace_content)


@click.command()
@click.argument("file", type=click.Path(path_type=Path), callback=workflow_file)
@run_options
@click.option("--resume", "resume_id", metavar="RUN_ID",
              help="Resume this run: finished steps are not run again.")
@click.option("--dry-run", is_flag=True, help="Check inputs and print the plan; run nothing.")
def run(file: Path, resume_id: str | None, dry_run: bool, **options: Any) -> None:
    """Run the workflow in FILE."""
    sys.exit(execute(file, resume_id=resume_id, dry_run=dry_run, **options))


@click.command()
@click.argument("run_id")
@click.option("--file", type=click.Path(path_type=Path), callback=workflow_file,
              help="The workflow file (default: the path stored in the run record). Without "
                   "--file the run is looked for in --state, else PLAIT_STATE_URL, else "
                   ".plait/runs.db in this directory; with it, beside FILE.")
@run_options
def resume(run_id: str, file: Path | None, **options: Any) -> None:
    """Resume RUN_ID: rerun only the steps that did not finish."""
    if file is None:
        from engine.state import RunStore

        try:
            store = RunStore.open(options.get("state_location"), create=False)
            record = store.get_run(run_id)
            store.close()
        except PlaitError as exc:
            print_error(exc)
            sys.exit(EXIT_USAGE)
        file = Path(record.workflow_path)
        if not file.is_file():
            # with --file, the database is looked for beside that file: name this one
            db = f" --state {shlex.quote(store.path)}"
            print_error(InputError(
                f"run {record.run_id}'s workflow file {file} is gone",
                hint="put it back (the content hash of the text it used is shown by "
                     f"plait runs show), or give its new place with --file FILE{db}"))
            sys.exit(EXIT_USAGE)
        # resumed in the database it was found in (this directory's, or PLAIT_STATE_URL),
        # not in the one beside its workflow file
        options["state_location"] = store.path
    sys.exit(execute(file, resume_id=run_id, dry_run=False, **options))


def _check_resumable(file: Path, run_id: str, state_location: str | None) -> None:
    """The run to resume is in the database this resume would use: checked by reading only,
    before the run opens it to write (which creates a database that is not there)."""
    from engine.state import RunStore

    store = RunStore.open(state_location, workflow_path=file, create=False)
    try:
        store.get_run(run_id)
    finally:
        store.close()


def execute(file: Path, *, resume_id: str | None, dry_run: bool, pairs: tuple[str, ...],
            inputs_file: str | None, as_json: bool, stream: bool, no_record: bool,
            trace_file: Path | None = None, trace_console: bool = False,
            otlp: str | None = None, trace_content: bool = False, junit: Path | None = None,
            **options: Any) -> int:
    from engine.spec.loader import load

    workflow = None
    try:
        if dry_run and resume_id is not None:
            raise InputError("--dry-run cannot be combined with --resume: it shows the plan "
                             "of a new run, not what the resume would rerun",
                             hint="drop --dry-run; plait runs show RUN_ID lists which steps "
                                  "finished (those are not run again)")
        if no_record and resume_id is not None:
            raise InputError("--no-record cannot be combined with resuming a run: a resume "
                             "reads the run's record and adds to it",
                             hint="drop --no-record")
        workflow = load(file)
        given, from_text = parse_inputs(pairs, inputs_file)
        if resume_id is not None:
            _check_resumable(file, resume_id, options.get("state_location"))
        if dry_run:
            return _dry_run(workflow, given, from_text, as_json)
    except PlaitError as exc:
        if workflow is not None and isinstance(exc, InputError):  # it shows values given
            _redactor(workflow).redact_error(exc)
        print_error(exc)
        if junit is not None and not dry_run:
            from runners.reporting import write_refused

            write_refused(junit, exc, file)
        return EXIT_USAGE
    from runners.reporting import Reporting

    trace = trace_config(trace_file, trace_console, otlp, trace_content) \
        if tracing_asked(trace_file, trace_console, otlp) else None
    reporting = Reporting(workflow, trace, junit=junit, as_json=as_json)
    try:
        options.update(reporting.start())
    except PlaitError as exc:
        print_error(exc)
        reporting.finish()
        return EXIT_USAGE
    code: int = EXIT_USAGE
    locate = None if no_record else _locate(workflow, options.get("state_location"))
    try:
        code = anyio.run(_run, workflow, given, from_text, resume_id, as_json, stream,
                         not no_record, options, reporting, locate)
    finally:
        reporting.finish()
    return code


def _dry_run(workflow: Any, given: dict[str, Any], from_text: frozenset[str],
             as_json: bool) -> int:
    from engine.executor.inputs import resolve_inputs
    from engine.graph import layers

    inputs = resolve_inputs(workflow.spec.inputs, given, from_text=from_text)
    plan = layers(workflow.graph)
    if as_json:
        dump_json({"workflow": workflow.name, "inputs": _masked(workflow, inputs),
                   "layers": plan})
    else:
        steps, layers = count(len(workflow.spec.steps), "step"), count(len(plan), "layer")
        click.echo(f"{workflow.name}: {steps} in {layers}")
        for i, layer in enumerate(plan, 1):
            click.echo(f"  {i}. {', '.join(layer)}")
    return EXIT_OK


def _masked(workflow: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with the workflow's secrets masked, as a run records them: a declared secret
    is redacted everywhere, and a dry run's JSON printed it in clear."""
    masked: dict[str, Any] = _redactor(workflow).redact_obj(inputs)
    return masked


def _redactor(workflow: Any) -> Redactor:
    """The workflow's secrets that are set (a missing one is the run's error), as a run
    masks them."""
    from engine.secrets import Redactor, workflow_secret_values

    return Redactor(workflow_secret_values(workflow.spec, dotenv_path=workflow.base_dir / ".env",
                                           missing_ok=True))


async def _run(workflow: Any, given: dict[str, Any], from_text: frozenset[str],
               resume_id: str | None, as_json: bool, stream: bool, record: bool,
               options: dict[str, Any], reporting: Any = None,
               locate: str | None = "") -> int:
    from engine.executor import RunControl, run_workflow

    control = RunControl()
    with ExitStack() as stack:
        listeners = _progress(workflow, as_json, stack)
        if stream:
            from runners.cli.progress import LiveView, StreamPrinter, stdout_is_terminal

            # with --json, stdout holds the JSON result alone; first, so that on stderr the
            # streamed text ends its line before the step's progress line is printed
            live = isinstance(listeners[0], LiveView) and stdout_is_terminal()
            printer = StreamPrinter(sys.stderr if as_json else None, whole_lines=live)
            listeners.insert(0, printer)
            stack.callback(printer.close)  # before the live view ends: printed above it
            options["stream"] = True
        not_saved: PlaitError | None = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(interrupt_on_stop_signals, control.interrupt)
                try:
                    result = await run_workflow(workflow, given, control=control,
                                                listeners=listeners, resume=resume_id,
                                                from_text=from_text, record_state=record,
                                                **options)
                except CassetteNotSaved as exc:  # the run ended: report it, then the error
                    result, not_saved = exc.result, exc
                except (SpecError, PlaitError) as exc:
                    tg.cancel_scope.cancel()
                    stack.close()
                    return _stopped(exc, workflow, control, reporting, as_json)
                tg.cancel_scope.cancel()
        except ExceptionGroup as group:  # a bug below: its own error, not this group's
            raise _unwrapped(group) from None
    if reporting is not None:
        reporting.result = result
    try:
        code = _report(result, as_json, locate)
    except StdoutError as exc:
        code = _unwritten(result, exc, locate)
    if not_saved is not None:
        print_error(not_saved)
        return code if code != EXIT_OK else EXIT_FAILED
    return code


def _stopped(exc: PlaitError, workflow: Any, control: Any, reporting: Any, as_json: bool
             ) -> int:
    """The run refused to start (exit 2), or stopped on an error of its own after it had."""
    if control.started is None and exc.context.get("reason") == "interrupted":
        # Ctrl-C while the run record database was locked by another process: before the
        # run could be recorded, so nothing ran and there is nothing to resume
        click.echo(f"{exc.message}: nothing ran and nothing was recorded", err=True)
        if reporting is not None:
            reporting.refused = exc
        return EXIT_INTERRUPTED
    print_error(exc)
    if control.started is None:
        if reporting is not None:
            reporting.refused = exc
        return EXIT_USAGE  # refused before anything ran
    click.echo(f"run {control.started} stopped after it had started (steps may have run); its "
               "record may be incomplete", err=True)
    if as_json:  # one JSON object once the run has ended, whatever the status
        _stopped_json(workflow, control.started, exc)
    return EXIT_FAILED


def _unwrapped(group: ExceptionGroup[Exception]) -> Exception:
    """The one exception a task group wrapped (nested groups too), else the group."""
    error: Exception = group
    while isinstance(error, ExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def _stopped_json(workflow: Any, run_id: str, exc: PlaitError) -> None:
    """--json of a run stopped by an error of its own (its record could not be written):
    the fields of a result, its steps unknown (their records may be incomplete)."""
    try:
        dump_json({"run_id": run_id, "workflow": workflow.name, "status": "failed",
                   "outputs": {}, "error": exc.to_dict(), "usage": {}, "cost": 0.0,
                   "steps": {}})
    except StdoutError as out:
        give_up_stdout()
        click.echo(f"error: cannot write the result to stdout: {stdout_error(out)}", err=True)


def _report(result: Any, as_json: bool, locate: str | None) -> int:
    if as_json:
        dump_json(result.to_dict())
    elif result.status != "succeeded":
        _explain_failure(result, locate)
    else:
        from engine.state.render import printable

        for name, value in result.outputs.items():
            # untrusted (a model's reply): its control characters are shown, not obeyed
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            write_stdout(inert(printable(f"{name}: {shown}")) + "\n")
    if result.status == "interrupted":  # one line to go on from (not `plait runs show`)
        click.echo(f"run {result.run_id} interrupted; " + (
            "not recorded, so it cannot be resumed" if locate is None else
            f"resume with: plait resume {result.run_id}{locate}"), err=True)
        return EXIT_INTERRUPTED
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED


def _unwritten(result: Any, exc: OSError, locate: str | None) -> int:
    """The run ended but its result could not be printed (a full disk under `> out.json`,
    stdout closed): say so, and where the run's record is. Exit 1 (130 if interrupted):
    whoever reads stdout did not get what they asked for."""
    give_up_stdout()
    where = ("it was not recorded (--no-record)" if locate is None else
             f"is recorded; print it again with: plait runs show {result.run_id}{locate} --json")
    click.echo(f"error: cannot write the result to stdout: {stdout_error(exc)} (hint: run "
               f"{result.run_id} {result.status} and {where})", err=True)
    return EXIT_INTERRUPTED if result.status == "interrupted" else EXIT_FAILED


def _progress(workflow: Any, as_json: bool, stack: ExitStack) -> list[Any]:
    if sys.stderr.isatty() and not as_json:
        from runners.cli.progress import LiveView

        return [stack.enter_context(LiveView(list(workflow.spec.steps)))]
    from runners.cli.progress import PlainPrinter

    return [PlainPrinter(steps=workflow.spec.steps)]


def _locate(workflow: Any, state_location: str | None) -> str | None:
    """What follows the run id in a `plait runs show` / `plait resume` hint so that the
    command finds this run's record from here; None when the record will not outlive the
    process (an in-memory database)."""
    from engine.state.location import MEMORY, resolve_location

    try:
        path = resolve_location(state_location, workflow_path=workflow.path)
    except PlaitError:
        return None
    return None if path == MEMORY else state_option(path)


def _explain_failure(result: Any, locate: str | None = "") -> None:
    shown = set()
    for sid, step in result.steps.items():
        if step.status == "failed" and step.error:
            click.echo(inert(f"step {sid} failed: {_what(step.error)}"), err=True)
            shown.add(sid)
    # the run's own error, unless it is a failed step's shown above: an output that could not
    # be evaluated is the cause even when a continue_on_error step failed too
    if result.error and result.error.get("step") not in shown:
        click.echo(inert(f"run failed: {_what(result.error)}"), err=True)
    if result.status == "interrupted":
        return  # _report says how to resume it
    if locate is None:
        click.echo(f"run {result.run_id} {result.status} (not recorded)", err=True)
    else:  # a resume reuses the steps that succeeded and runs the rest (docs/run-records.md)
        click.echo(f"run {result.run_id} {result.status}; inspect with: plait runs show "
                   f"{result.run_id}{locate}", err=True)
        click.echo("once its cause is fixed, rerun only what did not succeed with: plait "
                   f"resume {result.run_id}{locate}", err=True)


def _what(error: dict[str, Any]) -> str:
    """An error of a result as a person reads it: the message, then how to fix it."""
    from engine.state.render import printable

    hint = error.get("hint")
    return printable(f"{error.get('message')}" + (f" (hint: {hint})" if hint else ""))
