from __future__ import annotations

from typing import Any

import pytest

from engine.errors import AuthError, BadRequest, RateLimited, Timeout, Unavailable
from engine.providers import ImagePart, LLMRequest, Message, TextPart, ToolCall, ToolDefinition
from engine.providers.registry import ProviderRegistry
from engine.providers.types import collect_stream
from engine.spec.models import ProviderSpec
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

pytestmark = pytest.mark.anyio
KEY = "AIzaTestSecretKey1234567890"
TOOL = ToolDefinition("weather", "weather", {"type": "object",
                                             "properties": {"city": {"type": "string"}}})


def _registry(srv: Servers, **spec: Any) -> ProviderRegistry:
    fields: dict[str, Any] = {"kind": "google", "model": "gemini-test",
                              "base_url": srv.url + "/google/"}
    fields.update(spec)
    return ProviderRegistry.from_specs({"g": ProviderSpec(**fields)},
                                       env={"GEMINI_API_KEY": KEY})


def _snake(value: Any) -> Any:
    """Keys in snake_case: the SDK sends some nested fields in either spelling."""
    import re

    if isinstance(value, dict):
        return {re.sub(r"(?<!^)([A-Z])", r"_\1", k).lower(): _snake(v) for k, v in value.items()}
    return value


def _req(text: str = "hello", **kw: Any) -> LLMRequest:
    return LLMRequest([Message("system", "sys"), Message("user", text)], **kw)


async def test_generate_with_options_and_safety(srv: Servers) -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    registry = _registry(srv, options={"temperature": 0.3, "safety_settings": safety})
    registry.check()
    reply = await registry.get("g").generate(_req("hi", max_tokens=50))
    assert reply.text == "reply: hi" and reply.finish_reason == "stop"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 7)
    assert reply.usage.cached_input_tokens == 1
    sent = srv.google.requests[-1]
    assert sent["generationConfig"]["temperature"] == 0.3
    assert sent["generationConfig"]["maxOutputTokens"] == 50
    assert sent["safetySettings"] == safety
    assert sent["systemInstruction"]["parts"][0]["text"] == "sys"
    assert srv.google.headers[-1]["x-goog-api-key"] == KEY
    assert srv.google.paths[-1].endswith("/models/gemini-test:generateContent")
    await registry.aclose()


async def test_stream_text_usage_once(srv: Servers) -> None:
    registry = _registry(srv)
    chunks = [c async for c in registry.get("g").stream(_req("streamed words"))]
    reply = collect_stream(chunks)
    assert reply.text == "reply: streamed words"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 7)
    assert srv.google.paths[-1].endswith(":streamGenerateContent")
    await registry.aclose()


async def test_function_calls_and_results(srv: Servers) -> None:
    registry = _registry(srv)
    srv.google.push("gemini-test", Action(tool_calls=[("weather", {"city": "Oslo"})]),
                    Action(tool_calls=[("weather", {"city": "Rome"})]))
    reply = await registry.get("g").generate(_req(tools=[TOOL]))
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.name, dict(c.arguments)) for c in reply.tool_calls] == [
        ("fc_0", "weather", {"city": "Oslo"})]
    decl = srv.google.requests[-1]["tools"][0]["functionDeclarations"][0]
    # the SDK sends this field in snake_case (proto JSON accepts both spellings)
    params = decl.get("parametersJsonSchema") or decl["parameters_json_schema"]
    assert decl["name"] == "weather" and params["type"] == "object"
    streamed = collect_stream([c async for c in registry.get("g").stream(_req(tools=[TOOL]))])
    assert [dict(c.arguments) for c in streamed.tool_calls] == [{"city": "Rome"}]
    history = [Message("user", [TextPart("look"), ImagePart("data:image/png;base64,QUJD")]),
               Message("assistant", "",
                       tool_calls=(ToolCall("fc_0", "weather", {"city": "a"}),)),
               Message("tool", "sunny", tool_call_id="fc_0", name="weather")]
    await registry.get("g").generate(LLMRequest(history, tools=[TOOL]))
    contents = srv.google.requests[-1]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert _snake(contents[0]["parts"][1]) == {"inline_data": {"mime_type": "image/png",
                                                                "data": "QUJD"}}
    assert _snake(contents[2]["parts"][0])["function_response"]["response"] == {
        "output": "sunny"}
    await registry.aclose()


