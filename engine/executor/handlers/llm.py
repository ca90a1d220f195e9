"""`llm:` steps: one model call, structured output, or an agent loop over MCP tools."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from engine.executor.events import StepChunk, StepFallback
from engine.executor.handlers import Attempt, Outcome

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

    registry = rc.services.providers()
    request = build_request(step, rendered)
    tools = await rc.services.tool_caller(step.tools) if getattr(step, "tools", None) else None
    on_chunk = None
    if getattr(step, "stream", False) and rc.listening:
        def on_chunk(chunk: Any) -> None:
            if chunk.text_delta:
                rc.emit(StepChunk(rc.run_id, time.time(), step_id, chunk.text_delta))

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "fallback" and rc.listening:
            rc.emit(StepFallback(rc.run_id, time.time(), step_id, event["from"], event["to"],
                                 str(event.get("error", ""))))

    result = await run_llm(registry, step.llm, request,  # type: ignore[union-attr]
                           tools=tools, max_turns=step.max_turns,  # type: ignore[union-attr]
                           attempt=attempt, on_chunk=on_chunk, on_event=on_event)
    return Outcome(output=result.output, usage=result.usage.to_dict(), cost=result.cost,
                   notes=[{"provider": result.provider,
                           "fallbacks": list(result.fallbacks)}] if result.fallbacks else [])
