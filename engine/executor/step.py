"""Running one step: `if`, `foreach`, rendering, retries and timeouts, and its record."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from engine.deadlines import MODEL_TURN, attempt_scope, run_slots
from engine.errors import ExpressionError, PlaitError, RunError, StepError
from engine.executor.context import RunContext, failed_at
from engine.executor.current import current_item, current_step
from engine.executor.events import (
    AttemptFinished,
    AttemptStarted,
    ItemFinished,
    ItemStarted,
    StepRetrying,
    StepStarted,
)
from engine.executor.handlers import Outcome, get_handler
from engine.executor.items import item_key, note_finished, reused
from engine.executor.result import StepResult
from engine.executor.retry import call_with_retry, error_kind
from engine.expr import truthy
from engine.jsontext import typed

if TYPE_CHECKING:
    from engine.spec.workflow import Workflow

_CONTROL = ("if", "foreach")


class _Attempts:
    """Counts attempts across retries (and foreach items) and reports retries as events."""

    __slots__ = ("count", "index", "items", "notes", "rc", "started", "step_id")

    def __init__(self, rc: RunContext, step_id: str, started: float = 0.0,
                 index: int | None = None) -> None:
        self.rc, self.step_id, self.count = rc, step_id, 0
        #: when the step started (a step's own count; its foreach items' counts leave it 0)
        self.started = started
        #: one note per retry, for the step's record (none on the usual path)
        self.notes: list[dict[str, Any]] = []
        #: a foreach item's index (its retry notes say which item)
        self.index = index
        #: a foreach step's: each item's counter, in item order
        self.items: list[_Attempts | None] | None = None

    def all_notes(self) -> list[dict[str, Any]]:
        """The retry notes of the step and, in item order, of its foreach items (the record
        does not depend on which item retried first: replays compare equal)."""
        if self.items is None:
            return self.notes
        return [*self.notes, *(n for item in self.items if item is not None
                               for n in item.notes)]

    async def direct(self, fn: Any) -> Any:
        """The attempt wrapper of a step without retries or timeout: just the call."""
        self.count += 1
        return await fn()

    direct.trivial = True  # type: ignore[attr-defined]  # lets the LLM fast path run

    def on_retry(self, attempt: int, delay: float, error: BaseException) -> None:
        # no delay: it has jitter, and a replayed run must record the same as the recording
        note = {"event": "retry", "attempt": attempt, "error": str(error),
                "kind": error_kind(error)}
        if self.index is not None:
            note["item"] = self.index
        self.notes.append(note)
        if self.rc.listening:
            self.rc.emit(StepRetrying(self.rc.run_id, time.time(), self.step_id, attempt + 1,
                                      delay, str(error), error_kind(error), self.index))


class StepPlan:
    """What running a step needs that does not change within a run, worked out once."""

    __slots__ = ("cond", "fields", "kind", "loop", "policy", "simple", "step", "timeout")

    def __init__(self, wf: Workflow, step_id: str) -> None:
        compiled = wf.steps[step_id]
        self.step = wf.step(step_id)
        self.kind = wf.kind(step_id)
        self.cond = compiled.get("if")
        self.loop = compiled.get("foreach")
        self.fields = [(name, value) for name, value in compiled.items()
                       if name not in _CONTROL]
        self.timeout = self.step.timeout if self.step.timeout is not None \
            else wf.spec.defaults.timeout
        self.policy = self.step.retry or wf.spec.defaults.retry
        #: no retries and no timeout: the handler's call needs no wrapper
        self.simple = (self.policy is None or self.policy.attempts == 1) and \
            self.timeout is None


def plan_of(rc: RunContext, step_id: str) -> StepPlan:
    plan = rc.plans.get(step_id)
    if plan is None:
        plan = rc.plans[step_id] = StepPlan(rc.workflow, step_id)
    return plan


async def execute_step(rc: RunContext, step_id: str) -> StepResult:
    """Run one step to a StepResult. Step failures are returned, never raised."""
    started = time.time()
    # in rc.running until the scheduler has its result: a step the run stops (cancels) keeps
    # its start, attempts and retry notes in the record
    attempts = rc.running[step_id] = _Attempts(rc, step_id, started)
    plan: StepPlan = rc.plans.get(step_id) or plan_of(rc, step_id)
    kind = plan.kind
    # the tasks of foreach items inherit it
    token = current_step.set(step_id) if rc.names_steps else None
    rendered: Any = None
    try:
        ctx = rc.expr_context
        if plan.cond is not None and not truthy(_render(rc, step_id, "if", plan.cond, ctx)):
            return StepResult(step_id, kind, "skipped", started_at=started,
                              finished_at=time.time(), reason="condition was false")
        if rc.listening:
            rc.emit(StepStarted(rc.run_id, started, step_id, kind))
        if plan.loop is not None:
            outcome = await _foreach(rc, step_id,
                                     _render(rc, step_id, "foreach", plan.loop, ctx), attempts)
        else:  # the handler is awaited right here: one coroutine less to suspend and resume
            rendered, attempt = _prepare(rc, plan, step_id, ctx, attempts)
            # resolved here, inside the try: a handler whose optional SDK is missing fails
            # its step with that error rather than the run
            handler = get_handler(kind)
            outcome = await handler(rc, step_id, plan.step, rendered, attempt)
            outcome.rendered = rendered
    except Exception as exc:
        audit = getattr(exc, "audit", None)
        return StepResult(step_id, kind, "failed", error=_error_dict(rc, step_id, exc),
                          usage=getattr(exc, "spent_usage", None) or {},
                          cost=getattr(exc, "spent_cost", None) if getattr(
                              exc, "spent_usage", None) else 0.0,
                          attempts=max(attempts.count, 1), started_at=started,
                          finished_at=time.time(), rendered=rendered,
                          audit=_audits(audit),
                          notes=[*attempts.all_notes(), *(getattr(exc, "step_notes", None)
                                                          or [])])
    finally:
        if token is not None:
            current_step.reset(token)
    return StepResult(step_id, kind, "succeeded", output=outcome.output,
                      attempts=max(attempts.count, 1), usage=outcome.usage, cost=outcome.cost,
                      started_at=started, finished_at=time.time(),
                      rendered=outcome.rendered, audit=outcome.audit,
                      notes=_with_retries(attempts, outcome.notes))


def _with_retries(attempts: _Attempts, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    retries = attempts.all_notes()
    return [*retries, *notes] if retries else notes


def _prepare(rc: RunContext, plan: StepPlan, step_id: str, ctx: dict[str, Any],
             attempts: _Attempts) -> tuple[dict[str, Any], Any]:
    """The step's (or foreach item's) rendered fields and the attempt wrapper to call with."""
    rendered = {name: _render(rc, step_id, name, value, ctx) for name, value in plan.fields}
    if plan.simple:
        return rendered, attempts.direct  # no retry, no timeout: nothing to wrap
    return rendered, _retrying(rc, step_id, ctx, attempts, plan.policy, plan.timeout)


def _retrying(rc: RunContext, step_id: str, ctx: dict[str, Any], attempts: _Attempts,
              policy: Any, timeout: float | None) -> Any:
    """The attempt wrapper of a step with a retry policy or a timeout."""
    index = ctx.get("index") if "item" in ctx else None
    # attempts are only worth their own events (and spans) when there can be more than one
    announce = rc.listening and policy is not None and policy.attempts > 1

    tries: dict[object | None, int] = {}

    async def attempt(fn: Any) -> Any:
        async def counted() -> Any:
            # an LLM step wraps each model call: its retries and fallbacks are attempts, its
            # turns (an agent's, a re-ask) are not: the most tries one turn took
            turn = MODEL_TURN.get()
            tries[turn] = number = tries.get(turn, 0) + 1
            attempts.count = max(attempts.count, number)
            if not announce:
                return await fn()
            rc.emit(AttemptStarted(rc.run_id, time.time(), step_id, number, index))
            scope = attempt_scope.get() if timeout is not None else None
            try:
                value = await fn()
            except BaseException as exc:
                # the step's timeout cancels the attempt from outside (call_with_retry's
                # deadline scope): here it is a cancellation, but it is that timeout. Not
                # the time spent: time waiting for capacity does not count, and the run
                # stopping cancels an attempt without its scope
                timed_out = scope is not None and scope.cancel_called
                failure = (f"timed out after {timeout:g}s", "timeout") if timed_out and \
                    isinstance(exc, anyio.get_cancelled_exc_class()) else _failure(exc)
                rc.emit(AttemptFinished(rc.run_id, time.time(), step_id, number, index,
                                        *failure))
                raise
            rc.emit(AttemptFinished(rc.run_id, time.time(), step_id, number, index))
            return value
        return await call_with_retry(counted, policy, timeout=timeout,
                                     on_retry=attempts.on_retry, step_id=step_id)
    return attempt


def _failure(exc: BaseException) -> tuple[str, str]:
    """(message, kind) of an item or attempt that ended with `exc`: a cancellation (the run
    stopped) is `cancelled`, not the cancel scope's repr."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled", "cancelled"
    return str(exc) or type(exc).__name__, error_kind(exc)


