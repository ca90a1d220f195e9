"""run_workflow: inputs -> record -> schedule -> outputs -> record. The library's main entry."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import ConfigError, ExpressionError, InputError, StateError
from engine.executor.context import RunContext, RunOptions, failed_at
from engine.executor.events import Event, RunFinished, RunStarted
from engine.executor.fingerprints import step_fingerprints
from engine.executor.inputs import (
    MASKED_INPUTS,
    check_same_inputs,
    resolve_inputs,
    resume_inputs,
)
from engine.executor.records import RecordWriter
from engine.executor.result import RunResult, StepResult
from engine.executor.retry import error_kind, retry_after_cap
from engine.executor.scheduler import Scheduler, summarise
from engine.executor.services import Services
from engine.secrets import Redactor
from engine.state.location import MEMORY
from engine.state.records import PARENT_STEP
from engine.state.resume import RUNNING_HERE

log = logging.getLogger("plait.executor")

if TYPE_CHECKING:
    from engine.spec.workflow import Workflow
    from engine.state import RunRecord, RunStore


class RunControl:
    """Lets a runner stop a run from outside (Ctrl-C): in-flight steps are cancelled, the
    record is kept resumable and the run ends with status 'interrupted'."""

    def __init__(self) -> None:
        self.interrupted = False
        self._scheduler: Scheduler | None = None

    @property
    def started(self) -> str | None:
        """The run's id once it has started (its steps may run), else None."""
        return self._scheduler.rc.run_id if self._scheduler is not None else None

    def interrupt(self) -> None:
        self.interrupted = True
        if self._scheduler is not None:
            self._scheduler.stop()


async def run_workflow(workflow: Workflow, inputs: Mapping[str, Any] | None = None, *,
                       control: RunControl | None = None, **options: Any) -> RunResult:
    """Run `workflow` with `inputs`. Options are the fields of RunOptions."""
    opts = _options(options)
    given = dict(inputs or {})
    # a new run's inputs are checked before its record database is opened: a run refused
    # for its inputs leaves no .plait/runs.db behind (a resume's need the record)
    with _secrets_masked(workflow, opts):
        checked = None if opts.resume else _new_inputs(workflow, given, opts)
    store = _open_store(workflow, opts)
    # Tell sniffio (which anyio asks on every task spawn and event) which loop this is, once:
    # its own detection is the single largest cost of starting a task.
    library = _claim_async_library()
    try:
        return await _run(workflow, given, opts, store, control or RunControl(), checked)
    finally:
        if library is not None:
            library[0].reset(library[1])
        if store is not None and opts.store is None:
            store.close()


async def stream_run(workflow: Workflow, inputs: Mapping[str, Any] | None = None,
                     **options: Any) -> AsyncIterator[Event]:
    """The run as an async stream of events; the last one is RunFinished."""
    send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=float("inf"))

    def forward(event: Event) -> None:
        # the consumer stopped reading: the run is being stopped, its end goes unheard
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            send.send_nowait(event)

    listeners = [*options.pop("listeners", []), forward]

    async def go() -> None:
        async with send:
            await run_workflow(workflow, inputs, listeners=listeners, **options)

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        async with receive:
            try:
                async for event in receive:
                    yield event
            except GeneratorExit:
                # the consumer stopped reading (aclose): the run is stopped like a cancelled
                # one (recorded `interrupted`, resumable). GeneratorExit must not reach the
                # task group, which would hand it back wrapped in an ExceptionGroup
                tg.cancel_scope.cancel()


def _claim_async_library() -> tuple[Any, Any] | None:
    try:
        import sniffio
    except ImportError:  # anyio then detects asyncio cheaply itself
        return None
    cvar = sniffio.current_async_library_cvar
    return cvar, cvar.set(sniffio.current_async_library())


