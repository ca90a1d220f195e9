"""Scripting shared by the fake vendor servers.

A test queues ``Action``s per model name; a request for that model takes the next one, or,
when none is queued, gets the default reply ``reply: <last user text>``. Every request body
is recorded, and the number of requests in flight is tracked (with its maximum).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Action:
    status: int = 200
    text: str | None = None
    json: Any = None
    """A structured reply (sent as the vendor's JSON/forced-tool output)."""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    usage: tuple[int, int] = (11, 7)
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted error"
    raw: str | None = None
    """Send this body verbatim (e.g. malformed JSON) with ``status``."""
    media_type: str = "application/json"
    """The content type of a ``raw`` body."""
    delay: float = 0.0
    finish: str | None = None
    """The vendor's own finish reason to send (e.g. ``content_filter``, ``max_tokens``)."""
    cut: bool = False
    """A stream that ends (cleanly) before its finish reason: the reply is cut off."""
    stream_error: str | None = None
    """Stream the start of the reply, then the vendor's error event of this type."""
    abort: bool = False
    """Send the first half of the reply, then drop the connection (an unfinished body)."""
    stall: bool = False
    """Send the first half of the reply, then nothing for 5 s (the rest never comes)."""
    no_usage: bool = False
    """A whole stream without its usage chunk (openai: finish chunk, then ``[DONE]``)."""


class Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._queues: dict[str, deque[Action]] = defaultdict(deque)
            self.requests: list[dict[str, Any]] = []
            self.headers: list[dict[str, str]] = []
            self.paths: list[str] = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.default_delay = 0.0

    def push(self, model: str, *actions: Action) -> None:
        with self._lock:
            self._queues[model].extend(actions)

    def take(self, model: str) -> Action:
        with self._lock:
            queue = self._queues.get(model)
            if queue:
                return queue.popleft()
        return Action(delay=self.default_delay)

    def count(self, model: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if model is None or r.get("model") == model)

    async def enter(self, request: Request, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            self.paths.append(request.url.path)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


async def read_json(request: Request) -> dict[str, Any]:
    data = await request.body()
    return json.loads(data) if data else {}


async def run_action(script: Script, request: Request, model: str, body: dict[str, Any],
                     error_body: Any, ok: Any) -> Response:
    """Record the request, apply the action's delay and status, else answer with ``ok``."""
    await script.enter(request, body)
    try:
        action = script.take(model)
        if action.delay:
            await anyio.sleep(action.delay)
        if action.raw is not None:
            return Response(action.raw, status_code=action.status, headers=action.headers,
                            media_type=action.media_type)
        if action.status != 200:
            return JSONResponse(error_body(action), status_code=action.status,
                                headers=action.headers)
        response = await ok(action)
        return _aborting(response, stall=action.stall) if action.abort or action.stall \
            else response
    finally:
        script.leave()


def _aborting(response: Response, *, stall: bool) -> Response:
    body = bytes(response.body)

    async def half() -> AsyncIterator[bytes]:
        yield body[:len(body) // 2]
        await anyio.sleep(5.0 if stall else 0.05)
        if not stall:
            raise RuntimeError("the fake server drops the connection on purpose")

    return StreamingResponse(half(), media_type=response.media_type)


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for event, data in events:
        head = f"event: {event}\n" if event else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{head}data: {payload}\n\n")
    return "".join(out).encode()


def split_text(text: str, size: int = 4) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]