async def test_structured_output_uses_response_schema(srv: Servers) -> None:
    registry = _registry(srv)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    srv.google.push("gemini-test", Action(json={"n": 4}))
    reply = await registry.get("g").generate(_req(output_schema=schema))
    assert reply.text == '{"n": 4}'
    config = srv.google.requests[-1]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    await registry.aclose()


@pytest.mark.parametrize(("status", "headers", "expected"), [
    (400, {}, BadRequest), (401, {}, AuthError), (403, {}, AuthError),
    (429, {"retry-after": "2"}, RateLimited), (500, {}, Unavailable), (503, {}, Unavailable),
])
async def test_error_statuses_are_mapped(srv: Servers, status: int, headers: dict[str, str],
                                         expected: type) -> None:
    registry = _registry(srv)
    srv.google.push("gemini-test", Action(status=status, headers=headers,
                                          error=f"key {KEY} is bad"))
    with pytest.raises(expected) as info:
        await registry.get("g").generate(_req())
    assert type(info.value) is expected and KEY not in str(info.value)
    if status == 429:
        assert info.value.retry_after == 2.0
    assert srv.google.count() == 1
    await registry.aclose()


async def test_raw_transport_timeout_is_mapped(srv: Servers) -> None:
    registry = _registry(srv, timeout="200ms")
    srv.google.push("gemini-test", Action(delay=2.0))
    with pytest.raises(Timeout):
        await registry.get("g").generate(_req())
    await registry.aclose()


async def test_health(srv: Servers) -> None:
    registry = _registry(srv)
    assert await registry.health_check_all() == {"g": True}
    await registry.aclose()


async def test_malformed_reply_is_a_clear_error(srv: Servers) -> None:
    registry = _registry(srv)
    srv.google.push("gemini-test", Action(raw="{\"candidates\": [oops"))
    with pytest.raises(Unavailable, match="malformed reply"):
        await registry.get("g").generate(_req())
    await registry.aclose()


async def test_vertex_express_mode(srv: Servers) -> None:
    registry = _registry(srv, vertex=True, api_key="vertex-key")
    registry.check()
    reply = await registry.get("g").generate(_req("on vertex"))
    assert reply.text == "reply: on vertex"
    assert "/publishers/google/models/gemini-test:generateContent" in srv.google.paths[-1]
    await registry.aclose()


def test_vertex_needs_a_project_or_key() -> None:
    from engine.errors import ConfigError

    spec = ProviderSpec(kind="google", model="gemini-2.5-pro", vertex=True)
    with pytest.raises(ConfigError, match="needs `project`"):
        ProviderRegistry.from_specs({"v": spec}, env={}).check()
    ProviderRegistry.from_specs({"v": spec}, env={"GOOGLE_CLOUD_PROJECT": "p"}).check()


async def test_embeddings(srv: Servers) -> None:
    registry = _registry(srv, options={"embedding_model": "emb-1"})
    provider = registry.get("g")
    vectors = await provider.embed(["hi", "hello there"], dimensions=3,  # type: ignore[attr-defined]
                                   task="RETRIEVAL_DOCUMENT")
    assert vectors == [[2.0, 0.0, 0.5], [11.0, 1.0, 0.5]]
    body = srv.google.requests[-1]
    assert srv.google.paths[-1].endswith("/models/emb-1:batchEmbedContents")
    assert [r["content"]["parts"][0]["text"] for r in body["requests"]] == ["hi", "hello there"]
    first = _snake(body["requests"][0])
    assert first["output_dimensionality"] == 3 and first["task_type"] == "RETRIEVAL_DOCUMENT"
    srv.google.push("emb-1", Action(status=429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited):
        await provider.embed(["again"])  # type: ignore[attr-defined]
    await registry.aclose()
