"""Build an LLMRequest from an llm step's rendered fields (prompt, system, messages, images)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.providers.types import ImagePart, LLMRequest, Message, Part, TextPart


def build_request(*, prompt: Any = None, system: Any = None,
                  messages: Sequence[Mapping[str, Any]] | None = None,
                  images: Sequence[str] = (), model: str | None = None,
                  options: Mapping[str, Any] | None = None,
                  output_schema: Mapping[str, Any] | None = None,
                  stop: Sequence[str] | None = None,
                  max_tokens: int | None = None) -> LLMRequest:
    """The request for an llm step. Non-string values (a whole ``${{ }}`` that rendered to a
    list or object) are sent as JSON text; ``images`` are attached to the last user message."""
    if (system is None and not messages and not images and not options and stop is None
            and max_tokens is None and output_schema is None and type(prompt) is str):
        return LLMRequest((Message("user", prompt),), model=model)  # the common case, fast
    out: list[Message] = []
    if system is not None:
        out.append(Message("system", _text(system)))
    for message in messages or ():
        out.append(Message(message["role"], _text(message["content"])))
    if prompt is not None:
        out.append(Message("user", _text(prompt)))
    if images:
        out = _attach(out, images)
    return LLMRequest(tuple(out), model=model, options=dict(options or {}),
                      output_schema=output_schema, stop=stop, max_tokens=max_tokens)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _attach(messages: list[Message], images: Sequence[str]) -> list[Message]:
    index = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    if index < 0:
        messages.append(Message("user", ""))
        index = len(messages) - 1
    target = messages[index]
    parts: list[Part] = [TextPart(target.text)] if target.text else []
    parts.extend(ImagePart(url) for url in images)
    messages[index] = Message("user", tuple(parts))
    return messages
