"""`workflow:` steps: run another workflow file with its own inputs; its outputs become this
step's output. Recursion is refused."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import InputError, PlaitError, RunError, StateError, StepError
from engine.executor.current import current_item
from engine.spec.subworkflows import MAX_DEPTH  # validate refuses the same depth

if TYPE_CHECKING:
    from engine.executor.context import RunContext, RunOptions
    from engine.executor.handlers import Attempt, Outcome
    from engine.executor.result import RunResult
    from engine.executor.run import RunControl
    from engine.secrets import Redactor
    from engine.spec.models import AnyStep
    from engine.spec.workflow import Workflow
    from engine.state import RunRecord, RunStore

__all__ = ("MAX_DEPTH", "changed_children", "handle")

log = logging.getLogger("plait.executor")


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    from engine.executor.handlers import Outcome
    from engine.spec.loader import load

    target = (rc.workflow.base_dir / str(getattr(step, "workflow", ""))).resolve()
    stack = _stack(rc, step_id, target)
    child = load(target)
    index = current_item.get()
    options = _child_options(rc, stack, step_id, index)
    inputs = rendered.get("with") or {}
    #: the run an earlier attempt of this (resumed) run left unfinished: the first attempt
    #: resumes it, so its finished steps do not run again; a retry starts afresh
    left = _left_unfinished(rc, step_id, index)
    notes: list[dict[str, Any]] = []
    if left is not None and left.workflow_name != child.name:  # the step calls another now
        notes.append({"event": "subworkflow_rerun", "run": left.run_id, "reason": f"the step "
                      f"now calls workflow {child.name}, not {left.workflow_name}"})
        left = None
    if left is not None:
        _refuse_if_running(left, child.name, step_id)
    spent = _Spent()  # what the child runs of attempts that failed spent

    async def once() -> tuple[dict[str, Any], dict[str, int], float | None]:
        nonlocal left
        earlier, left = left, None
        if earlier is not None and earlier.status == "succeeded":
            if _still_fits(earlier, child, inputs, rc.services.redactor):
                # it finished, but this step's own record was not written before the stop
                notes.append({"event": "subworkflow_reused", "run": earlier.run_id})
                return earlier.outputs or {}, dict(earlier.usage), earlier.cost
            notes.append({"event": "subworkflow_rerun", "run": earlier.run_id,
                          "reason": "its file or its inputs changed since it succeeded, or "
                                    "its record holds masked secrets"})
            earlier = None
        result = await _run_child(child, inputs, options, earlier, notes,
                                  rc.services.redact, spent)
        if not result.ok:  # raised here, inside the attempt: `retry.on: [step]` reruns it
            spent.add(result)
            error = result.error or {}
            where = f" in step {error['step']}" if error.get("step") else ""
            raise StepError(f"sub-workflow {child.name} {result.status}{where}: "
                            f"{error.get('message', result.status)}", step=step_id,
                            hint=error.get("hint"), run=result.run_id,
                            child_kind=error.get("kind"))
        return result.outputs, result.usage, result.cost

    try:
        outputs, usage, cost = await attempt(once)
    except RunError as exc:  # the record of the failed step says which child run it resumed
        if notes:
            exc.step_notes = [*(exc.step_notes or []), *notes]
        if spent.usage:
            exc.spent_usage, exc.spent_cost = spent.usage, spent.cost
        raise
    if spent.usage:  # earlier attempts' child runs failed: what they spent counts too
        usage, cost = spent.total(usage, cost)
    return Outcome(output=outputs, usage=usage, cost=cost, notes=notes)


class _Spent:
    """The usage and cost of the child runs that failed or were stopped (a timeout): their
    model calls were paid for, so the step's record (failed or retried) keeps them."""

    def __init__(self) -> None:
        self.usage: dict[str, int] = {}
        self.cost: float | None = None

    def add(self, result: RunResult) -> None:
        if result.usage:
            self.usage, self.cost = self.total(result.usage, result.cost)

    def total(self, usage: dict[str, int], cost: float | None,
              ) -> tuple[dict[str, int], float | None]:
        from engine.providers.pricing import add_cost

        summed = dict(self.usage)
        for key, value in usage.items():
            summed[key] = summed.get(key, 0) + value
        return summed, add_cost(self.cost, cost)


