"""The provider layer on trio: echo, openai and anthropic SDKs, limits and the agent loop.

(google-genai's async client is asyncio-only, so it is not run here.)
"""

from __future__ import annotations

import anyio
import pytest

from engine.providers import LLMRequest, Message, ProviderRegistry, run_llm
from engine.spec.models import ProviderSpec
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action
from tests.providers.test_run_llm import SCHEMA, Tools

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


def _registry(srv: Servers) -> ProviderRegistry:
    return ProviderRegistry.from_specs({
        "oa": ProviderSpec(kind="openai", model="gpt-test", api_key="k", max_concurrency=4,
                           base_url=srv.url + "/openai/v1", fallback=["an"]),
        "an": ProviderSpec(kind="anthropic", model="claude-test", api_key="k",
                           base_url=srv.url + "/anthropic"),
        "echo": ProviderSpec(kind="echo", options={"latency": "1ms"}),
    }, env={})


async def test_calls_stream_and_fan_out_on_trio(srv: Servers) -> None:
    registry = _registry(srv)
    assert (await run_llm(registry, "echo", LLMRequest([Message("user", "t")]))).output == \
        "echo: t"
    streamed = await run_llm(registry, "an", LLMRequest([Message("user", "s")]),
                             on_chunk=lambda c: None)
    assert streamed.output == "reply: s"
    srv.openai.default_delay = 0.002
    outputs: list[str] = []

    async def one(i: int) -> None:
        outputs.append((await run_llm(registry, "oa", LLMRequest([Message("user", str(i))])))
                       .output)

    async with anyio.create_task_group() as tg:
        for i in range(50):
            tg.start_soon(one, i)
    assert len(outputs) == 50 and srv.openai.max_in_flight <= 4
    await registry.aclose()


async def test_agent_loop_fallback_and_schema_on_trio(srv: Servers) -> None:
    registry = _registry(srv)
    srv.openai.push("gpt-test", Action(status=503))
    srv.anthropic.push("claude-test", Action(tool_calls=[("add", {"a": 1, "b": 2}),
                                                         ("add", {"a": 2, "b": 2})]),
                       Action(json={"summary": "7", "risk": "low"}))
    result = await run_llm(registry, "oa", LLMRequest([Message("user", "go")],
                                                      output_schema=SCHEMA), tools=Tools())
    assert result.output == {"summary": "7", "risk": "low"}
    assert result.fallbacks_tried == ("oa",) and len(result.tool_calls) == 2
    assert srv.anthropic.requests[0]["tool_choice"] == {"type": "any"}
    await registry.aclose()
