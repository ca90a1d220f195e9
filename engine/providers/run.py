"""``run_llm``: one LLM step end to end.

It sends the request through the provider's shared limits, lets the executor's ``attempt``
wrapper retry transient errors, falls back to the provider's ``fallback`` list, validates
structured output (re-asking with the validation error), runs the agent loop when tools are
given, streams chunks to ``on_chunk`` and adds up usage and cost.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.deadlines import MODEL_TURN
from engine.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    OutputInvalid,
    ProviderError,
    RateLimited,
    RunError,
    Timeout,
    ToolError,
    Unavailable,
)
from engine.providers._errors import provider_text
from engine.providers._schema import check_schema, parse_json_reply, validation_error
from engine.providers.pricing import add_cost
from engine.providers.registry import ProviderRegistry
from engine.providers.types import (
    OUTPUT_TOOL,
    TOOL_CALL_ID,
    ZERO_USAGE,
    LLMRequest,
    LLMResponse,
    LLMStreamChunk,
    Message,
    ToolCall,
    ToolCaller,
    ToolOutput,
    Usage,
    collect_stream,
)

#: how many times a reply that does not match output_schema is sent back to the model
MAX_REASKS = 2
#: the longest tool result (characters) sent back to the model: the rest is cut, so one read
#: of a large file cannot overflow the model's context (run_llm's ``max_tool_result_chars``)
MAX_TOOL_RESULT_CHARS = 100_000
_FALLBACK_ON = (RateLimited, Unavailable, Timeout, AuthError, ContextTooLong)

Attempt = Callable[[Callable[[], Awaitable[LLMResponse]]], Awaitable[LLMResponse]]
OnChunk = Callable[[LLMStreamChunk], Any]


@dataclass(frozen=True, slots=True)
class LLMEvent:
    """Something that happened inside a step: call, fallback, tool_call, tool_result, reask."""

    kind: str
    provider: str
    data: dict[str, Any] = field(default_factory=dict)


OnEvent = Callable[[LLMEvent], Any]


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    id: str
    name: str
    arguments: dict[str, Any]
    output: str
    is_error: bool
    turn: int


@dataclass(slots=True, unsafe_hash=True)  # built per call; read-only (see types._HOT)
class LLMResult:
    output: Any
    """The reply text, or the parsed object when the request had an output_schema."""
    text: str
    responses: tuple[LLMResponse, ...]
    usage: Usage
    cost: float | None
    """USD, or None when no price is known for the model."""
    provider: str
    model: str
    fallbacks_tried: tuple[str, ...] = ()
    """Providers that failed before ``provider`` answered, in order."""
    tool_calls: tuple[ToolCallRecord, ...] = ()
    reasks: int = 0
    notes: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    """Notes for the step's record: ``usage_partial`` / ``usage_unknown`` (see _broken)."""

    @property
    def turns(self) -> int:
        return len(self.responses)


