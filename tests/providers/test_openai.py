from __future__ import annotations

from typing import Any

import pytest

from engine.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    RateLimited,
    Timeout,
    Unavailable,
)
from engine.providers import ImagePart, LLMRequest, Message, TextPart, ToolDefinition
from engine.providers.registry import ProviderRegistry
from engine.spec.models import ProviderSpec
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

pytestmark = pytest.mark.anyio
KEY = "sk-test-secret-key-1234567890"


def _registry(srv: Servers, **spec: Any) -> ProviderRegistry:
    fields: dict[str, Any] = {"kind": "openai", "model": "gpt-test",
                              "base_url": srv.url + "/openai/v1", "api_key": KEY}
    fields.update(spec)
    return ProviderRegistry.from_specs({"oa": ProviderSpec(**fields)}, env={})


def _req(text: str = "hello", **kw: Any) -> LLMRequest:
    return LLMRequest([Message("system", "sys"), Message("user", text)], **kw)


async def test_generate_text_and_usage(srv: Servers) -> None:
    registry = _registry(srv, options={"temperature": 0.2}, headers={"X-Team": "a"})
    reply = await registry.get("oa").generate(_req("hi"))
    assert reply.text == "reply: hi"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (11, 7)
    assert reply.usage.cached_input_tokens == 2
    assert reply.finish_reason == "stop" and reply.model == "gpt-test"
    sent = srv.openai.requests[-1]
    assert sent["temperature"] == 0.2 and sent["messages"][0] == {"role": "system",
                                                                  "content": "sys"}
    assert srv.openai.headers[-1]["x-team"] == "a"
    assert srv.openai.headers[-1]["authorization"] == f"Bearer {KEY}"
    await registry.aclose()


async def test_image_parts_are_sent(srv: Servers) -> None:
    registry = _registry(srv)
    msg = Message("user", [TextPart("what is this"), ImagePart("data:image/png;base64,AAAA")])
    reply = await registry.get("oa").generate(LLMRequest([msg]))
    assert reply.text == "reply: what is this"
    content = srv.openai.requests[-1]["messages"][0]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    await registry.aclose()


async def test_stream_text_and_usage(srv: Servers) -> None:
    registry = _registry(srv)
    chunks = [c async for c in registry.get("oa").stream(_req("streaming works"))]
    assert "".join(c.text_delta for c in chunks) == "reply: streaming works"
    assert len([c for c in chunks if c.text_delta]) > 3
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[0].input_tokens == 11
    assert srv.openai.requests[-1]["stream_options"] == {"include_usage": True}
    await registry.aclose()


async def test_tool_calls_non_stream_and_stream(srv: Servers) -> None:
    from engine.providers.types import collect_stream

    registry = _registry(srv)
    tool = ToolDefinition("add", "adds",
                          {"type": "object", "properties": {"a": {"type": "integer"}}})
    srv.openai.push("gpt-test", Action(tool_calls=[("add", {"a": 1}), ("add", {"a": 2})]),
                    Action(tool_calls=[("add", {"a": 3})]))
    reply = await registry.get("oa").generate(_req(tools=[tool]))
    assert [(c.name, dict(c.arguments)) for c in reply.tool_calls] == [("add", {"a": 1}),
                                                                       ("add", {"a": 2})]
    assert reply.finish_reason == "tool_calls"
    assert srv.openai.requests[-1]["tools"][0]["function"]["name"] == "add"
    streamed = collect_stream([c async for c in registry.get("oa").stream(_req(tools=[tool]))])
    assert [(c.id, dict(c.arguments)) for c in streamed.tool_calls] == [("call_0", {"a": 3})]
    await registry.aclose()


async def test_structured_output_sends_json_schema(srv: Servers) -> None:
    registry = _registry(srv)
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    srv.openai.push("gpt-test", Action(json={"x": 5}))
    reply = await registry.get("oa").generate(_req(output_schema=schema))
    assert reply.text == '{"x": 5}'
    fmt = srv.openai.requests[-1]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"] == schema
    await registry.aclose()


