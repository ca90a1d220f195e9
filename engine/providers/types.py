"""The vendor-neutral vocabulary of LLM calls: messages, tools, requests, replies, chunks.

Everything here is a frozen dataclass; vendors map to and from these in their own modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL or ``data:`` URI (``data:image/png;base64,...``)."""

    url: str
    type: Literal["image"] = "image"

    @property
    def is_data_uri(self) -> bool:
        return self.url.startswith("data:")

    def split_data_uri(self) -> tuple[str, str]:
        """``(media_type, base64 data)`` of a data URI."""
        head, _, data = self.url.partition(",")
        media_type = head[5:].split(";", 1)[0] or "application/octet-stream"
        return media_type, data


Part = TextPart | ImagePart

# _HOT: Message, Usage, LLMRequest and LLMResponse are built for every model call, so they
# are plain slotted dataclasses (hashable, never mutated by plait) rather than frozen ones:
# a frozen dataclass costs ~4x as much to build (object.__setattr__ per field). Change one
# with dataclasses.replace(), never in place.


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: Mapping[str, Any]
    signature: str | None = None
    """An opaque token the vendor wants sent back with the call (Gemini's thought
    signature, base64): without it a Gemini 3 model refuses the next turn."""


@dataclass(slots=True, unsafe_hash=True)  # read-only by convention: see _HOT
class Message:
    """One message of a conversation.

    ``tool`` messages carry a tool result: ``tool_call_id`` names the call, ``name`` the tool
    and ``is_error`` whether the tool failed.
    """

    role: Role
    content: str | Sequence[Part] = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    @property
    def text(self) -> str:
        """The message's text parts joined (images left out)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))

    @property
    def parts(self) -> tuple[Part, ...]:
        if isinstance(self.content, str):
            return (TextPart(self.content),) if self.content else ()
        return tuple(self.content)


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(slots=True, unsafe_hash=True)  # read-only by convention: see _HOT
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.cached_input_tokens + other.cached_input_tokens)

    def to_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cached_input_tokens": self.cached_input_tokens}


ZERO_USAGE = Usage()


@dataclass(slots=True, unsafe_hash=True)  # read-only by convention: see _HOT
class LLMRequest:
    """One call to a model. ``options`` are merged over the provider's own options."""

    messages: Sequence[Message]
    model: str | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tools: Sequence[ToolDefinition] = ()
    output_schema: Mapping[str, Any] | None = None
    stop: Sequence[str] | None = None
    max_tokens: int | None = None
    tool_choice: Literal["auto", "required", "none"] | None = None

    def last_user_text(self) -> str:
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""


#: the tool a provider forces when it has no native structured output (anthropic)
OUTPUT_TOOL = "plait_output"

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


@dataclass(slots=True, unsafe_hash=True)  # read-only by convention: see _HOT
class LLMResponse:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = ZERO_USAGE
    finish_reason: str = "stop"
    model: str = ""
    raw_id: str | None = None
    parsed: Any = None
    """The structured reply when the vendor returned one (e.g. a forced tool's input)."""

    def as_message(self) -> Message:
        return Message("assistant", self.text, tool_calls=self.tool_calls)


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: ``index`` groups the pieces of one call."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class LLMStreamChunk:
    text_delta: str = ""
    tool_call_delta: ToolCallDelta | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None
    raw_id: str | None = None


@runtime_checkable
class LLMProvider(Protocol):
    """What every provider offers. ``stream`` is an async generator function."""

    name: str
    kind: str

    async def generate(self, req: LLMRequest) -> LLMResponse: ...

    def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]: ...

    async def health_check(self) -> bool: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ToolOutput:
    text: str
    is_error: bool = False


#: the id of the model's tool call being executed, in the task that executes it (tracing
#: puts it on the execute_tool span as gen_ai.tool.call.id)
TOOL_CALL_ID: ContextVar[str | None] = ContextVar("plait_tool_call_id", default=None)


class ToolCaller(Protocol):
    """The tools an agent loop may call (the MCP tool executor implements this)."""

    def definitions(self) -> Sequence[ToolDefinition]: ...

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolOutput: ...


@dataclass(slots=True)
class _ToolCallBuffer:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    signature: str | None = None


def collect_stream(chunks: Sequence[LLMStreamChunk]) -> LLMResponse:
    """Fold streamed chunks into one response (tool call arguments parsed as JSON).

    Raises ValueError when a tool call's arguments are not a JSON object."""
    import json

    text: list[str] = []
    calls: dict[int, _ToolCallBuffer] = {}
    usage = ZERO_USAGE
    finish = "stop"
    model, raw_id = "", None
    for chunk in chunks:
        text.append(chunk.text_delta)
        if chunk.tool_call_delta is not None:
            d = chunk.tool_call_delta
            buf = calls.setdefault(d.index, _ToolCallBuffer())
            buf.id = d.id or buf.id
            buf.name = d.name or buf.name
            buf.signature = d.signature or buf.signature
            buf.arguments.append(d.arguments_delta)
        if chunk.usage is not None:
            usage = usage + chunk.usage
        finish = chunk.finish_reason or finish
        model = chunk.model or model
        raw_id = chunk.raw_id or raw_id
    tool_calls = []
    for index in sorted(calls):
        buf = calls[index]
        raw = "".join(buf.arguments) or "{}"
        arguments = json.loads(raw)
        if not isinstance(arguments, dict):  # as a reply that is not streamed is refused
            raise ValueError(f"tool call {buf.id or f'call_{index}'}: arguments are not a "
                             f"JSON object: {raw[:200]!r}")
        tool_calls.append(ToolCall(buf.id or f"call_{index}", buf.name, arguments,
                                   buf.signature))
    return LLMResponse("".join(text), tuple(tool_calls), usage, finish, model, raw_id)
