"""A fake Anthropic Messages server (JSON and SSE event streams, tool_use)."""

from __future__ import annotations

import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.servers.common import Action, Script, read_json, run_action, split_text, sse

SCRIPT = Script("anthropic")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                500: "api_error", 529: "overloaded_error"}


def _last_user(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [b.get("text", "") for b in content if b.get("type") == "text"]
        if texts:
            return "".join(texts)
    return ""


def _blocks(action: Action, body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    calls = list(action.tool_calls)
    if action.json is not None:
        calls.append(("plait_output", action.json))
    elif action.text is not None or not calls:
        text = action.text if action.text is not None else "reply: " + _last_user(body)
        blocks.append({"type": "text", "text": text})
    for i, (name, args) in enumerate(calls):
        blocks.append({"type": "tool_use", "id": f"toolu_{i}", "name": name, "input": args})
    return blocks


def _error(action: Action) -> dict[str, Any]:
    kind = _ERROR_TYPES.get(action.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": action.error}}


def _message(action: Action, body: dict[str, Any]) -> dict[str, Any]:
    blocks = _blocks(action, body)
    stop = action.finish or ("tool_use" if any(b["type"] == "tool_use" for b in blocks)
                             else "end_turn")
    return {"id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": action.usage[0], "output_tokens": action.usage[1],
                      "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}}


def _stream(action: Action, body: dict[str, Any]) -> bytes:
    message = _message(action, body)
    start = {**message, "content": [], "stop_reason": None,
             "usage": {"input_tokens": action.usage[0], "output_tokens": 1}}
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start",
                                                                "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"])]
        else:
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": p}
                      for p in split_text(json.dumps(block["input"]), 5)]
        events.append(("content_block_start", {"type": "content_block_start", "index": index,
                                               "content_block": first}))
        for delta in deltas:
            events.append(("content_block_delta", {"type": "content_block_delta",
                                                   "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if action.cut:
        return sse(events)
    if action.stream_error:
        return sse([*events[:3], ("error", {"type": "error", "error": {
            "type": action.stream_error, "message": action.error}})])
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": message["stop_reason"],
                                               "stop_sequence": None},
                                     "usage": {"output_tokens": action.usage[1]}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return sse(events)


async def messages(request: Request) -> Response:
    body = await read_json(request)

    async def ok(action: Action) -> Response:
        if body.get("stream"):
            return Response(_stream(action, body), media_type="text/event-stream")
        return JSONResponse(_message(action, body))

    return await run_action(SCRIPT, request, body.get("model", ""), body, _error, ok)


async def models(request: Request) -> Response:
    return JSONResponse({"data": [{"type": "model", "id": "claude-test", "display_name": "t",
                                   "created_at": "2025-01-01T00:00:00Z"}],
                         "has_more": False, "first_id": "claude-test",
                         "last_id": "claude-test"})


app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"]),
                        Route("/v1/models", models)])
