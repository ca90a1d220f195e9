"""OpenAI Chat Completions: ``openai``, ``azure_openai`` and any OpenAI-compatible server.

Structured output is sent as ``response_format: json_schema``; streaming asks for usage in
the last chunk (``stream_options.include_usage``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from engine.errors import OutputInvalid, ProviderError
from engine.providers._base import SDKProvider, import_sdk
from engine.providers._errors import (
    from_status,
    malformed,
    not_json,
    reply_problem,
    request_address,
    stream_error,
)
from engine.providers.types import (
    ImagePart,
    LLMRequest,
    LLMResponse,
    LLMStreamChunk,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls",
           "function_call": "tool_calls", "content_filter": "content_filter"}


class OpenAIProvider(SDKProvider):
    def __init__(self, name: str, spec: Any, *, api_key: str | None,
                 env: Mapping[str, str] | None = None) -> None:
        self.kind = spec.kind  # openai or azure_openai: first, the base checks the options
        super().__init__(name, spec, api_key=api_key)
        self._env = dict(env or {})

    def _make_client(self, http: Any) -> Any:
        openai = import_sdk("openai", "openai", "openai")
        spec = self.spec
        common = {"max_retries": 0, "http_client": http, "timeout": self.timeout}
        if self.kind == "azure_openai":
            endpoint = spec.endpoint or self._env.get("AZURE_OPENAI_ENDPOINT")
            return openai.AsyncAzureOpenAI(
                api_key=self.api_key, azure_endpoint=endpoint if not spec.base_url else None,
                base_url=spec.base_url, azure_deployment=spec.deployment,
                api_version=spec.api_version or self._env.get("OPENAI_API_VERSION"), **common)
        return openai.AsyncOpenAI(api_key=self.api_key or "not-needed",
                                  base_url=spec.base_url, **common)

    # ------------------------------------------------------------ calls

    def _params(self, req: LLMRequest, model: str) -> dict[str, Any]:
        opts = self.options_for(req)
        params: dict[str, Any] = {"model": model, "messages": to_messages(req.messages)}
        extra_body = opts.pop("extra_body", None)
        params.update(opts)
        if extra_body:
            params["extra_body"] = extra_body
        if req.max_tokens is not None:
            params["max_tokens"] = req.max_tokens
        if req.stop:
            params["stop"] = list(req.stop)
        if req.tools:
            params["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description,
                "parameters": dict(t.input_schema)}} for t in req.tools]
            if req.tool_choice:
                params["tool_choice"] = req.tool_choice
        if req.output_schema is not None:
            params["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": dict(req.output_schema), "strict": False}}
        return params

    async def _generate(self, req: LLMRequest, model: str) -> LLMResponse:
        completion = await self.client.chat.completions.create(**self._params(req, model))
        if isinstance(completion, str):  # the SDK's answer to a body that is not JSON
            raise not_json(completion, provider=self.name, model=model,
                           secret=self.api_key)
        if not getattr(completion, "choices", None):
            raise reply_problem(completion, "choices", provider=self.name, model=model,
                                secret=self.api_key)
        choice = completion.choices[0]
        message = choice.message
        try:
            calls = tuple(ToolCall(c.id, c.function.name,
                                   _arguments(c.function.arguments, c.id))
                          for c in (message.tool_calls or ()))
        except OutputInvalid as exc:
            cut = choice.finish_reason == "length"
            raise OutputInvalid(
                f"provider {self.name!r} (model {model}): {exc.message}",
                hint="the reply was cut off at the token limit: raise max_tokens" if cut else
                "the model wrote invalid tool arguments; retry.on: [output_invalid] retries it",
                provider=self.name, model=model) from None
        return LLMResponse(message.content or "", calls, _usage(completion.usage),
                           _FINISH.get(choice.finish_reason or "stop", "other"),
                           completion.model or model, completion.id)

    async def _stream(self, req: LLMRequest, model: str) -> AsyncIterator[LLMStreamChunk]:
        params = self._params(req, model)
        params["stream_options"] = {"include_usage": True}
        stream = await self.client.chat.completions.create(stream=True, **params)
        try:
            async for chunk in stream:
                for out in _chunks(chunk):
                    yield out
        finally:
            await stream.close()

    def _map_error(self, exc: BaseException, model: str | None) -> ProviderError | None:
        openai = import_sdk("openai", "openai", "openai")
        if isinstance(exc, openai.APIStatusError):
            error = from_status(exc.status_code, _message(exc), headers=exc.response.headers,
                                provider=self.name, model=model, secret=self.api_key,
                                code=exc.code, address=request_address(exc.response))
            if exc.status_code == 404 and self.kind == "azure_openai":
                error.hint = ("check `deployment:` (the deployment's name in Azure, not the "
                              "model's), `endpoint:` and `api_version:`")
            return error
        if isinstance(exc, openai.APIResponseValidationError):
            return malformed(exc, provider=self.name, model=model, secret=self.api_key)
        if isinstance(exc, openai.APITimeoutError):
            from engine.providers._errors import connection_error

            return connection_error(exc, provider=self.name, model=model, timed_out=True,
                                    timeout=self.timeout)
        if isinstance(exc, openai.APIConnectionError):
            from engine.providers._errors import connection_error

            cause = exc.__cause__ or exc
            return connection_error(cause, provider=self.name, model=model, timed_out=False)
        if isinstance(exc, openai.APIError):  # an error chunk in a stream that began with 200
            return stream_error(exc.type or exc.code, str(exc.message), provider=self.name,
                                model=model, secret=self.api_key)
        return None


def _message(exc: Any) -> str:
    """What the server said: the error's message, else the body as it came (an OpenAI-
    compatible server's ``{"error": "..."}`` or ``{"detail": "..."}``, a proxy's HTML page),
    which the SDK's own message ("Error code: 502") leaves out."""
    body = exc.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        for text in (inner, body.get("detail"), body.get("message")):
            if isinstance(text, str) and text.strip():
                return text
        return json.dumps(body, default=str)
    if isinstance(body, str) and body.strip():
        return body
    return str(exc.message)


