from __future__ import annotations

from typing import Any

import pytest

from engine.errors import AuthError, BadRequest, ContextTooLong, RateLimited, Unavailable
from engine.providers import ImagePart, LLMRequest, Message, TextPart, ToolCall, ToolDefinition
from engine.providers.registry import ProviderRegistry
from engine.providers.types import collect_stream
from engine.spec.models import ProviderSpec
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

pytestmark = pytest.mark.anyio
KEY = "sk-ant-test-secret-key-1234567890"
TOOL = ToolDefinition("lookup", "looks up", {"type": "object",
                                             "properties": {"q": {"type": "string"}}})


def _registry(srv: Servers, **spec: Any) -> ProviderRegistry:
    fields: dict[str, Any] = {"kind": "anthropic", "model": "claude-test",
                              "base_url": srv.url + "/anthropic"}
    fields.update(spec)
    return ProviderRegistry.from_specs({"an": ProviderSpec(**fields)},
                                       env={"ANTHROPIC_API_KEY": KEY})


def _req(text: str = "hello", **kw: Any) -> LLMRequest:
    return LLMRequest([Message("system", "sys"), Message("user", text)], **kw)


async def test_generate_system_options_usage(srv: Servers) -> None:
    registry = _registry(srv, options={"temperature": 0.1, "top_k": 5})
    registry.check()
    reply = await registry.get("an").generate(_req("hi", stop=["END"]))
    assert reply.text == "reply: hi" and reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 7)
    sent = srv.anthropic.requests[-1]
    assert sent["system"] == "sys" and sent["max_tokens"] == 4096
    assert sent["temperature"] == 0.1 and sent["top_k"] == 5
    assert sent["stop_sequences"] == ["END"]
    sent_headers = srv.anthropic.headers[-1]
    assert KEY in (sent_headers.get("x-api-key"), sent_headers.get("authorization", "")[7:])
    await registry.aclose()


async def test_images_and_tool_results_are_mapped(srv: Servers) -> None:
    registry = _registry(srv)
    messages = [Message("user", [TextPart("look"), ImagePart("data:image/png;base64,QUJD"),
                                 ImagePart("https://example.invalid/a.png")]),
                Message("assistant", "", tool_calls=(ToolCall("t1", "lookup", {"q": "a"}),
                                                     ToolCall("t2", "lookup", {"q": "b"}))),
                Message("tool", "A", tool_call_id="t1", name="lookup"),
                Message("tool", "nope", tool_call_id="t2", name="lookup", is_error=True)]
    await registry.get("an").generate(LLMRequest(messages, tools=[TOOL]))
    sent = srv.anthropic.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"][1]["source"] == {"type": "base64", "media_type": "image/png",
                                               "data": "QUJD"}
    assert sent[0]["content"][2]["source"] == {"type": "url",
                                               "url": "https://example.invalid/a.png"}
    assert [b["tool_use_id"] for b in sent[2]["content"]] == ["t1", "t2"]
    assert sent[2]["content"][1]["is_error"] is True
    await registry.aclose()


async def test_stream_text_and_usage(srv: Servers) -> None:
    registry = _registry(srv)
    chunks = [c async for c in registry.get("an").stream(_req("a streamed reply"))]
    reply = collect_stream(chunks)
    assert reply.text == "reply: a streamed reply"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 7)
    assert reply.finish_reason == "stop"
    await registry.aclose()


async def test_tool_use_non_stream_and_stream(srv: Servers) -> None:
    registry = _registry(srv)
    srv.anthropic.push("claude-test", Action(tool_calls=[("lookup", {"q": "x"})]),
                       Action(tool_calls=[("lookup", {"q": "y"}), ("lookup", {"q": "z"})]))
    reply = await registry.get("an").generate(_req(tools=[TOOL]))
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, dict(c.arguments)) for c in reply.tool_calls] == [("toolu_0", {"q": "x"})]
    assert srv.anthropic.requests[-1]["tools"][0]["name"] == "lookup"
    streamed = collect_stream([c async for c in registry.get("an").stream(_req(tools=[TOOL]))])
    assert [dict(c.arguments) for c in streamed.tool_calls] == [{"q": "y"}, {"q": "z"}]
    await registry.aclose()


async def test_structured_output_by_forced_tool(srv: Servers) -> None:
    registry = _registry(srv)
    schema = {"type": "object", "properties": {"risk": {"enum": ["low", "high"]}}}
    srv.anthropic.push("claude-test", Action(json={"risk": "high"}))
    reply = await registry.get("an").generate(_req(output_schema=schema))
    assert reply.parsed == {"risk": "high"} and reply.tool_calls == ()
    sent = srv.anthropic.requests[-1]
    assert sent["tool_choice"] == {"type": "tool", "name": "plait_output"}
    assert sent["tools"][0]["input_schema"] == schema
    await registry.aclose()


@pytest.mark.parametrize(("status", "error", "headers", "expected"), [
    (400, "bad", {}, BadRequest),
    (400, "prompt is too long: 300000 tokens > 200000 maximum", {}, ContextTooLong),
    (401, "invalid x-api-key sk-ant-test-secret-key-1234567890", {}, AuthError),
    (429, "slow", {"retry-after": "100000"}, RateLimited),
    (500, "boom", {}, Unavailable),
    (529, "overloaded", {}, Unavailable),
])
async def test_error_statuses_are_mapped(srv: Servers, status: int, error: str,
                                         headers: dict[str, str], expected: type) -> None:
    registry = _registry(srv)
    srv.anthropic.push("claude-test", Action(status=status, error=error, headers=headers))
    with pytest.raises(expected) as info:
        await registry.get("an").generate(_req())
    assert type(info.value) is expected and KEY not in str(info.value)
    if status == 429:
        assert info.value.retry_after == 60.0  # a server's 100000 s is capped
    assert srv.anthropic.count() == 1
    await registry.aclose()


async def test_malformed_reply(srv: Servers) -> None:
    registry = _registry(srv)
    srv.anthropic.push("claude-test", Action(raw="{not json"))
    with pytest.raises(Unavailable, match="malformed"):
        await registry.get("an").generate(_req())
    await registry.aclose()


async def test_health(srv: Servers) -> None:
    registry = _registry(srv)
    assert await registry.health_check_all() == {"an": True}
    await registry.aclose()