async def _foreach(rc: RunContext, step_id: str, items: Any, attempts: _Attempts) -> Outcome:
    if isinstance(items, dict):
        items = [[key, value] for key, value in items.items()]  # as documented: lists
    if not isinstance(items, list | tuple):
        where = rc.workflow.source.location(("steps", step_id, "foreach"))
        raise ExpressionError(f"{where}: step {step_id!r}: foreach needs a list, got "
                              f"{typed(items)}", step=step_id,
                              field="foreach",
                              hint="make the foreach expression return a list; a mapping is "
                                   "iterated as [key, value] pairs")
    return await _Foreach(rc, step_id, len(items), attempts).run(items)


class _Foreach:
    """The items of one foreach step, each in its own task (at most `max_parallel`, else the
    run's `concurrency`, at once). What they produce is kept per item and put together in
    item order: the record does not depend on which item finished first (replays compare
    equal). A resume's finished items (the same value at the same index) are not run again."""

    def __init__(self, rc: RunContext, step_id: str, count: int, attempts: _Attempts) -> None:
        self.rc, self.step_id, self.attempts = rc, step_id, attempts
        self.plan: StepPlan = rc.plans[step_id]
        self.outcomes: list[Outcome | None] = [None] * count
        width = self.plan.step.max_parallel or rc.options.concurrency or \
            rc.workflow.spec.concurrency
        self.limiter = anyio.CapacityLimiter(max(min(width, count), 1))
        self.counts: list[int] = []
        #: each item's attempt counter: their retry notes reach the record, failed run or not
        attempts.items = [None] * count
        self.recorded = rc.restored_items.pop(step_id, {})
        #: the run is recorded: each finished item is written, under its value's digest
        self.keyed = rc.writer.store is not None
        self.restored = 0
        #: an item failed: the step has failed, no other item starts
        self.failed = False

    async def run(self, items: list[Any] | tuple[Any, ...]) -> Outcome:
        try:
            async with anyio.create_task_group() as tg:
                for index, item in enumerate(items):
                    tg.start_soon(self._one, index, item)
        except BaseExceptionGroup as group:
            raise self._spent(_first_error(group)) from None
        return self._outcome()

    def _spent(self, error: BaseException) -> BaseException:
        """`error`, which failed the step, carrying what the items that finished before it
        spent on top of its own item's spend, and their audit entries before its own: the
        step's record and the run's totals keep tokens and cost that were paid for, and
        every command that ran."""
        audit = [entry for o in self.outcomes if o is not None for entry in o.audit]
        if audit and isinstance(error, Exception):
            error.audit = [*audit, *_audits(getattr(error, "audit", None))]  # type: ignore[attr-defined]
        done = [o for o in self.outcomes if o is not None and o.usage]
        if not done or not isinstance(error, RunError):
            return error
        usage = dict(error.spent_usage or {})
        cost = error.spent_cost if usage else None
        for outcome in done:
            for key, value in outcome.usage.items():
                usage[key] = usage.get(key, 0) + value
            cost = _add_cost(cost, outcome.cost)
        error.spent_usage, error.spent_cost = usage, cost
        return error

    async def _one(self, index: int, item: Any) -> None:
        key = item_key(self.rc, item) if self.keyed else ""
        record = self.recorded.get(index)
        if record is not None and record.key == key:
            self.outcomes[index] = reused(record)
            self.restored += 1
        else:
            self.outcomes[index] = await self._run(index, item, key)

    async def _run(self, index: int, item: Any, key: str) -> Outcome | None:
        rc, step_id, plan = self.rc, self.step_id, self.plan
        current_item.set(index)  # this item's own task: nothing outside it sees the value
        run_slots.set(None)  # its waits for capacity do not free its step's run slot
        async with self.limiter:
            if self.failed:  # given the slot the failed item left, before the cancellation
                return None
            began = time.time()
            ctx = {**rc.expr_context, "item": item, "index": index}
            mine = _Attempts(rc, step_id, index=index)
            self.attempts.items[index] = mine  # type: ignore[index]
            if rc.listening:
                rc.emit(ItemStarted(rc.run_id, began, step_id, index))
            try:
                fields, attempt = _prepare(rc, plan, step_id, ctx, mine)
                outcome = await get_handler(plan.kind)(rc, step_id, plan.step, fields, attempt)
                outcome.rendered = fields
            except BaseException as exc:
                self.failed = True
                if rc.listening:
                    rc.emit(ItemFinished(rc.run_id, time.time(), step_id, index,
                                         *_failure(exc)))
                if isinstance(exc, Exception):
                    raise _of_item(exc, step_id, index) from exc.__cause__
                raise
            finally:
                self.counts.append(mine.count)
                self.attempts.count = max(self.counts)
            if rc.listening:
                rc.emit(ItemFinished(rc.run_id, time.time(), step_id, index))
            if self.keyed:
                note_finished(rc, step_id, index, key, outcome, mine.count, began)
        return outcome

    def _outcome(self) -> Outcome:
        from engine.providers.pricing import add_cost  # here: the executor loads no provider

        done = [o for o in self.outcomes if o is not None]  # all of them: none failed
        usage: dict[str, int] = {}
        cost: float | None = None  # the known costs of the items (None: none is known)
        for outcome in done:
            for key, value in outcome.usage.items():
                usage[key] = usage.get(key, 0) + value
            cost = add_cost(cost, outcome.cost)
        unpriced = any(o.cost is None for o in done)
        restored = [{"event": "items_restored", "count": self.restored}] if self.restored \
            else []
        return Outcome(output=[o.output for o in done], usage=usage,
                       cost=0.0 if cost is None and not unpriced else cost,
                       audit=[entry for o in done for entry in o.audit],
                       rendered=[o.rendered for o in done],
                       notes=[*restored, *(note for o in done for note in o.notes)])


