"""A fake OpenAI Chat Completions server (also answers Azure's deployment paths)."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.servers.common import Action, Script, read_json, run_action, split_text, sse

SCRIPT = Script("openai")


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


def _content(action: Action, body: dict[str, Any]) -> str | None:
    if action.json is not None:
        return json.dumps(action.json)
    if action.text is not None:
        return action.text
    return None if action.tool_calls else "reply: " + _last_user(body)


def _error(action: Action) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(action.status, "error")
    return {"error": {"message": action.error, "type": kind, "code": kind, "param": None}}


def _usage(action: Action) -> dict[str, Any]:
    i, o = action.usage
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o,
            "prompt_tokens_details": {"cached_tokens": 2}}


def _completion(action: Action, body: dict[str, Any]) -> dict[str, Any]:
    calls = [{"id": f"call_{i}", "type": "function",
              "function": {"name": name, "arguments": json.dumps(args)}}
             for i, (name, args) in enumerate(action.tool_calls)]
    message: dict[str, Any] = {"role": "assistant", "content": _content(action, body)}
    if calls:
        message["tool_calls"] = calls
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
            "model": body["model"], "usage": _usage(action),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": action.finish or ("tool_calls" if calls else "stop")}]}


def _stream(action: Action, body: dict[str, Any]) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    for piece in split_text(_content(action, body) or ""):
        events.append((None, chunk({"content": piece})))
    for i, (name, args) in enumerate(action.tool_calls):
        events.append((None, chunk({"tool_calls": [{"index": i, "id": f"call_{i}",
                       "type": "function", "function": {"name": name, "arguments": ""}}]})))
        for piece in split_text(json.dumps(args), 5):
            events.append((None, chunk({"tool_calls": [{"index": i,
                                                        "function": {"arguments": piece}}]})))
    if action.cut:
        return sse(events)
    if action.stream_error:
        return sse([*events[:2], (None, {"error": {"message": action.error,
                                                    "type": action.stream_error}})])
    events.append((None, chunk({}, action.finish or ("tool_calls" if action.tool_calls
                                                      else "stop"))))
    if (body.get("stream_options") or {}).get("include_usage") and not action.no_usage:
        events.append((None, {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                              "created": 1700000000, "model": body["model"], "choices": [],
                              "usage": _usage(action)}))
    events.append((None, "[DONE]"))
    return sse(events)


async def chat(request: Request) -> Response:
    body = await read_json(request)
    model = request.path_params.get("deployment") or body.get("model", "")

    async def ok(action: Action) -> Response:
        if body.get("stream"):
            return Response(_stream(action, body), media_type="text/event-stream")
        return JSONResponse(_completion(action, body))

    return await run_action(SCRIPT, request, model, body, _error, ok)


async def models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [
        {"id": "gpt-test", "object": "model", "created": 0, "owned_by": "plait"}]})


app = Starlette(routes=[
    Route("/v1/chat/completions", chat, methods=["POST"]),
    Route("/openai/deployments/{deployment}/chat/completions", chat, methods=["POST"]),
    Route("/v1/models", models),
])