def _stack(rc: RunContext, step_id: str, target: Path) -> tuple[str, ...]:
    """The files above the child `target` (this one last), refusing recursion and nesting
    deeper than MAX_DEPTH."""
    stack = (*rc.options.stack, str(rc.workflow.path.resolve()))
    if str(target) in stack:
        chain = " -> ".join([*stack, str(target)])
        raise StepError(f"sub-workflow recursion: {chain}", step=step_id,
                        hint="a workflow cannot call itself, directly or through others")
    if len(stack) >= MAX_DEPTH:
        top = Path(stack[0]).parent
        chain = " -> ".join(Path(os.path.relpath(f, top)).as_posix() for f in (*stack, str(target)))
        raise StepError(f"sub-workflows nested deeper than {MAX_DEPTH} levels: {chain}",
                        step=step_id, hint="call fewer levels deep: let a workflow call the "
                        "files below its child itself")
    return stack


def _child_options(rc: RunContext, stack: tuple[str, ...], step_id: str,
                   index: int | None) -> RunOptions:
    """The child run's options: this run's, as a run of its own started by step `step_id`
    (foreach item `index`)."""
    store = rc.writer.store
    return replace(rc.options, stack=stack, parent_run_id=rc.run_id, resume=None,
                   # recorded beside its parent's run, not in a database beside its file
                   state_location=rc.options.state_location or (
                       store.path if store is not None else None),
                   run_id=None, services=None, from_text=frozenset(), listeners=[],
                   inherited_secrets=(*rc.options.inherited_secrets,
                                      *rc.services.secrets.values()),
                   parent_step=step_id, parent_item=index)


def _left_unfinished(rc: RunContext, step_id: str, index: int | None) -> RunRecord | None:
    """The newest run of this sub-workflow step (foreach item) that an earlier attempt of
    this run started, when this run is a resume. None when there is none, or when a cassette
    records or replays the run (it must hold every call of the child again)."""
    store = rc.writer.store
    if rc.options.resume is None or store is None or rc.names_steps:
        return None
    if rc.left_children is None:
        rc.left_children = {where: record  # oldest first: the newest wins
                            for record in store.child_runs(rc.run_id)
                            if (where := record.called_by) is not None}
    found: RunRecord | None = rc.left_children.pop((step_id, index), None)
    return found


def changed_children(store: RunStore, run_id: str, workflow: Workflow,
                     step_ids: Iterable[str], stored: Callable[[str], str]) -> list[str]:
    """Those of `step_ids` (`workflow:` steps of `workflow` that finished, in run `run_id`)
    whose sub-workflow file, or a file it calls in turn, is no longer the text their child
    run ran: the output recorded for them would be stale. A step with no child run on record
    cannot be checked and is not named. `stored` masks a text as run records keep it."""
    children = store.child_runs(run_id)
    check = _Staleness(store, stored)
    return [sid for sid in step_ids if check.changed(children, workflow, sid, 1)]


class _Staleness:
    """Compares the child runs of `workflow:` steps with their files as they are now, each
    file read once however many runs ran it."""

    def __init__(self, store: RunStore, stored: Callable[[str], str]) -> None:
        self.store = store
        self.stored = stored  # masks a text as run records keep it
        self.loaded: dict[Path, Workflow | None] = {}

    def changed(self, children: list[RunRecord], parent: Workflow, sid: str,
                depth: int) -> bool:
        path = getattr(parent.spec.steps.get(sid), "workflow", None)
        if not path or depth > MAX_DEPTH:
            return False
        target = (parent.base_dir / str(path)).resolve()
        ran = _outputs_from(children, sid, str(target))
        if not ran:
            return False
        now = self._load(target)
        if now is None or any(_ran_other_text(run, now, self.stored) for run in ran):
            return True
        calls = [step_id for step_id, step in now.spec.steps.items()
                 if getattr(step, "workflow", None)]
        return bool(calls) and any(
            self.changed(grand, now, step_id, depth + 1)
            for grand in (self.store.child_runs(run.run_id) for run in ran)
            for step_id in calls)

    def _load(self, target: Path) -> Workflow | None:
        """The file as it is now; None when it is gone, or broken now."""
        from engine.spec.loader import load

        if target not in self.loaded:
            try:
                self.loaded[target] = load(target)
            except (PlaitError, OSError):
                self.loaded[target] = None
        return self.loaded[target]


def _ran_other_text(run: RunRecord, now: Workflow, stored: Callable[[str], str]) -> bool:
    """The record keeps the hash of the text a run was created with, and the text its last
    resume ran (masked) when that differs."""
    if run.spec_hash == now.spec_hash:
        return False
    text = run.meta.get("source")
    return not isinstance(text, str) or stored(text) != stored(now.source.text)