@pytest.mark.parametrize(("status", "error", "headers", "expected"), [
    (400, "bad thing", {}, BadRequest),
    (400, "This model's maximum context length is 8192 tokens", {}, ContextTooLong),
    (401, "Incorrect API key provided: sk-test-secret-key-1234567890", {}, AuthError),
    (403, "forbidden", {}, AuthError),
    (404, "no such model", {}, BadRequest),
    (429, "slow down", {"retry-after": "3"}, RateLimited),
    (500, "boom", {}, Unavailable),
    (503, "overloaded", {"retry-after": "100000"}, Unavailable),
])
async def test_error_statuses_are_mapped(srv: Servers, status: int, error: str,
                                         headers: dict[str, str], expected: type) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", Action(status=status, error=error, headers=headers))
    with pytest.raises(expected) as info:
        await registry.get("oa").generate(_req())
    exc = info.value
    assert type(exc) is expected
    assert KEY not in str(exc) and f"HTTP {status}" in str(exc)
    assert exc.context["provider"] == "oa" and exc.context["model"] == "gpt-test"
    assert exc.__cause__ is None and exc.__suppress_context__
    if status == 429:
        assert exc.retry_after == 3.0
    if status == 503:
        assert exc.retry_after == 60.0  # capped
    assert srv.openai.count() == 1  # SDK retries are off
    await registry.aclose()


async def test_stream_error_is_mapped(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", Action(status=429, headers={"retry-after-ms": "250"}))
    with pytest.raises(RateLimited) as info:
        async for _ in registry.get("oa").stream(_req()):
            pass
    assert info.value.retry_after == 0.25
    await registry.aclose()


async def test_slow_response_times_out(srv: Servers) -> None:
    registry = _registry(srv, timeout="200ms")
    srv.openai.push("gpt-test", Action(delay=2.0))
    with pytest.raises(Timeout, match=r"did not answer within 0\.2s"):
        await registry.get("oa").generate(_req())
    await registry.aclose()


async def test_malformed_json_is_a_clear_error(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", Action(raw='{"id": "x", "choices": [', status=200))
    with pytest.raises(Unavailable, match="malformed reply"):
        await registry.get("oa").generate(_req())
    await registry.aclose()


async def test_unreachable_server_is_unavailable() -> None:
    spec = ProviderSpec(kind="openai", model="m", base_url="http://127.0.0.1:9/v1", api_key="k")
    registry = ProviderRegistry.from_specs({"oa": spec}, env={})
    with pytest.raises(Unavailable, match="could not be reached"):
        await registry.get("oa").generate(_req())
    assert await registry.health_check_all() == {"oa": False}
    await registry.aclose()


async def test_unknown_step_option_is_bad_request(srv: Servers) -> None:
    registry = _registry(srv)
    with pytest.raises(BadRequest, match="unknown option"):
        await registry.get("oa").generate(_req(options={"temprature": 1}))
    assert srv.openai.count() == 0
    await registry.aclose()


async def test_health_check(srv: Servers) -> None:
    registry = _registry(srv)
    assert await registry.health_check_all() == {"oa": True}
    await registry.aclose()


async def test_azure_openai_deployment_path_and_key_header(srv: Servers) -> None:
    spec = ProviderSpec(kind="azure_openai", model="gpt-4o", deployment="prod-dep",
                        endpoint=srv.url + "/openai", api_version="2024-10-21")
    registry = ProviderRegistry.from_specs({"az": spec}, env={"AZURE_OPENAI_API_KEY": KEY})
    registry.check()
    reply = await registry.get("az").generate(_req("azure"))
    assert reply.text == "reply: azure"
    assert srv.openai.paths[-1] == "/openai/openai/deployments/prod-dep/chat/completions"
    assert srv.openai.headers[-1]["api-key"] == KEY
    await registry.aclose()


async def test_one_pooled_client_per_provider(srv: Servers) -> None:
    registry = _registry(srv)
    provider = registry.get("oa")
    await provider.generate(_req())
    client = provider.client  # type: ignore[attr-defined]
    await provider.generate(_req())
    assert provider.client is client  # type: ignore[attr-defined]
    await registry.aclose()
    assert provider._client is None  # type: ignore[attr-defined]