def _options(options: Mapping[str, Any]) -> RunOptions:
    known = {f.name for f in fields(RunOptions)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown run option(s): {', '.join(sorted(unknown))}")
    opts = RunOptions(**options)
    retry_after_cap()  # a bad PLAIT_RETRY_AFTER_CAP is refused before anything runs
    limit = opts.concurrency
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ConfigError(f"concurrency must be a whole number of at least 1, got {limit!r}",
                          hint="pass concurrency=N with N >= 1, or leave it out to use the "
                               "workflow's `concurrency:`")
    if opts.replay_missing == "live" and opts.replay_dir is None:
        raise ConfigError("--replay-missing=live only applies to a run with --replay DIR",
                          hint="add --replay DIR, or drop --replay-missing")
    return opts


def _open_store(workflow: Workflow, opts: RunOptions) -> RunStore | None:
    if opts.store is not None:
        return opts.store
    if not opts.record_state:
        return None
    from engine.state import RunStore

    return RunStore.open(opts.state_location, workflow_path=workflow.path)


async def _run(workflow: Workflow, given: dict[str, Any], opts: RunOptions,
               store: RunStore | None, control: RunControl,
               checked: dict[str, Any] | None) -> RunResult:
    previous = _previous_run(store, opts.resume, workflow) if opts.resume else None
    if previous is None:  # a new run: its inputs were checked before the store was opened
        assert checked is not None
        inputs = checked
    else:
        with _secrets_masked(workflow, opts):
            inputs = resume_inputs(previous, given, workflow, opts.from_text)
    run_id = previous.run_id if previous else (opts.run_id or _new_run_id())
    services = opts.services or Services(workflow, opts, inputs)
    if store is not None and store.path != MEMORY and workflow.spec.mcp_servers \
            and services.log_dir is None:
        # MCP servers' stderr goes to the run's log directory, not the terminal (an
        # in-memory record has no directory: its servers' stderr is kept as without one)
        services.log_dir = Path(store.path).parent / "logs" / run_id
    result: RunResult | None = None
    claimed = False
    try:
        async with services:
            if previous is not None:  # compared as recorded: with secrets masked
                check_same_inputs(previous, services.redact(inputs), given)
            rc = RunContext(workflow, run_id, inputs, opts, RecordWriter(store), services,
                            services.secrets)
            done, items = _restored(store, previous, workflow, services.redactor) \
                if previous else ({}, {})
            if not rc.names_steps:  # a cassette holds the calls of every item it replays
                rc.restored_items = items
            _create_record(store, rc, previous)
            if store is not None:  # until it ends: a resume in this process checks it
                RUNNING_HERE.add(run_id)
                claimed = True
            services.begin(previous.meta if previous else None, done)
            rc.emit(RunStarted(run_id, rc.started_at, workflow.name, len(workflow.spec.steps),
                               resumed=previous is not None,
                               weaker_sandbox=tuple(services.weaker)))
            scheduler = Scheduler(rc, done)
            control._scheduler = scheduler
            if control.interrupted:  # interrupted while its services started
                scheduler.stop()
            try:
                await scheduler.run()
                result = _finish(rc, scheduler, store, control)
            except BaseException as exc:
                if result is None:
                    _end_unfinished(rc, scheduler, store, control, exc)
                raise
            finally:
                rc.writer.detach()
    except ConfigError as exc:
        from engine.cassettes import CassetteError, CassetteNotSaved

        if result is None or not isinstance(exc, CassetteError):
            raise
        # the run happened and ended: its caller still gets its result, with the error
        raise CassetteNotSaved(f"run {run_id} {result.status}, but its cassette was not "
                               f"saved: {exc.message}", result=result, hint=exc.hint) from exc
    finally:
        if claimed:
            RUNNING_HERE.discard(run_id)
    _note_cassette(store, run_id, services)
    return result


def _note_cassette(store: RunStore | None, run_id: str, services: Services) -> None:
    """Note in the run's record the cassette the run saved, if it saved one."""
    saved = services.saved_cassette()
    if store is not None and saved is not None:
        try:
            store.update_meta(run_id, {"cassette": saved})
        except StateError as exc:  # the run and its result stand; a recorded resume of it
            log.warning("run %s: its cassette was saved but could not be noted in the run "
                        "record (%s); a recorded resume will start a new cassette",
                        run_id, exc.message)


def _finish(rc: RunContext, scheduler: Scheduler, store: RunStore | None,
            control: RunControl) -> RunResult:
    if store is None or not control.interrupted:
        return _finished(rc, scheduler, store, control)
    with store.closing():  # stopped from outside: its last writes do not wait long
        return _finished(rc, scheduler, store, control)


def _finished(rc: RunContext, scheduler: Scheduler, store: RunStore | None,
              control: RunControl) -> RunResult:
    rc.writer.flush()  # steps that finished but were not yet durable
    if rc.writer.error is not None:
        if store is None or not store.interrupted:
            raise rc.writer.error
        control.interrupted = True  # Ctrl-C while a write waited for another's lock
    now = time.time()
    for sid in scheduler.unfinished():
        running = rc.running.get(sid)  # cancelled while it ran: when it started, its tries
        result = StepResult(sid, rc.workflow.kind(sid), "cancelled",
                            started_at=running.started if running else now, finished_at=now,
                            attempts=running.count if running else 0,
                            notes=list(running.all_notes()) if running else [],
                            reason="interrupted" if control.interrupted else "run stopped")
        scheduler.results[sid] = result
        rc.writer.note(rc.services.step_row(rc, result))
    rc.writer.flush()
    results = {sid: scheduler.results[sid] for sid in rc.workflow.spec.steps}
    if rc.services.redactor:
        results = {sid: _redacted(rc, result) for sid, result in results.items()}
    status = "interrupted" if control.interrupted else (
        "failed" if scheduler.failed else "succeeded")
    outputs: dict[str, Any] = {}
    error: dict[str, Any] | None = None
    if status == "succeeded":
        try:
            outputs = _outputs(rc)
        except ExpressionError as exc:
            status, error = "failed", rc.services.redact(exc.to_dict())
    elif status == "failed":
        failed = [r for r in results.values() if r.status == "failed"]
        # the step that failed the run, not one whose failure was allowed (continue_on_error)
        first = next((r for r in failed if not scheduler.tolerates(r.step_id)),
                     failed[0] if failed else None)
        error = first.error if first else None
    usage, cost = summarise(results)
    outputs = rc.services.redact(outputs)
    if store is not None:
        _close_record(rc, store, status, outputs, error, usage, cost)
    unknown = tuple(sid for sid, r in results.items() if r.cost is None)
    run_result = RunResult(rc.run_id, rc.workflow.name, status, outputs, results,
                           rc.started_at, time.time(), error, usage, cost, unknown)
    rc.emit(RunFinished(rc.run_id, run_result.finished_at, status, run_result.duration,
                        outputs, error))
    return run_result


def _close_record(rc: RunContext, store: RunStore, status: str, outputs: dict[str, Any],
                  error: dict[str, Any] | None, usage: dict[str, Any], cost: float) -> None:
    try:
        store.finish_run(rc.run_id, status=status, finished_at=time.time(), outputs=outputs,
                         error=error, usage=usage, cost=cost)
    except StateError as exc:
        if not store.interrupted:
            raise
        # the lock is still held: the record stays `running` (`died` once this process is
        # gone), resumable, with the steps whose records were written before the wait
        log.warning("run %s: interrupted while waiting for the run record database %s, "
                    "locked by another process; its record is left unfinished and can be "
                    "resumed once the lock is free (%s)", rc.run_id, store.path,
                    exc.message)


def _end_unfinished(rc: RunContext, scheduler: Scheduler, store: RunStore | None,
                    control: RunControl, exc: BaseException) -> None:
    """The run was stopped from outside (a caller's deadline or cancel scope, a consumer of
    stream_run that stopped reading, Ctrl-C as KeyboardInterrupt) or broke. What finished is
    written, the rest is recorded cancelled, and the record ends `interrupted` (resumable):
    it was left `running`, with the last finished steps unwritten."""
    scheduler.stop()  # nothing more starts, also from the durable callbacks of what is written
    if isinstance(exc, anyio.get_cancelled_exc_class() | KeyboardInterrupt):
        control.interrupted = True
        try:
            _finish(rc, scheduler, store, control)  # emits RunFinished too
            return
        except Exception as error:
            log.warning("run %s: stopped, but its record could not be closed: %s", rc.run_id,
                        error)
    if rc.listening:
        _stopped(rc, exc)


def _stopped(rc: RunContext, exc: BaseException) -> None:
    """RunFinished for a run that ended without a result (cancelled from outside, as a
    sub-workflow is when its parent stops, or broken by an error): its listeners (tracing,
    whose run span would otherwise never end and be lost) still see it end."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        status, error = "cancelled", None
    elif isinstance(exc, KeyboardInterrupt):
        status, error = "interrupted", None
    else:
        status, error = "failed", rc.services.redact(
            {"kind": error_kind(exc), "message": str(exc) or type(exc).__name__})
    now = time.time()
    try:
        rc.emit(RunFinished(rc.run_id, now, status, now - rc.started_at, None, error))
    except Exception:  # a listener gone with the run (a closed stream) must not hide why
        log.debug("run %s: a listener failed on the run's end", rc.run_id, exc_info=True)


def _redacted(rc: RunContext, result: StepResult) -> StepResult:
    """The step as the caller sees it (RunResult, --json): secrets masked in what it holds
    (called only when there is a secret to mask)."""
    redact = rc.services.redact
    return replace(result, output=redact(result.output), error=redact(result.error),
                   rendered=redact(result.rendered), notes=redact(result.notes),
                   reason=redact(result.reason))


def _outputs(rc: RunContext) -> dict[str, Any]:
    out = {}
    for name, compiled in rc.workflow.outputs.items():
        try:
            out[name] = compiled.render(rc.expr_context)
        except ExpressionError as exc:
            where, field = failed_at(rc.workflow, ("outputs", name), exc)
            raise ExpressionError(f"{where}: output {field!r}: {exc.message}",
                                  output=name, hint=exc.hint) from exc
    return out


def _new_run_id() -> str:
    from engine.state import new_run_id

    return new_run_id()


def _create_record(store: RunStore | None, rc: RunContext, previous: RunRecord | None) -> None:
    if store is None:
        return
    from engine.state import RunRecord, owner_meta

    notes: dict[str, Any] = {"logs": str(rc.services.log_dir)} if rc.services.log_dir else {}
    source = rc.services.redactor.redact_source(rc.workflow.source.text)
    masked = sorted(k for k, v in rc.inputs.items() if rc.services.redact(v) != v)
    if masked:  # a resume must be given them again (see engine.executor.inputs.resume_inputs)
        notes[MASKED_INPUTS] = masked
    if rc.options.parent_step is not None:  # a sub-workflow's run: which step started it
        notes[PARENT_STEP] = [rc.options.parent_step, rc.options.parent_item]
    elif previous is not None and PARENT_STEP in previous.meta:  # resumed on its own
        notes[PARENT_STEP] = previous.meta[PARENT_STEP]
    meta = {"source": source, "owner": owner_meta(), **notes,
            "resumes": (previous.meta.get("resumes", 0) + 1) if previous else 0,
            **rc.services.run_meta()}
    if previous is not None:  # its file may have moved: the next resume finds it there
        path = _record_path(rc.workflow.path)
        store.reopen_run(previous.run_id, meta=meta, seen=previous,
                         inputs=rc.services.redact(rc.inputs),
                         workflow_path=None if path.startswith("<") else path)
    else:
        store.create_run(RunRecord(
            run_id=rc.run_id, workflow_name=rc.workflow.name,
            workflow_path=_record_path(rc.workflow.path), spec_hash=rc.workflow.spec_hash,
            inputs=rc.services.redact(rc.inputs), status="running", started_at=rc.started_at,
            finished_at=None, outputs=None, error=None, usage={}, cost=0.0,
            parent_run_id=rc.options.parent_run_id, resumed_from=None, meta=meta))


@contextmanager
def _secrets_masked(workflow: Workflow, opts: RunOptions) -> Iterator[None]:
    """Mask the secrets of the run in an error about its inputs, which shows values it was
    given (`got "..."`): one may hold a secret, masked everywhere else. Before the run's
    services exist, so with the secrets that are set (a missing one is the run's error)."""
    try:
        yield
    except InputError as exc:
        from engine.secrets import workflow_secret_values

        redactor = Redactor(workflow_secret_values(workflow.spec, env=opts.environ,
                                                   dotenv_path=workflow.base_dir / ".env",
                                                   missing_ok=True))
        redactor.add(*opts.inherited_secrets)
        redactor.redact_error(exc)
        raise


def _record_path(path: Path) -> str:
    """The workflow's path as a run record keeps it: absolute and resolved, so `plait resume`
    finds the file from any directory (a pseudo path such as ``<string>`` is kept as is)."""
    if str(path).startswith("<"):
        return str(path)
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # a symlink loop: absolute is the best there is
        return str(path.absolute())


def _previous_run(store: RunStore | None, run_id: str, workflow: Workflow) -> RunRecord:
    if store is None:
        raise StateError("--resume needs run records", hint="do not disable the state store")
    record = store.get_run(run_id)
    if record.workflow_name != workflow.name:
        raise StateError(f"run {record.run_id} is of workflow {record.workflow_name!r}, "
                         f"not {workflow.name!r}", hint="resume it with its own workflow file")
    if record.status == "succeeded":
        raise StateError(f"run {record.run_id} already succeeded; nothing to resume",
                         hint=f"start a new run with `plait run {record.workflow_path}`")
    from engine.state.resume import running_elsewhere

    who = running_elsewhere(record)
    if who is not None:
        raise StateError(f"run {record.run_id} is still running ({who})",
                         hint="wait for it to finish or stop it first; a killed run can be "
                              "resumed")
    return record


def _new_inputs(workflow: Workflow, given: dict[str, Any], opts: RunOptions) -> dict[str, Any]:
    """The inputs of a new run. A sub-workflow's (its caller's `with:` values, as rendered)
    say so: the error is then about the calling step's `with:`, not the command line."""
    try:
        return resolve_inputs(workflow.spec.inputs, given, from_text=opts.from_text)
    except InputError as exc:
        if not opts.stack:
            raise
        raise InputError(f"sub-workflow {workflow.name} refused its inputs: {exc.message}",
                         hint="fix the `with:` of the step that calls it"
                              + (f": {exc.hint}" if exc.hint else ""), **exc.context) from None


def _restored(store: RunStore | None, previous: RunRecord, workflow: Workflow,
              redactor: Redactor) -> tuple[dict[str, StepResult], dict[str, dict[int, Any]]]:
    """Finished steps of the previous run, if the workflow did not change under them, and
    the finished items of its unfinished foreach steps that may be reused.

    The stored text had its secrets masked, so the current text is masked the same way
    before the steps are compared (the stored one again too: a record from before masking
    keeps its secrets in clear). The trade-off: a step that changed only in a literal secret
    compares equal (its result is restored), and a literal that is no longer masked (removed
    from `api_key:`/headers, or a `secrets:` value that changed) counts as a change."""
    assert store is not None
    finished = {s.step_id: s for s in store.steps(previous.run_id)
                if s.status in ("succeeded", "skipped")}
    stored = previous.meta.get("source")
    had = set(previous.inputs)  # an input declared since: no finished step could use it
    old = step_fingerprints(redactor.redact_source(stored) if isinstance(stored, str)
                            else None, had)
    new = step_fingerprints(redactor.redact_source(workflow.source.text), had)
    if old:  # a step the run's last text lacks (an earlier resume ran without it) is new
        finished = {sid: rec for sid, rec in finished.items() if sid in old}
    # a step no longer in the file is ignored (its dependants changed, if it had any)
    changed = sorted(sid for sid in finished if sid in new and old.get(sid) != new[sid])
    if changed:
        raise StateError(
            f"cannot resume run {previous.run_id}: the workflow changed for finished "
            f"step(s) {', '.join(changed)}",
            hint="start a new run (without --resume), or undo the change")
    reused = _with_reused_dependencies(
        {sid for sid in finished if sid in workflow.spec.steps}, *workflow.edges)
    preds = workflow.edges[0]
    # an unfinished foreach step's items are reused when the step is as it was and all of its
    # dependencies are reused (its items and what they render from are then the same)
    items = {sid: found for sid, found in store.step_items(previous.run_id).items()
             if sid in preds and sid not in reused and old.get(sid) is not None
             and old.get(sid) == new.get(sid) and all(p in reused for p in preds[sid])}
    stale = _stale_subworkflows(store, previous, workflow, {*finished, *items}, redactor)
    if any(sid in finished for sid in stale):
        raise StateError(
            f"cannot resume run {previous.run_id}: the sub-workflow file of finished "
            f"step(s) {', '.join(s for s in stale if s in finished)} (or a file it calls) "
            "changed since it ran",
            hint="start a new run (without --resume), or undo the change")
    for sid in stale:  # an unfinished step's finished items are stale too
        del items[sid]
    return {sid: StepResult(sid, workflow.kind(sid), rec.status, output=rec.output,
                            error=rec.error, attempts=rec.attempts, usage=rec.usage,
                            cost=rec.cost, started_at=rec.started_at,
                            finished_at=rec.finished_at, reason=f"restored from a previous "
                            f"attempt of run {previous.run_id}")
            for sid, rec in finished.items() if sid in reused}, items


def _stale_subworkflows(store: RunStore, previous: RunRecord, workflow: Workflow,
                        step_ids: set[str], redactor: Redactor) -> list[str]:
    """Those of `step_ids` that are `workflow:` steps whose child runs ran another text of
    their file (or of a file it calls) than the one there now, sorted."""
    calls = sorted(sid for sid in step_ids if sid in workflow.spec.steps
                   and workflow.kind(sid) == "workflow")
    if not calls:  # no need to read the child runs
        return []
    from engine.executor.handlers.subworkflow import changed_children

    return changed_children(store, previous.run_id, workflow, calls, redactor.redact_source)


def _with_reused_dependencies(finished: set[str], preds: Mapping[str, list[str]],
                              succs: Mapping[str, list[str]]) -> set[str]:
    """The finished steps whose dependencies are all reused too. A step that ran on after a
    dependency failed (continue_on_error) saw that failure; when the resume runs the
    dependency again, the step's old result is stale, so it runs again as well (and so on
    down the graph)."""
    reused = set(finished)
    pending = list(reused)
    while pending:
        sid = pending.pop()
        if sid in reused and any(p not in reused for p in preds[sid]):
            reused.discard(sid)
            pending.extend(succs[sid])
    return reused