def _arguments(raw: str | None, call_id: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise OutputInvalid(f"tool call {call_id}: arguments are not valid JSON ({exc.msg}): "
                            f"{(raw or '')[:200]!r}") from None
    if not isinstance(value, dict):
        raise OutputInvalid(f"tool call {call_id}: arguments are not a JSON object")
    return value


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0, cached)


def _chunks(chunk: Any) -> list[LLMStreamChunk]:
    out: list[LLMStreamChunk] = []
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is not None and delta.content:
            out.append(LLMStreamChunk(text_delta=delta.content, model=chunk.model,
                                      raw_id=chunk.id))
        for call in (delta.tool_calls or ()) if delta is not None else ():
            fn = call.function
            out.append(LLMStreamChunk(tool_call_delta=ToolCallDelta(
                call.index, call.id, fn.name if fn else None,
                (fn.arguments or "") if fn else "")))
        if choice.finish_reason:
            out.append(LLMStreamChunk(finish_reason=_FINISH.get(choice.finish_reason, "other")))
    if getattr(chunk, "usage", None) is not None:
        out.append(LLMStreamChunk(usage=_usage(chunk.usage), model=chunk.model, raw_id=chunk.id))
    return out


def to_messages(messages: Any) -> list[dict[str, Any]]:
    return [_message_param(m) for m in messages]


def _message_param(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.text}
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": m.text or None}
        if m.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.name, "arguments": json.dumps(dict(c.arguments))}}
                for c in m.tool_calls]
        return out
    if isinstance(m.content, str) or m.role == "system":
        return {"role": m.role, "content": m.text}
    parts: list[dict[str, Any]] = []
    for part in m.content:
        if isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": part.url}})
        else:
            parts.append({"type": "text", "text": part.text})
    return {"role": m.role, "content": parts}