def _add_cost(total: float | None, cost: float | None) -> float | None:
    from engine.providers.pricing import add_cost  # here: the executor loads no provider

    return add_cost(total, cost)


def _of_item(exc: Exception, step_id: str, index: int) -> Exception:
    """A foreach item's error, saying which item failed (in its message and as `item`)."""
    if isinstance(exc, PlaitError):
        if "item" not in exc.context:
            exc.context["item"] = index
            exc.message = f"item {index}: {exc.message}"
            exc.args = (exc.message,)
        return exc
    return _unexpected(exc, f"item {index}: {type(exc).__name__}: {exc}", step=step_id,
                       item=index)


def _unexpected(exc: BaseException, message: str, **context: Any) -> StepError:
    """`exc`, an exception that is not one of plait's, as a StepError of the kind that
    `retry.on` matched it by (`error`, or `timeout` for a TimeoutError): its record must not
    name a kind (`step`) that retrying it never looked at."""
    error = StepError(message, **context)
    error.kind = error_kind(exc)
    return error


def _first_error(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _render(rc: RunContext, step_id: str, name: str, compiled: Any, ctx: dict[str, Any]) -> Any:
    try:
        return compiled.render(ctx)
    except ExpressionError as exc:
        where, field = failed_at(rc.workflow, ("steps", step_id, name), exc)
        index = ctx.get("index") if "item" in ctx else None  # a foreach item's
        item = "" if index is None else f", item {index}"
        raise ExpressionError(f"{where}: step {step_id!r}{item}, `{field}`: {exc.message}",
                              step=step_id, field=name, item=index, hint=exc.hint) from exc


def _audits(audit: Any) -> list[dict[str, Any]]:
    """A failed step's audit entries: those a handler gathered over its attempts (a list), or
    the one of the command that failed."""
    if audit is None:
        return []
    return [_as_dict(entry) for entry in audit] if isinstance(audit, list) \
        else [_as_dict(audit)]


def _as_dict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value if isinstance(value, dict) else {"audit": str(value)}


def _error_dict(rc: RunContext, step_id: str, exc: BaseException) -> dict[str, Any]:
    if not isinstance(exc, PlaitError):
        exc = _unexpected(exc, f"{type(exc).__name__}: {exc}", step=step_id)
    data = exc.to_dict()
    data.setdefault("step", step_id)
    if isinstance(exc, RunError) and "message" in data:
        data["message"] = str(data["message"])
    redacted: dict[str, Any] = rc.services.redact(data)
    return redacted