class _FallBackNow(ProviderError):
    """Stops the retry wrapper so the next provider is tried at once (not retryable)."""

    def __init__(self, cause: ProviderError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(slots=True)
class _Run:
    registry: ProviderRegistry
    chain: list[str]
    attempt: Attempt | None
    on_chunk: OnChunk | None
    on_event: OnEvent | None
    model: str | None
    max_tool_result_chars: int | None = MAX_TOOL_RESULT_CHARS
    tried: list[str] = field(default_factory=list)
    responses: list[LLMResponse] = field(default_factory=list)
    records: list[ToolCallRecord] = field(default_factory=list)
    partial: list[LLMResponse] = field(default_factory=list)
    """What streamed attempts that broke off had reported spending (usage only)."""
    notes: list[dict[str, Any]] = field(default_factory=list)
    sink: list[LLMResponse] | None = None
    """run_llm's ``answered``: every reply, and every broken stream's reported usage."""


async def run_llm(registry: ProviderRegistry, provider_name: str, request: LLMRequest, *,
                  tools: ToolCaller | None = None, max_turns: int = 8,
                  attempt: Attempt | None = None, on_chunk: OnChunk | None = None,
                  on_event: OnEvent | None = None,
                  max_tool_result_chars: int | None = MAX_TOOL_RESULT_CHARS,
                  answered: list[LLMResponse] | None = None) -> LLMResult:
    """Run one LLM step (see the module docstring) and return what it produced.

    ``attempt(fn)`` is the executor's retry wrapper: it awaits ``fn()`` (a fresh call each
    time), retries retryable errors as its policy says, and must re-raise the last error
    unchanged so the fallback chain can see it. ``max_turns`` bounds the model turns of the
    agent loop. ``on_chunk`` (sync or async) turns on streaming; ``on_event`` receives
    LLMEvents (call, fallback, tool_call, tool_result, reask). A tool result longer than
    ``max_tool_result_chars`` (None: no limit) reaches the model cut to that length, with a
    note saying so. A RunError raised after tools ran carries their records as
    ``error.tool_calls``. ``answered`` (a list) receives each reply as it comes, and the
    usage a streamed reply reported before it broke off: what was paid for even when the
    call is cancelled from outside (a timeout around it) and no error of run_llm's own can
    carry it.
    """
    provider, limiter, fallback = registry.route(provider_name)
    if (tools is None and request.output_schema is None and attempt is None and not fallback
            and on_chunk is None and on_event is None and not limiter.active
            and answered is None):
        # the hot path: one plain call (the executor's echo benchmark runs through here)
        try:
            response = await provider.generate(request)
        except RateLimited as exc:
            _paused(exc, limiter)
            raise
        if response.finish_reason == "content_filter":
            raise refused(provider_name, response, request.model)
        return LLMResult(response.text, response.text, (response,), response.usage,
                         registry.prices.cost(response.model, response.usage), provider_name,
                         response.model)
    if request.output_schema is not None:
        check_schema(request.output_schema)
    if tools is not None:
        request = replace(request, tools=(*request.tools, *tools.definitions()))
    run = _Run(registry, [provider_name, *fallback], attempt, on_chunk, on_event,
               request.model, max_tool_result_chars)
    run.sink = answered
    try:
        return await _conversation(run, request, tools, max_turns)
    except RunError as exc:
        if run.responses or run.partial:  # what the calls cost is spent, failed step or not
            usage, cost = _spent(run)
            exc.spent_usage, exc.spent_cost = usage.to_dict(), cost
        if run.notes:
            exc.step_notes = [*(exc.step_notes or []), *run.notes]
        if run.records:  # what the agent did before it failed belongs in the step's record
            exc.tool_calls = tuple(run.records)  # type: ignore[attr-defined]
        raise


async def _conversation(run: _Run, request: LLMRequest, tools: ToolCaller | None,
                        max_turns: int) -> LLMResult:
    messages = list(request.messages)
    schema = request.output_schema
    reasks = tool_turns = 0
    while True:
        response = await _call(run, replace(request, messages=tuple(messages)))
        run.responses.append(response)
        if run.sink is not None:
            run.sink.append(response)
        answered = _answering(run)  # a fallback's error is its own, not the primary's
        if response.tool_calls and tools is not None:
            tool_turns += 1
            if tool_turns >= max_turns:  # no model turn left to use the tools' results
                asked = ", ".join(dict.fromkeys(c.name for c in response.tool_calls))
                raise RunError(f"the agent loop did not finish within max_turns={max_turns} "
                               "model turns (the model kept calling tools; its last turn "
                               f"asked for {asked}, not run)",
                               hint="raise max_turns on the step or simplify the task",
                               provider=answered)
            messages.append(response.as_message())
            messages.extend(await _run_tools(run, tools, response.tool_calls, tool_turns))
            continue
        if schema is None:
            return _result(run, response.text, response.text, reasks)
        value, problem = _check_output(schema, response)
        if problem is None:
            return _result(run, value, response.text, reasks)
        if response.finish_reason == "length":  # a re-ask would be cut off again
            raise OutputInvalid(f"provider {answered!r}: the reply was cut off at the "
                                "token limit (finish reason length) before it matched "
                                f"output_schema: {problem}",
                                hint="raise max_tokens (the step's or the provider's "
                                     "options), or ask for a shorter answer",
                                provider=answered)
        reasks += 1
        _emit(run, "reask", {"error": problem, "reask": reasks})
        if reasks > MAX_REASKS:
            raise OutputInvalid(f"the reply did not match output_schema after {MAX_REASKS} "
                                f"re-asks: {problem}",
                                hint="simplify the schema or make the prompt more explicit",
                                provider=answered)
        messages.append(response.as_message())
        messages.append(Message("user", "Your reply did not match the required JSON Schema: "
                                f"{problem}. Reply again with only a JSON value that matches "
                                "the schema."))


def _check_output(schema: Any, response: LLMResponse) -> tuple[Any, str | None]:
    try:
        value = response.parsed if response.parsed is not None else (
            parse_json_reply(response.text))
    except OutputInvalid as exc:
        return None, exc.message
    return value, validation_error(schema, value)


async def _call(run: _Run, request: LLMRequest) -> LLMResponse:
    """One model call: retried by ``attempt``, falling back along the chain."""
    token = MODEL_TURN.set(object())
    try:
        return await _call_chain(run, request)
    finally:
        MODEL_TURN.reset(token)


async def _call_chain(run: _Run, request: LLMRequest) -> LLMResponse:
    last: ProviderError | None = None
    for index, name in enumerate(run.chain):
        if name in run.tried:
            continue
        req = request if index == 0 else replace(request, model=None)
        more = index + 1 < len(run.chain)
        try:
            if run.attempt is None:
                return await _call_once(run, name, req)
            return await run.attempt(functools.partial(_guarded, run, name, req, more))
        except _FallBackNow as exc:
            last = exc.cause
        except _FALLBACK_ON as exc:
            last = exc
        if not more:
            break
        run.tried.append(name)
        _emit(run, "fallback", {"from": name, "to": run.chain[index + 1],
                                "error": last.to_dict()})
    assert last is not None
    raise last


async def _guarded(run: _Run, name: str, req: LLMRequest, more: bool) -> LLMResponse:
    try:
        return await _call_once(run, name, req)
    except (AuthError, Unavailable) as exc:
        if more:
            raise _FallBackNow(exc) from exc
        raise


async def _call_once(run: _Run, name: str, req: LLMRequest) -> LLMResponse:
    provider = run.registry.get(name)
    limiter = run.registry.limiter(name)
    if run.on_event is not None:
        _emit(run, "call", {"provider": name, "model": req.model})
    if not limiter.active:
        try:
            return await _send(run, provider, req)
        except RateLimited as exc:
            _paused(exc, limiter)  # from now on everyone waits it out
            raise
    estimate = sum(len(m.text) for m in req.messages) // 4 + 1
    broken = len(run.partial)
    async with limiter.slot(estimate):
        try:
            response = await _send(run, provider, req)
        except RateLimited as exc:
            _paused(exc, limiter)
            raise
        finally:  # the tokens a broken stream reported came out of the budget too
            for spent in run.partial[broken:]:
                limiter.record_tokens(estimate, spent.usage.total_tokens)
    limiter.on_success()
    limiter.record_tokens(estimate, response.usage.total_tokens)
    return response


def _paused(exc: RateLimited, limiter: Any) -> None:
    """Pause the provider's callers after a 429; the error then carries the wait that the
    pause imposes (1 s without a Retry-After), so the retry message tells the real delay."""
    exc.retry_after = max(exc.retry_after or 0.0, limiter.on_rate_limited(exc.retry_after))


def refused(name: str, response: LLMResponse, model: str | None = None) -> BadRequest:
    """The error for a reply the vendor's content filter or safety system stopped (also a
    model's refusal): what it said so far is not an answer."""
    model = response.model or model
    return BadRequest(f"{provider_text(name, model)} did not answer: the "
                      "vendor's content filter or safety system stopped the reply (finish "
                      "reason content_filter)",
                      hint="rephrase the prompt or the input it quotes; for google, "
                           "options.safety_settings sets how strict the filter is",
                      provider=name, model=model)


async def _send(run: _Run, provider: Any, req: LLMRequest) -> LLMResponse:
    response = await _receive(run, provider, req)
    if response.finish_reason == "content_filter" and not response.tool_calls:
        raise refused(provider.name, response, req.model or getattr(provider, "model", None))
    return response


async def _receive(run: _Run, provider: Any, req: LLMRequest) -> LLMResponse:
    if run.on_chunk is None:
        response: LLMResponse = await provider.generate(req)
        return response
    chunks: list[LLMStreamChunk] = []
    try:
        async for chunk in provider.stream(req):
            chunks.append(chunk)
            result = run.on_chunk(chunk)
            if inspect.isawaitable(result):
                await result
    except BaseException as exc:  # a retry or the step's error must still count its tokens
        _broken(run, provider, req, chunks, exc)
        raise
    if chunks and all(c.usage is None for c in chunks):
        run.notes.append(_usage_note(
            "usage_unknown", provider, req, chunks, None,
            "the streamed reply ended without reporting its token usage (the provider did "
            "not report it): 0 tokens are counted for it, but the provider bills what it "
            "used"))
    try:
        response = collect_stream(chunks)
    except ValueError as exc:
        raise OutputInvalid(f"provider {provider.name!r} streamed a tool call whose arguments "
                            f"are not a valid JSON object: {exc}",
                            hint="the model wrote invalid tool arguments; retry.on: "
                                 "[output_invalid] retries it",
                            provider=provider.name) from None
    return unwrap_output_tool(response)


def _broken(run: _Run, provider: Any, req: LLMRequest, chunks: list[LLMStreamChunk],
            exc: BaseException) -> None:
    """Keep what a stream that broke off part-way had reported spending: the vendor bills
    the tokens it reported (Anthropic's input tokens come first, Gemini's usage in every
    chunk), though the output written before the break is known to none of us. A stream
    that broke before its first chunk reported nothing and is left alone."""
    if not chunks:
        return
    why = getattr(exc, "kind", None) if isinstance(exc, RunError) else None
    why = f"{why} error" if why else type(exc).__name__
    reported = [c.usage for c in chunks if c.usage is not None]
    if not reported:
        run.notes.append(_usage_note(
            "usage_unknown", provider, req, chunks, None,
            f"a streamed reply broke off ({why}) before it reported its token usage: none "
            "of its tokens are counted, but the provider may bill them"))
        return
    usage = functools.reduce(lambda a, b: a + b, reported, ZERO_USAGE)
    note = _usage_note(
        "usage_partial", provider, req, chunks, usage,
        f"a streamed reply broke off ({why}) after it reported {usage.input_tokens} input "
        f"and {usage.output_tokens} output tokens: they are counted; the provider may bill "
        "more (the output it wrote before the break was not reported)")
    spent = LLMResponse("", usage=usage, finish_reason="error", model=note["model"] or "")
    run.partial.append(spent)
    if run.sink is not None:
        run.sink.append(spent)
    run.notes.append(note)


def _usage_note(event: str, provider: Any, req: LLMRequest, chunks: list[LLMStreamChunk],
                usage: Usage | None, message: str) -> dict[str, Any]:
    model = next((c.model for c in reversed(chunks) if c.model), None) or req.model or \
        getattr(provider, "model", None)
    return {"event": event, "provider": provider.name, "model": model,
            "counted": (usage or ZERO_USAGE).to_dict(), "message": message}


def unwrap_output_tool(response: LLMResponse) -> LLMResponse:
    forced = [c for c in response.tool_calls if c.name == OUTPUT_TOOL]
    if not forced:
        return response
    import json

    rest = tuple(c for c in response.tool_calls if c.name != OUTPUT_TOOL)
    parsed = dict(forced[0].arguments)
    return replace(response, tool_calls=rest, parsed=parsed,
                   text=response.text if rest else json.dumps(parsed))


async def _run_tools(run: _Run, tools: ToolCaller, calls: Sequence[ToolCall],
                     turn: int) -> list[Message]:
    outputs: list[ToolOutput | None] = [None] * len(calls)

    async def one(i: int, call: ToolCall) -> None:
        _emit(run, "tool_call", {"id": call.id, "name": call.name,
                                 "arguments": dict(call.arguments)})
        token = TOOL_CALL_ID.set(call.id or None)
        try:
            outputs[i] = await tools.call(call.name, call.arguments)
        except ToolError as exc:
            outputs[i] = ToolOutput(f"error: {exc.message}", is_error=True)
        finally:
            TOOL_CALL_ID.reset(token)
        _emit(run, "tool_result", {"id": call.id, "name": call.name,
                                   "is_error": outputs[i].is_error})  # type: ignore[union-attr]

    if len(calls) == 1:
        await one(0, calls[0])
    else:
        import anyio

        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                tg.start_soon(one, i, call)
    messages = []
    for call, out in zip(calls, outputs, strict=True):
        assert out is not None
        out = _capped(out, run.max_tool_result_chars)
        run.records.append(ToolCallRecord(call.id, call.name, dict(call.arguments), out.text,
                                          out.is_error, turn))
        messages.append(Message("tool", out.text, tool_call_id=call.id, name=call.name,
                                is_error=out.is_error))
    return messages


def _capped(out: ToolOutput, limit: int | None) -> ToolOutput:
    """The result as the model gets it: cut to ``limit`` characters, saying so."""
    if limit is None or len(out.text) <= limit:
        return out
    note = (f"\n[plait: this tool result was cut to its first {limit} of {len(out.text)} "
            "characters]")
    return ToolOutput(out.text[:limit] + note, is_error=out.is_error)


def _emit(run: _Run, kind: str, data: dict[str, Any]) -> None:
    if run.on_event is not None:
        run.on_event(LLMEvent(kind, run.chain[0], data))


def _spent(run: _Run) -> tuple[Usage, float | None]:
    usage = ZERO_USAGE
    cost: float | None = None
    for response in (*run.responses, *run.partial):
        usage = usage + response.usage
        cost = add_cost(cost, run.registry.prices.cost(response.model, response.usage))
    return usage, cost


def _answering(run: _Run) -> str:
    """The provider that answers now: the first of the chain that has not failed."""
    return next((n for n in run.chain if n not in run.tried), run.chain[-1])


def _result(run: _Run, output: Any, text: str, reasks: int) -> LLMResult:
    usage, cost = _spent(run)
    model = run.responses[-1].model if run.responses else ""
    return LLMResult(output, text, tuple(run.responses), usage, cost, _answering(run), model,
                     tuple(run.tried), tuple(run.records), reasks, tuple(run.notes))
