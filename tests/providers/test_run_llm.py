from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import pytest

from engine.errors import (
    BadRequest,
    OutputInvalid,
    PlaitError,
    RateLimited,
    RunError,
    ToolError,
    Unavailable,
)
from engine.providers import (
    LLMEvent,
    LLMRequest,
    LLMResponse,
    LLMStreamChunk,
    Message,
    ProviderRegistry,
    ToolDefinition,
    ToolOutput,
    run_llm,
)
from engine.spec.models import PriceSpec, ProviderSpec, RateLimitSpec
from tests.providers.conftest import OPEN_REGISTRIES, Servers
from tests.providers.servers.common import Action

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("closes_registries")]
SCHEMA = {"type": "object", "required": ["summary", "risk"],
          "properties": {"summary": {"type": "string"}, "risk": {"enum": ["low", "high"]}}}


def _specs(srv: Servers) -> dict[str, ProviderSpec]:
    return {
        "oa": ProviderSpec(kind="openai", model="gpt-test", base_url=srv.url + "/openai/v1",
                           api_key="k", fallback=["an"]),
        "an": ProviderSpec(kind="anthropic", model="claude-test", api_key="k",
                           base_url=srv.url + "/anthropic"),
        "g": ProviderSpec(kind="google", model="gemini-test", api_key="k",
                          base_url=srv.url + "/google/"),
        "echo": ProviderSpec(kind="echo"),
    }


def _registry(srv: Servers, **overrides: ProviderSpec) -> ProviderRegistry:
    specs = {**_specs(srv), **overrides}
    registry = ProviderRegistry.from_specs(specs, env={}, pricing={
        "gpt-test": PriceSpec(input=1.0, output=2.0)})
    registry.check()
    OPEN_REGISTRIES.append(registry)
    return registry


def _req(text: str = "hello", **kw: Any) -> LLMRequest:
    return LLMRequest([Message("user", text)], **kw)


def retrying(attempts: int = 10) -> Callable[[Callable[[], Awaitable[LLMResponse]]],
                                             Awaitable[LLMResponse]]:
    """A stand-in for the executor's retry wrapper: retries retryable errors."""
    calls: list[str] = []

    async def attempt(fn: Callable[[], Awaitable[LLMResponse]]) -> LLMResponse:
        for i in range(attempts):
            try:
                return await fn()
            except PlaitError as exc:
                calls.append(type(exc).__name__)
                if not exc.retryable or i == attempts - 1:
                    raise
                await anyio.sleep(min(getattr(exc, "retry_after", None) or 0.01, 0.5))
        raise AssertionError("unreachable")

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


