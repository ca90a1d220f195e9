"""`llm:` steps: one model call, structured output, or an agent loop over MCP tools."""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, is_dataclass, replace
from typing import TYPE_CHECKING, Any

from engine.errors import RunError
from engine.executor.current import current_item
from engine.executor.events import StepChunk, StepFallback
from engine.executor.handlers import Attempt, Outcome
from engine.providers import LLMResponse, LLMResult, Usage, build_request, run_llm
from engine.providers.pricing import add_cost
from engine.secrets import LineRedactor
from engine.spec.models import LLMStep

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.spec.models import AnyStep


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    assert isinstance(step, LLMStep)
    registry = rc.services.providers()
    get = rendered.get
    request = build_request(prompt=get("prompt"), system=get("system"),
                            messages=get("messages"), images=get("images") or (),
                            model=get("model") or step.model, options=get("options"),
                            output_schema=step.output_schema)
    tools = await rc.services.tool_caller(step.tools, step_id, step.policy) \
        if step.tools else None
    notes: list[dict[str, Any]] = []
    # callbacks only where they can fire: without them run_llm takes its fast path
    watch = bool(tools or step.output_schema or registry.fallbacks(step.llm))
    on_event = _events(rc, step_id, notes) if watch else None
    try:
        if ((step.stream or rc.options.stream) and rc.listening) or \
                step.output_schema is not None:
            result = await _watched(rc, step_id, step, registry, request, tools, attempt,
                                    on_event)
        else:  # a plain step: nothing added to run_llm's fast path
            result = await run_llm(registry, step.llm, request, tools=tools,
                                   max_turns=step.max_turns,
                                   attempt=None if getattr(attempt, "trivial", False)
                                   else attempt, on_event=on_event)
    except Exception as exc:
        # a failed step's record still says what happened: fallbacks, re-asks, tool calls,
        # and the audit entry of every tool call (refused and failed ones too)
        calls = getattr(exc, "tool_calls", ())
        if tools is not None:
            exc.audit = tools.audit(calls)  # type: ignore[attr-defined]
        if not isinstance(exc, RunError):
            raise
        if calls:
            notes.append(_tools_note(calls))
        if notes or exc.step_notes:
            exc.step_notes = _for_item([*(exc.step_notes or []), *notes])
        raise
    outcome = _outcome(result, notes)
    if outcome.notes:  # (none on the usual path)
        outcome.notes = _for_item(outcome.notes)
    if tools is not None:
        outcome.audit = tools.audit(result.tool_calls)
    return outcome


async def _watched(rc: RunContext, step_id: str, step: LLMStep, registry: Any, request: Any,
                   tools: Any, attempt: Attempt, on_event: Any) -> LLMResult:
    """A streamed step (chunks redacted over a window, flushed at the end) or one with
    output_schema (rerun whole when its retry policy lists output_invalid)."""
    chunks = _Chunks(rc, step_id) if (step.stream or rc.options.stream) and rc.listening \
        else None
    call = functools.partial(run_llm, registry, step.llm, request, tools=tools,
                             max_turns=step.max_turns, on_chunk=chunks, on_event=on_event)
    try:
        if step.output_schema is not None and tools is None and \
                _reruns_conversations(rc, step_id, attempt):
            # the whole conversation (re-asks included) is one attempt, so an OutputInvalid
            # after the re-asks starts it again; its calls are not retried on their own.
            # Never with tools: a rerun would call them again, and they may have effects
            spending = _Spending(call, registry.prices)
            try:
                result: LLMResult = await attempt(spending)
            except RunError as exc:  # e.g. a StepTimeout made by the retry wrapper itself
                if exc.spent_usage is None and spending.usage:
                    exc.spent_usage, exc.spent_cost = dict(spending.usage), spending.cost
                raise
            return result
        return await call(attempt=None if getattr(attempt, "trivial", False) else attempt)
    finally:
        if chunks is not None:
            chunks.flush()


def _reruns_conversations(rc: RunContext, step_id: str, attempt: Attempt) -> bool:
    if getattr(attempt, "trivial", False):
        return False
    policy = rc.plans[step_id].policy  # planned before the step's handler runs
    return policy is not None and "output_invalid" in policy.on


