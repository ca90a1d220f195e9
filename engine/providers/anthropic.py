"""Anthropic Messages: system prompt, tool use, streaming; structured output by a forced tool.

Sampling options the SDK has no parameter for (temperature, top_p, top_k) travel in the
request body. Consecutive tool results are merged into one user turn, as the API requires.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from engine.errors import ProviderError
from engine.providers._base import SDKProvider, alternating_turns, import_sdk
from engine.providers._errors import (
    connection_error,
    from_status,
    malformed,
    not_json,
    reply_problem,
    request_address,
    stream_error,
)
from engine.providers.types import (
    OUTPUT_TOOL,
    ImagePart,
    LLMRequest,
    LLMResponse,
    LLMStreamChunk,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

DEFAULT_MAX_TOKENS = 4096
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "tool_calls", "refusal": "content_filter", "pause_turn": "other"}
_BODY_OPTIONS = ("temperature", "top_p", "top_k")


class AnthropicProvider(SDKProvider):
    kind = "anthropic"

    def _make_client(self, http: Any) -> Any:
        anthropic = import_sdk("anthropic", "anthropic", "anthropic")
        return anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.spec.base_url,
                                        max_retries=0, http_client=http, timeout=self.timeout)

    def _params(self, req: LLMRequest, model: str) -> dict[str, Any]:
        opts = self.options_for(req)
        body = dict(opts.pop("extra_body", None) or {})
        for key in _BODY_OPTIONS:
            if key in opts:
                body[key] = opts.pop(key)
        max_tokens = req.max_tokens or opts.pop("max_tokens", None) or DEFAULT_MAX_TOKENS
        opts.pop("max_tokens", None)
        system = "\n\n".join(m.text for m in req.messages if m.role == "system")
        params: dict[str, Any] = {"model": model, "max_tokens": max_tokens,
                                  "messages": to_messages(req.messages), **opts}
        if system:
            params["system"] = system
        if body:
            params["extra_body"] = body
        if req.stop:
            params["stop_sequences"] = list(req.stop)
        tools = [{"name": t.name, "description": t.description,
                  "input_schema": dict(t.input_schema)} for t in req.tools]
        choice = {"auto": "auto", "required": "any", "none": "none"}.get(req.tool_choice or "")
        if req.output_schema is not None:
            tools.append({"name": OUTPUT_TOOL, "input_schema": dict(req.output_schema),
                          "description": "Give your final answer by calling this tool."})
            choice = "any" if req.tools else None
            params["tool_choice"] = ({"type": "tool", "name": OUTPUT_TOOL} if choice is None
                                     else {"type": "any"})
        elif choice:
            params["tool_choice"] = {"type": choice}
        if tools:
            params["tools"] = tools
        return params

    async def _generate(self, req: LLMRequest, model: str) -> LLMResponse:
        message = await self.client.messages.create(**self._params(req, model))
        if isinstance(message, str):  # the SDK's answer to a body that is not JSON
            raise not_json(message, provider=self.name, model=model,
                           secret=self.api_key)
        if not isinstance(getattr(message, "content", None), list):
            raise reply_problem(message, "content", provider=self.name, model=model,
                                secret=self.api_key)
        texts: list[str] = []
        calls: list[ToolCall] = []
        parsed: Any = None
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use" and block.name == OUTPUT_TOOL:
                parsed = block.input
            elif block.type == "tool_use":
                calls.append(ToolCall(block.id, block.name, dict(block.input or {})))
        text = "".join(texts)
        finish = _FINISH.get(message.stop_reason or "end_turn", "other")
        if parsed is not None and not calls:  # a reply cut at max_tokens stays "length"
            text, finish = json.dumps(parsed), "stop" if finish == "tool_calls" else finish
        return LLMResponse(text, tuple(calls), _usage(message.usage), finish,
                           message.model or model, message.id, parsed)

    async def _stream(self, req: LLMRequest, model: str) -> AsyncIterator[LLMStreamChunk]:
        stream = await self.client.messages.create(stream=True, **self._params(req, model))
        try:
            async for event in stream:
                chunk = _chunk(event)
                if chunk is not None:
                    yield chunk
        finally:
            await stream.close()

    def _map_error(self, exc: BaseException, model: str | None) -> ProviderError | None:
        anthropic = import_sdk("anthropic", "anthropic", "anthropic")
        if isinstance(exc, anthropic.APIStatusError):
            text = exc.api_message or str(exc.message)
            if exc.status_code < 300:  # an `event: error` in a stream that began with 200
                return stream_error(exc.type, text, provider=self.name, model=model,
                                    secret=self.api_key)
            return from_status(exc.status_code, text, headers=exc.response.headers,
                               provider=self.name, model=model, secret=self.api_key,
                               code=exc.error_code or exc.type,
                               address=request_address(exc.response))
        if isinstance(exc, anthropic.APIResponseValidationError):
            return malformed(exc, provider=self.name, model=model, secret=self.api_key)
        if isinstance(exc, anthropic.APIConnectionError):
            timed_out = isinstance(exc, anthropic.APITimeoutError)
            return connection_error(exc.__cause__ or exc, provider=self.name, model=model,
                                    timed_out=timed_out, timeout=self.timeout)
        return None


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    cached = getattr(usage, "cache_read_input_tokens", None) or 0
    created = getattr(usage, "cache_creation_input_tokens", None) or 0
    return Usage((usage.input_tokens or 0) + cached + created, usage.output_tokens or 0, cached)


def _chunk(event: Any) -> LLMStreamChunk | None:
    kind = event.type
    if kind == "message_start":
        start = _usage(event.message.usage)
        return LLMStreamChunk(usage=Usage(start.input_tokens, 0, start.cached_input_tokens),
                              model=event.message.model, raw_id=event.message.id)
    if kind == "content_block_start" and event.content_block.type == "tool_use":
        block = event.content_block
        return LLMStreamChunk(tool_call_delta=ToolCallDelta(event.index, block.id, block.name))
    if kind == "content_block_delta":
        delta = event.delta
        if delta.type == "text_delta":
            return LLMStreamChunk(text_delta=delta.text)
        if delta.type == "input_json_delta":
            return LLMStreamChunk(tool_call_delta=ToolCallDelta(
                event.index, arguments_delta=delta.partial_json))
    if kind == "message_delta":
        output = getattr(event.usage, "output_tokens", 0) or 0
        reason = _FINISH.get(event.delta.stop_reason or "end_turn", "other")
        return LLMStreamChunk(usage=Usage(0, output), finish_reason=reason)
    return None


def to_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return alternating_turns(messages, assistant="assistant", key="content", convert=_blocks)


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id or "",
                 "content": m.text, "is_error": m.is_error}]
    blocks: list[dict[str, Any]] = []
    for part in m.parts:
        if isinstance(part, ImagePart):
            if part.is_data_uri:
                media_type, data = part.split_data_uri()
                source = {"type": "base64", "media_type": media_type, "data": data}
            else:
                source = {"type": "url", "url": part.url}
            blocks.append({"type": "image", "source": source})
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": dict(call.arguments)})
    return blocks
