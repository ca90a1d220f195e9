"""Google Gemini via ``google-genai``: the Gemini API (key) or Vertex AI (``vertex: true``).

generate_content and streaming, function calling, ``response_json_schema`` for structured
output, safety settings and other generation options from ``options``. Automatic function
calling is off (plait runs the tool loop); the SDK's retries are off; its raw transport
timeouts (httpx2 exceptions) are mapped like any other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.errors import AuthError, ProviderError
from engine.providers._base import SDKProvider, alternating_turns, import_sdk
from engine.providers._errors import clean_message, from_status, malformed, request_address
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

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
           "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
           "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}
_CONFIG_OPTIONS = ("temperature", "top_p", "top_k", "max_output_tokens", "seed",
                   "presence_penalty", "frequency_penalty", "safety_settings", "thinking_config",
                   "candidate_count", "response_mime_type")


class GoogleProvider(SDKProvider):
    kind = "google"

    def __init__(self, name: str, spec: Any, *, api_key: str | None,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(name, spec, api_key=api_key)
        self._env = dict(env or {})

    def _make_client(self, http: Any) -> Any:
        genai = import_sdk("google.genai", "google-genai", "google")
        spec = self.spec
        options: dict[str, Any] = {"httpx_async_client": http,
                                   "timeout": int(self.timeout * 1000),
                                   "headers": dict(spec.headers) or None}
        if spec.base_url:
            options["base_url"] = spec.base_url
        kwargs: dict[str, Any] = {"http_options": options}
        if spec.vertex:
            kwargs["vertexai"] = True
            if self.api_key:
                kwargs["api_key"] = self.api_key
            else:
                kwargs["project"] = spec.project or self._env.get("GOOGLE_CLOUD_PROJECT")
                kwargs["location"] = spec.location or self._env.get("GOOGLE_CLOUD_LOCATION")
        else:
            kwargs["vertexai"] = False
            kwargs["api_key"] = self.api_key
        return genai.Client(**kwargs)

    async def aclose(self) -> None:
        client = self._client
        if client is not None:
            await client.aio.aclose()
            client.close()
            self._client = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _config(self, req: LLMRequest) -> dict[str, Any]:
        opts = self.options_for(req)
        config: dict[str, Any] = {"automatic_function_calling": {"disable": True}}
        for key in _CONFIG_OPTIONS:
            if key in opts:
                config[key] = opts[key]
        max_tokens = req.max_tokens or opts.get("max_tokens")
        if max_tokens:
            config["max_output_tokens"] = max_tokens
        if opts.get("extra_body"):
            config["http_options"] = {"extra_body": opts["extra_body"]}
        system = "\n\n".join(m.text for m in req.messages if m.role == "system")
        if system:
            config["system_instruction"] = system
        if req.stop:
            config["stop_sequences"] = list(req.stop)
        if req.tools:
            config["tools"] = [{"function_declarations": [
                {"name": t.name, "description": t.description,
                 "parameters_json_schema": dict(t.input_schema)} for t in req.tools]}]
            if req.tool_choice:
                mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[req.tool_choice]
                config["tool_config"] = {"function_calling_config": {"mode": mode}}
        if req.output_schema is not None:
            config["response_mime_type"] = "application/json"
            config["response_json_schema"] = dict(req.output_schema)
        return config

    async def _generate(self, req: LLMRequest, model: str) -> LLMResponse:
        response = await self.client.aio.models.generate_content(
            model=model, contents=to_contents(req.messages), config=self._config(req))
        texts: list[str] = []
        calls: list[ToolCall] = []
        finish = "stop"
        candidates = response.candidates or []
        if candidates:
            candidate = candidates[0]
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    fc = part.function_call
                    calls.append(ToolCall(fc.id or f"call_{len(calls)}", fc.name or "",
                                          dict(fc.args or {}),
                                          _signature(part.thought_signature)))
                elif part.text and not part.thought:
                    texts.append(part.text)
            finish = _finish(candidate.finish_reason, bool(calls))
        elif _blocked(response):
            finish = "content_filter"
        else:
            raise malformed(ValueError("the reply has no candidates"), provider=self.name,
                            model=model)
        return LLMResponse("".join(texts), tuple(calls), _usage(response.usage_metadata),
                           finish, response.model_version or model, response.response_id)

    async def embed(self, texts: Sequence[str], *, model: str | None = None,
                    dimensions: int | None = None, task: str | None = None,
                    ) -> list[list[float]]:
        """Embedding vectors of `texts` (one request; Gemini API or Vertex), e.g. with
        model `gemini-embedding-001`; `task` is the API's task type (RETRIEVAL_QUERY, ...)."""
        name = model or self.spec.options.get("embedding_model") or "gemini-embedding-001"
        config: dict[str, Any] = {}
        if dimensions is not None:
            config["output_dimensionality"] = dimensions
        if task is not None:
            config["task_type"] = task
        with self.mapped_errors(name):
            response = await self.client.aio.models.embed_content(
                model=name, contents=list(texts), config=config or None)
        return [list(e.values or []) for e in response.embeddings or []]

    async def _stream(self, req: LLMRequest, model: str) -> AsyncIterator[LLMStreamChunk]:
        stream = await self.client.aio.models.generate_content_stream(
            model=model, contents=to_contents(req.messages), config=self._config(req))
        reported = Usage()
        calls = 0
        async for response in stream:
            if response.usage_metadata is not None:
                # cumulative: passed on as it grows, so a stream that breaks off later still
                # counts the tokens reported so far (the chunks add up to the last figures)
                usage = _usage(response.usage_metadata)
                delta = Usage(usage.input_tokens - reported.input_tokens,
                              usage.output_tokens - reported.output_tokens,
                              usage.cached_input_tokens - reported.cached_input_tokens)
                reported = usage
                if delta != Usage():
                    yield LLMStreamChunk(usage=delta)
            if not response.candidates and _blocked(response):  # the prompt was blocked
                yield LLMStreamChunk(finish_reason="content_filter")
            for candidate in (response.candidates or [])[:1]:
                for part in (candidate.content.parts if candidate.content else None) or []:
                    if part.function_call is not None:
                        fc = part.function_call
                        yield LLMStreamChunk(tool_call_delta=ToolCallDelta(
                            calls, fc.id or f"call_{calls}", fc.name,
                            json.dumps(dict(fc.args or {})),
                            _signature(part.thought_signature)))
                        calls += 1
                    elif part.text and not part.thought:
                        yield LLMStreamChunk(text_delta=part.text,
                                             model=response.model_version)
                if candidate.finish_reason is not None:
                    yield LLMStreamChunk(finish_reason=_finish(candidate.finish_reason,
                                                               calls > 0))

    async def _health(self) -> None:
        await self.client.aio.models.get(model=self.model or "gemini-2.5-flash")

    def _map_error(self, exc: BaseException, model: str | None) -> ProviderError | None:
        auth_errors = import_sdk("google.auth.exceptions", "google-auth", "google")
        if isinstance(exc, auth_errors.GoogleAuthError):
            return AuthError(f"provider {self.name!r} (google): no usable Google credentials: "
                             f"{clean_message(str(exc))}",
                             hint="for Vertex run `gcloud auth application-default login` or "
                                  "set GOOGLE_APPLICATION_CREDENTIALS; or give an api_key",
                             provider=self.name, model=model)
        errors = import_sdk("google.genai.errors", "google-genai", "google")
        if isinstance(exc, errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            status = int(exc.code or 500)
            if status == 400 and "API_KEY_INVALID" in str(exc.details):
                status = 401  # Gemini answers a bad key with 400 INVALID_ARGUMENT
            delay = _retry_delay(exc.details)
            if delay is not None and not (headers and "retry-after" in headers):
                headers = {**(headers or {}), "retry-after": delay}
            return from_status(status, str(exc.message or exc.status or ""),
                               headers=headers, provider=self.name, model=model,
                               secret=self.api_key, code=exc.status,
                               address=request_address(response))
        return None


def _retry_delay(body: Any) -> str | None:
    """The seconds of the RetryInfo detail in a Google API error (``"retryDelay": "35s"``):
    Gemini says when to retry there, not in a Retry-After header."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith(
                "google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return delay[:-1]
    return None


def _blocked(response: Any) -> bool:
    feedback = response.prompt_feedback
    return feedback is not None and feedback.block_reason is not None


def _finish(reason: Any, has_calls: bool) -> str:
    if has_calls:
        return "tool_calls"
    name = getattr(reason, "value", None) or str(reason or "STOP")
    return _FINISH.get(name, "other")


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    output = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    return Usage(meta.prompt_token_count or 0, output, meta.cached_content_token_count or 0)


def to_contents(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return alternating_turns(messages, assistant="model", key="parts", convert=_parts)


def _parts(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        key = "error" if m.is_error else "output"
        return [{"function_response": {"id": m.tool_call_id, "name": m.name or "",
                                       "response": {key: m.text}}}]
    parts: list[dict[str, Any]] = []
    for part in m.parts:
        if isinstance(part, ImagePart):
            if part.is_data_uri:
                media_type, data = part.split_data_uri()
                parts.append({"inline_data": {"mime_type": media_type,
                                              "data": base64.b64decode(data)}})
            else:
                parts.append({"file_data": {"file_uri": part.url,
                                            "mime_type": _guess_type(part.url)}})
        elif part.text:
            parts.append({"text": part.text})
    for call in m.tool_calls:
        sent: dict[str, Any] = {"function_call": {"id": call.id, "name": call.name,
                                                  "args": dict(call.arguments)}}
        if call.signature:  # Gemini 3 refuses a function call sent back without it
            sent["thought_signature"] = base64.b64decode(call.signature)
        parts.append(sent)
    return parts


def _signature(raw: bytes | None) -> str | None:
    return base64.b64encode(raw).decode("ascii") if raw else None


def _guess_type(url: str) -> str:
    import mimetypes

    return mimetypes.guess_type(url)[0] or "image/jpeg"
