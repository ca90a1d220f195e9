"""A fake Gemini API server: generateContent, streamGenerateContent (SSE), models.get."""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.servers.common import Action, Script, read_json, run_action, split_text, sse

SCRIPT = Script("google")
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _last_user(body: dict[str, Any]) -> str:
    for content in reversed(body.get("contents", [])):
        texts = [p["text"] for p in content.get("parts", []) if "text" in p]
        if content.get("role") == "user" and texts:
            return "".join(texts)
    return ""


def _text(action: Action, body: dict[str, Any]) -> str | None:
    if action.json is not None:
        return json.dumps(action.json)
    if action.text is not None:
        return action.text
    return None if action.tool_calls else "reply: " + _last_user(body)


def _usage(action: Action) -> dict[str, Any]:
    i, o = action.usage
    return {"promptTokenCount": i, "candidatesTokenCount": o, "totalTokenCount": i + o,
            "cachedContentTokenCount": 1}


def _response(parts: list[dict[str, Any]], model: str, action: Action,
              finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "usageMetadata": _usage(action),
            "modelVersion": model, "responseId": "resp-1"}


def _parts(action: Action, body: dict[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    text = _text(action, body)
    if text is not None:
        parts.append({"text": text})
    for i, (name, args) in enumerate(action.tool_calls):
        part: dict[str, Any] = {"functionCall": {"id": f"fc_{i}", "name": name, "args": args}}
        if i == 0:  # as Gemini 3 does: the first call of a turn carries a thought signature
            part["thoughtSignature"] = signature(name)
        parts.append(part)
    return parts


def signature(name: str) -> str:
    """The thought signature the server gives a turn whose first call is `name` (base64):
    Gemini 3 refuses a request whose function call comes back without it."""
    return base64.b64encode(f"sig:{name}".encode()).decode()


def _embed_text(request: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in request.get("content", {}).get("parts", []))


def _error(action: Action) -> dict[str, Any]:
    return {"error": {"code": action.status, "message": action.error,
                      "status": _STATUS.get(action.status, "UNKNOWN")}}


async def models(request: Request) -> Response:
    rest = request.path_params["rest"]
    model, _, method = rest.partition(":")
    if request.method == "GET":
        return JSONResponse({"name": f"models/{model}", "displayName": model})
    body = await read_json(request)

    async def ok(action: Action) -> Response:
        if method == "batchEmbedContents":  # a deterministic vector per text: its length, ...
            vectors = [[float(len(_embed_text(r))), float(i), 0.5]
                       for i, r in enumerate(body.get("requests", []))]
            return JSONResponse({"embeddings": [{"values": v} for v in vectors]})
        if method == "streamGenerateContent":
            events: list[tuple[str | None, Any]] = []
            text = _text(action, body)
            for piece in split_text(text or ""):
                events.append((None, _response([{"text": piece}], model, action, None)))
            calls = _parts(Action(tool_calls=action.tool_calls, text=""), body)[1:]
            if not action.cut:
                events.append((None, _response(calls, model, action, action.finish or "STOP")))
            return Response(sse(events), media_type="text/event-stream")
        return JSONResponse(_response(_parts(action, body), model, action,
                                      action.finish or "STOP"))

    return await run_action(SCRIPT, request, model, body, _error, ok)


app = Starlette(routes=[
    Route("/{version}/models/{rest:path}", models, methods=["GET", "POST"]),
    Route("/{version}/publishers/google/models/{rest:path}", models, methods=["GET", "POST"]),
])
