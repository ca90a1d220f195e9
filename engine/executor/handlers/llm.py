"""`llm:` steps: one model call, structured output, or an agent loop over MCP tools."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.executor.events import StepChunk, StepFallback
from engine.executor.handlers import Attempt, Outcome
from engine.spec.models import LLMStep

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.providers import LLMRequest
    from engine.spec.models import AnyStep


def build_request(step: Any, rendered: dict[str, Any]) -> LLMRequest:
    from engine.providers import ImagePart, LLMRequest, Message, TextPart

    messages: list[Message] = []
    if rendered.get("system") is not None:
        messages.append(Message("system", _text(rendered["system"])))
    for item in rendered.get("messages") or []:
        messages.append(Message(item["role"], _text(item["content"])))
    if rendered.get("prompt") is not None:
        images = [ImagePart(str(url)) for url in rendered.get("images") or []]
        content: Any = _text(rendered["prompt"])
        if images:
            content = (TextPart(content), *images)
        messages.append(Message("user", content))
    return LLMRequest(messages=messages, model=rendered.get("model") or step.model,
                      options=rendered.get("options") or {}, output_schema=step.output_schema)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    from engine.providers import run_llm

    assert isinstance(step, LLMStep)
    registry = rc.services.providers()
    request = build_request(step, rendered)
    tools = await rc.services.tool_caller(step.tools, step_id) \
        if getattr(step, "tools", None) else None
    on_chunk = None
    if (step.stream or rc.options.stream) and rc.listening:
        def on_chunk(chunk: Any) -> None:
            if chunk.text_delta:
                rc.emit(StepChunk(rc.run_id, time.time(), step_id, chunk.text_delta))

    notes: list[dict[str, Any]] = []

    def on_event(event: Any) -> None:
        if event.kind in ("fallback", "reask"):
            notes.append({"event": event.kind, **event.data})
        if event.kind == "fallback" and rc.listening:
            data = event.data
            rc.emit(StepFallback(rc.run_id, time.time(), step_id, data["from"], data["to"],
                                 str((data.get("error") or {}).get("message", ""))))

    result = await run_llm(registry, step.llm, request,  # type: ignore[union-attr]
                           tools=tools, max_turns=step.max_turns,  # type: ignore[union-attr]
                           attempt=None if getattr(attempt, "trivial", False) else attempt,
                           on_chunk=on_chunk, on_event=on_event)
    if result.tool_calls:
        notes.append({"event": "tools", "calls": [_call_note(c) for c in result.tool_calls]})
    return Outcome(output=result.output, usage=result.usage.to_dict(), cost=result.cost or 0.0,
                   notes=notes)


def _call_note(record: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    if is_dataclass(record) and not isinstance(record, type):
        return asdict(record)
    return {"call": str(record)}