def _outputs_from(children: list[RunRecord], sid: str, target: str) -> list[RunRecord]:
    """The child runs whose outputs step `sid` took: the newest succeeded one of each of its
    foreach items (by the step that started it; a record from before runs noted that, by
    the child's file)."""
    newest: dict[Any, RunRecord] = {}
    for run in children:  # oldest first: the newest wins
        where = run.called_by
        if run.status != "succeeded":
            continue
        if where is not None:
            if where[0] == sid:
                newest[where[1]] = run
        elif run.workflow_path == target:
            newest[run.run_id] = run
    return list(newest.values())


def _refuse_if_running(earlier: RunRecord, name: str, step_id: str) -> None:
    """A child run another live process still runs (its parent's record ended, its own did
    not) is neither resumed nor run again beside itself: its steps would run twice."""
    from engine.state.resume import running_elsewhere

    who = running_elsewhere(earlier)
    if who is not None:
        raise StepError(f"sub-workflow {name}: its run {earlier.run_id} from before is still "
                        f"running ({who})",
                        step=step_id, run=earlier.run_id,
                        hint="wait for it to finish, or stop that process, then resume this "
                             "run again")


def _still_fits(earlier: RunRecord, child: Workflow, inputs: dict[str, Any],
                redactor: Redactor) -> bool:
    """Whether a child run that succeeded may stand for this step now: the same file text,
    the same inputs, and nothing masked in its record (a masked input cannot be compared, a
    masked output is not the value the run produced)."""
    from engine.executor.inputs import MASKED_INPUTS, resolve_inputs
    from engine.secrets import MASK

    if earlier.meta.get(MASKED_INPUTS) or _ran_other_text(earlier, child,
                                                          redactor.redact_source):
        return False
    if MASK in json.dumps(earlier.outputs, default=str):
        return False
    try:
        return resolve_inputs(child.spec.inputs, inputs) == earlier.inputs
    except InputError:
        return False


async def _run_child(child: Workflow, inputs: dict[str, Any], options: RunOptions,
                     earlier: RunRecord | None, notes: list[dict[str, Any]],
                     redact: Callable[[Any], Any], spent: _Spent) -> RunResult:
    """Run the sub-workflow, resuming `earlier` if given. A resume the child's own checks
    refuse before anything ran (its file changed under its finished steps, its inputs
    differ now) starts a new run instead, and says so (with the caller's secrets masked:
    a refused `with:` value may hold one)."""
    from engine.executor.run import RunControl

    if earlier is not None:
        control = RunControl()
        try:
            result = await _interruptible(control, child, inputs,
                                          replace(options, resume=earlier.run_id), spent)
        except (StateError, InputError) as exc:
            if control.started is not None:
                raise
            reason = redact(exc.message)
            item = "" if options.parent_item is None else f" (item {options.parent_item})"
            log.warning("step %s%s: sub-workflow %s: run %s cannot be resumed (%s); running "
                        "it again from the start", options.parent_step, item, child.name,
                        earlier.run_id, reason)
            notes.append({"event": "subworkflow_rerun", "run": earlier.run_id,
                          "reason": reason})
        else:
            notes.append({"event": "subworkflow_resumed", "run": earlier.run_id})
            return result
    return await _interruptible(RunControl(), child, inputs, options, spent)


async def _interruptible(control: RunControl, child: Workflow, inputs: dict[str, Any],
                         options: RunOptions, spent: _Spent) -> RunResult:
    """Run the child so that cancelling this step (Ctrl-C, a failure elsewhere, a timeout)
    interrupts it (through `control`), like a run of its own: its record ends
    `interrupted`, not left `running`, and what it spent is added to `spent`."""
    from engine.executor.run import run_workflow

    outcome: list[RunResult | Exception] = []
    finished = anyio.Event()

    async def run() -> None:
        with anyio.CancelScope(shield=True):  # it stops itself when interrupted
            try:
                outcome.append(await run_workflow(child, inputs, control=control,
                                                  **_fields(options)))
            except Exception as exc:
                outcome.append(exc)
            finally:
                finished.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            try:
                await finished.wait()
            except anyio.get_cancelled_exc_class():
                control.interrupt()
                raise
    except BaseException:  # stopped (a timeout): the child has ended, with its result
        if outcome and not isinstance(outcome[0], Exception):
            spent.add(outcome[0])
        raise
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def _fields(options: Any) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(options, f.name) for f in fields(options)}