class Tools:
    """An in-memory ToolCaller: add and lookup, recording calls and concurrency."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.in_flight = self.max_in_flight = 0

    def definitions(self) -> Sequence[ToolDefinition]:
        return [ToolDefinition("add", "adds a and b", {"type": "object", "properties": {
            "a": {"type": "integer"}, "b": {"type": "integer"}}}),
                ToolDefinition("fail", "always fails", {"type": "object"})]

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolOutput:
        self.calls.append((name, dict(arguments)))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await anyio.sleep(0.05)
            if name == "fail":
                raise ToolError("the tool broke")
            return ToolOutput(str(arguments["a"] + arguments["b"]))
        finally:
            self.in_flight -= 1


async def test_echo_hot_path_and_cost(srv: Servers) -> None:
    registry = _registry(srv)
    result = await run_llm(registry, "echo", _req("ping"))
    assert result.output == "echo: ping" and result.provider == "echo"
    assert result.cost == 0.0 and result.turns == 1 and result.usage.input_tokens > 0


async def test_usage_and_cost_from_the_workflow_price(srv: Servers) -> None:
    registry = _registry(srv)
    result = await run_llm(registry, "oa", _req(), attempt=retrying())
    assert result.output == "reply: hello"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (11, 7)
    assert result.cost == pytest.approx((11 * 1.0 + 7 * 2.0) / 1_000_000)
    unknown = await run_llm(registry, "an", _req())
    assert unknown.cost is None  # no price known for claude-test
    await registry.aclose()


@pytest.mark.parametrize("provider", ["oa", "an", "g"])
async def test_structured_output_mismatch_then_fix(srv: Servers, provider: str) -> None:
    registry = _registry(srv)
    script, model = {"oa": (srv.openai, "gpt-test"), "an": (srv.anthropic, "claude-test"),
                     "g": (srv.google, "gemini-test")}[provider]
    script.push(model, Action(json={"summary": "s", "risk": "maybe"}),
                Action(json={"summary": "s", "risk": "high"}))
    events: list[LLMEvent] = []
    result = await run_llm(registry, provider, _req(output_schema=SCHEMA),
                           on_event=events.append)
    assert result.output == {"summary": "s", "risk": "high"} and result.reasks == 1
    feedback = script.requests[-1]
    assert "'maybe' is not one of ['low', 'high']" in str(feedback)
    assert [e.kind for e in events].count("reask") == 1
    await registry.aclose()


async def test_invalid_json_then_fix_and_persistent_mismatch(srv: Servers) -> None:
    registry = _registry(srv)
    fenced = '```json\n{"summary": "x", "risk": "low"}\n```'
    srv.openai.push("gpt-test", Action(text=fenced))
    result = await run_llm(registry, "oa", _req(output_schema=SCHEMA))
    assert result.output == {"summary": "x", "risk": "low"} and result.reasks == 0
    srv.openai.push("gpt-test", Action(text="not json at all"), Action(json={"risk": "low"}),
                    Action(json={"summary": 3, "risk": "low"}))
    with pytest.raises(OutputInvalid, match="after 2 re-asks: 3 is not of type 'string'"):
        await run_llm(registry, "oa", _req(output_schema=SCHEMA))
    assert "not valid JSON" in str(srv.openai.requests[-2]["messages"][-1]["content"])
    await registry.aclose()


async def test_invalid_schema_fails_before_any_call(srv: Servers) -> None:
    registry = _registry(srv)
    with pytest.raises(BadRequest, match="not a valid JSON Schema: 'strung' is not valid"):
        await run_llm(registry, "oa", _req(output_schema={"type": "strung"}))
    assert srv.openai.count() == 0


async def test_agent_loop_two_tool_rounds_parallel(srv: Servers) -> None:
    registry = _registry(srv)
    srv.anthropic.push("claude-test",
                       Action(tool_calls=[("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4}),
                                          ("fail", {})]),
                       Action(tool_calls=[("add", {"a": 3, "b": 7})]),
                       Action(text="the answer is 10"))
    tools = Tools()
    result = await run_llm(registry, "an", _req("add things"), tools=tools, max_turns=3)
    assert result.output == "the answer is 10" and result.turns == 3
    assert [(r.name, r.output, r.turn) for r in result.tool_calls] == [
        ("add", "3", 1), ("add", "7", 1), ("fail", "error: the tool broke", 1), ("add", "10", 2)]
    assert tools.max_in_flight == 3  # the three calls of round 1 ran in parallel
    second = srv.anthropic.requests[1]["messages"]
    results = second[-1]["content"]
    assert [b["content"] for b in results] == ["3", "7", "error: the tool broke"]
    assert results[2]["is_error"] is True
    assert result.usage.input_tokens == 33  # three model calls summed
    await registry.aclose()


async def test_agent_loop_max_turns(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", *[Action(tool_calls=[("add", {"a": 1, "b": 1})])] * 3)
    tools = Tools()
    with pytest.raises(RunError, match="max_turns=2"):
        await run_llm(registry, "oa", _req(), tools=tools, max_turns=2)
    assert srv.openai.count() == 2 and len(tools.calls) == 1


async def test_fallback_to_second_provider(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", Action(status=503, error="down"))
    events: list[LLMEvent] = []
    attempt = retrying()
    result = await run_llm(registry, "oa", _req("fall"), attempt=attempt,
                           on_event=events.append)
    assert result.provider == "an" and result.fallbacks_tried == ("oa",)
    assert result.output == "reply: fall" and result.model == "claude-test"
    assert srv.openai.count() == 1  # unavailable falls back at once, no retry storm
    assert srv.anthropic.requests[-1]["model"] == "claude-test"
    fallback = [e for e in events if e.kind == "fallback"]
    assert fallback[0].data["from"] == "oa" and fallback[0].data["to"] == "an"
    await registry.aclose()


async def test_fallback_after_retries_then_all_fail(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", *[Action(status=429, headers={"retry-after": "0.01"})] * 3)
    srv.anthropic.push("claude-test", Action(status=401))
    attempt = retrying(attempts=3)
    with pytest.raises(PlaitError) as info:
        await run_llm(registry, "oa", _req(), attempt=attempt)
    assert type(info.value).__name__ == "AuthError"
    assert attempt.calls == ["RateLimited"] * 3 + ["AuthError"]  # type: ignore[attr-defined]
    no_fallback = ProviderSpec(kind="openai", model="gpt-test", api_key="k",
                               base_url=srv.url + "/openai/v1")
    srv.openai.push("gpt-test", Action(status=400, error="bad"))
    with pytest.raises(BadRequest):
        await run_llm(_registry(srv, oa=no_fallback), "oa", _req())


async def test_429_storm_is_absorbed_by_backoff_and_limits(srv: Servers) -> None:
    spec = ProviderSpec(kind="openai", model="gpt-test", api_key="k", max_concurrency=8,
                        base_url=srv.url + "/openai/v1")
    registry = _registry(srv, oa=spec)
    srv.openai.push("gpt-test", *[Action(status=429, headers={"retry-after": "0.05"})] * 30)
    results: list[str] = []

    async def one(i: int) -> None:
        result = await run_llm(registry, "oa", _req(f"n{i}"), attempt=retrying(20))
        results.append(result.output)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(one, i)
    assert sorted(results) == sorted(f"reply: n{i}" for i in range(40))
    assert srv.openai.count() == 70
    assert registry.limiter("oa").throttled == 30
    await registry.aclose()


async def test_fan_out_500_under_max_concurrency(srv: Servers) -> None:
    spec = ProviderSpec(kind="openai", model="gpt-test", api_key="k", max_concurrency=8,
                        base_url=srv.url + "/openai/v1")
    registry = _registry(srv, oa=spec)
    srv.openai.default_delay = 0.005
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        await run_llm(registry, "oa", _req(str(i)))
        done += 1

    async with anyio.create_task_group() as tg:
        for i in range(500):
            tg.start_soon(one, i)
    assert done == 500 and srv.openai.count() == 500
    assert 2 <= srv.openai.max_in_flight <= 8
    await registry.aclose()


async def test_request_rate_limit_spaces_calls(srv: Servers) -> None:
    spec = ProviderSpec(kind="echo", rate_limit=RateLimitSpec(requests_per_minute=600))
    registry = _registry(srv, echo=spec)
    limiter = registry.limiter("echo")
    start = anyio.current_time()
    limiter.on_rate_limited(0.2)  # as after a 429 with Retry-After: 0.2
    await run_llm(registry, "echo", _req())
    assert anyio.current_time() - start >= 0.19


async def test_limiter_adapts_down_and_recovers() -> None:
    from engine.providers import ProviderLimiter

    limiter = ProviderLimiter(max_concurrency=8, requests_per_minute=100)
    limiter.on_rate_limited(0.0)
    assert limiter.concurrency == 4
    limiter.on_rate_limited(0.0)
    assert limiter.concurrency == 2
    for _ in range(10):
        limiter.on_success()
    assert limiter.concurrency == 8


@pytest.mark.parametrize("provider", ["oa", "an", "g", "echo"])
async def test_streaming_forwards_chunks(srv: Servers, provider: str) -> None:
    registry = _registry(srv)
    chunks: list[LLMStreamChunk] = []

    async def on_chunk(chunk: LLMStreamChunk) -> None:
        chunks.append(chunk)

    result = await run_llm(registry, provider, _req("stream me please"), on_chunk=on_chunk)
    assert result.output.endswith("stream me please")
    assert "".join(c.text_delta for c in chunks) == result.output
    assert len([c for c in chunks if c.text_delta]) > 2
    assert result.usage.input_tokens > 0
    await registry.aclose()


async def test_streamed_structured_output_via_forced_tool(srv: Servers) -> None:
    registry = _registry(srv)
    srv.anthropic.push("claude-test", Action(json={"summary": "s", "risk": "low"}))
    result = await run_llm(registry, "an", _req(output_schema=SCHEMA), on_chunk=lambda c: None)
    assert result.output == {"summary": "s", "risk": "low"}
    await registry.aclose()


async def test_unavailable_without_fallback_is_retried(srv: Servers) -> None:
    spec = ProviderSpec(kind="anthropic", model="claude-test", api_key="k",
                        base_url=srv.url + "/anthropic")
    registry = _registry(srv, an=spec)
    srv.anthropic.push("claude-test", Action(status=529), Action(status=500))
    result = await run_llm(registry, "an", _req("again"), attempt=retrying())
    assert result.output == "reply: again" and srv.anthropic.count() == 3
    with pytest.raises(Unavailable):
        srv.anthropic.push("claude-test", Action(status=503))
        await run_llm(registry, "an", _req())
    assert isinstance(RateLimited("x"), PlaitError)
    await registry.aclose()


async def test_token_and_request_buckets_wait() -> None:
    from engine.providers import ProviderLimiter

    tokens = ProviderLimiter(tokens_per_minute=600)  # 10 tokens a second
    async with tokens.slot(600):
        pass
    start = anyio.current_time()
    async with tokens.slot(3):
        pass
    assert anyio.current_time() - start >= 0.25
    requests = ProviderLimiter(requests_per_minute=600)  # a burst of 600, then 10 a second
    start = anyio.current_time()
    for _ in range(601):
        async with requests.slot():
            pass
    assert anyio.current_time() - start >= 0.08


async def test_build_request_from_step_fields() -> None:
    from engine.providers.build import build_request
    from engine.providers.types import ImagePart

    req = build_request(system="be brief", prompt={"files": [1, 2]},
                        messages=[{"role": "assistant", "content": "earlier"}],
                        images=["https://example.invalid/x.png"], model="m",
                        options={"temperature": 0}, output_schema=SCHEMA)
    assert [m.role for m in req.messages] == ["system", "assistant", "user"]
    assert req.messages[2].text == '{"files": [1, 2]}'
    assert req.messages[2].parts[1] == ImagePart("https://example.invalid/x.png")
    assert req.model == "m" and req.options == {"temperature": 0}


async def test_a_429_pauses_later_calls_even_without_limits(srv: Servers) -> None:
    srv.openai.push("gpt-test", Action(status=429, headers={"retry-after": "0.3"}))

    async def impatient(fn: Callable[[], Awaitable[LLMResponse]]) -> LLMResponse:
        try:
            return await fn()
        except RateLimited:
            return await fn()  # retries at once: the provider's pause must still hold

    no_fallback = ProviderSpec(kind="openai", model="gpt-test", api_key="k",
                               base_url=srv.url + "/openai/v1")
    registry = _registry(srv, oa=no_fallback)
    start = anyio.current_time()
    result = await run_llm(registry, "oa", _req(), attempt=impatient)
    assert result.output == "reply: hello"
    assert anyio.current_time() - start >= 0.28
    start = anyio.current_time()
    with pytest.raises(RateLimited):
        srv.openai.push("gpt-test", Action(status=429, headers={"retry-after": "0.2"}))
        await run_llm(registry, "oa", _req())  # the hot path records the 429 too
    await run_llm(registry, "oa", _req())
    assert anyio.current_time() - start >= 0.18