class _Spending:
    """A conversation to call once per attempt, adding up what the failed ones spent: onto
    the next one's result, or onto the last error."""

    def __init__(self, call: Any, prices: Any) -> None:
        self._call = call
        self._prices = prices
        self._usage: dict[str, int] = {}
        self._cost: float | None = None
        self._notes: list[dict[str, Any]] = []  # the failed attempts' (usage_partial, ...)

    @property
    def usage(self) -> dict[str, int]:
        """What the attempts that failed so far spent."""
        return self._usage

    @property
    def cost(self) -> float | None:
        return self._cost

    async def __call__(self) -> LLMResult:
        answered: list[LLMResponse] = []
        try:
            result: LLMResult = await self._call(attempt=None, answered=answered)
        except RunError as exc:
            self._add(exc.spent_usage or {}, exc.spent_cost)
            exc.spent_usage, exc.spent_cost = dict(self._usage), self._cost
            mine = exc.step_notes or []
            exc.step_notes = [*self._notes, *mine] or None
            self._notes.extend(mine)
            raise
        except BaseException:  # cancelled (the attempt's timeout): its replies were paid for
            for response in answered:
                self._add(response.usage.to_dict(), self._prices.cost(response.model,
                                                                      response.usage))
            raise
        if self._usage:
            self._add(result.usage.to_dict(), result.cost)
            result = replace(result, usage=Usage(**self._usage), cost=self._cost)
        if self._notes:
            result = replace(result, notes=(*self._notes, *result.notes))
        return result

    def _add(self, usage: dict[str, int], cost: float | None) -> None:
        for key, value in usage.items():
            self._usage[key] = self._usage.get(key, 0) + value
        self._cost = add_cost(self._cost, cost)


class _Chunks:
    """Streamed text as StepChunk events, redacted over a window: a secret split across two
    chunks is held back until it is whole, then masked; the rest is flushed at the end."""

    def __init__(self, rc: RunContext, step_id: str) -> None:
        self._rc, self._step_id = rc, step_id
        self._index = current_item.get()  # a foreach item's text says which item it is
        self._lines = LineRedactor(rc.services.redactor, max_pending=0)

    def __call__(self, chunk: Any) -> None:
        if chunk.text_delta:
            self._emit(self._lines.feed(chunk.text_delta))

    def flush(self) -> None:
        self._emit(self._lines.flush())

    def _emit(self, text: str) -> None:
        if text:
            self._rc.emit(StepChunk(self._rc.run_id, time.time(), self._step_id, text,
                                    self._index))


def _events(rc: RunContext, step_id: str, notes: list[dict[str, Any]]) -> Any:
    def on_event(event: Any) -> None:
        if event.kind in ("fallback", "reask"):
            notes.append({"event": event.kind, **event.data})
        if event.kind == "fallback" and rc.listening:
            data = event.data
            rc.emit(StepFallback(rc.run_id, time.time(), step_id, data["from"], data["to"],
                                 str((data.get("error") or {}).get("message", ""))))
    return on_event


def _outcome(result: LLMResult, notes: list[dict[str, Any]]) -> Outcome:
    if result.notes:  # usage a stream did not report (in full)
        notes.extend(result.notes)
    if result.tool_calls:
        notes.append(_tools_note(result.tool_calls))
    if result.responses and result.responses[-1].finish_reason == "length":
        notes.append({"event": "cut_off", "finish_reason": "length",
                      "hint": "the reply stopped at the token limit: raise max_tokens"})
    if result.fallbacks_tried:
        notes.append({"event": "answered_by", "provider": result.provider,
                      "after": list(result.fallbacks_tried)})
    return Outcome(output=result.output, usage=result.usage.to_dict(), cost=result.cost,
                   notes=notes)


def _for_item(notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A foreach item's notes say which item they are of (its `item` index), as its retry
    notes do: the record lists every item's tool calls, fallbacks and re-asks together."""
    index = current_item.get()
    if index is None:
        return notes
    return [note if "item" in note else {**note, "item": index} for note in notes]


def _tools_note(records: Any) -> dict[str, Any]:
    return {"event": "tools", "calls": [_call_note(c) for c in records]}


#: how much of each tool result the step's record keeps (the model got up to
#: MAX_TOOL_RESULT_CHARS): a record is for reading what happened, not a copy of every file
NOTE_OUTPUT_CHARS = 2000


def _call_note(record: Any) -> dict[str, Any]:
    if not (is_dataclass(record) and not isinstance(record, type)):
        return {"call": str(record)}
    note = asdict(record)
    output = note.get("output")
    if isinstance(output, str) and len(output) > NOTE_OUTPUT_CHARS:
        note["output"] = output[:NOTE_OUTPUT_CHARS] + "..."
        note["output_chars"] = len(output)
    return note
