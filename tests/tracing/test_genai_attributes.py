"""GenAI span attributes as the semantic conventions name them: `gen_ai.provider.name` (a
Google provider reached through Vertex AI, `vertex: true`, is `gcp.vertex_ai`, through the
Gemini API `gcp.gemini`) and the request's options, the provider's and the step's. The SDKs
talk to the wire-level fake servers of the provider tests."""

from __future__ import annotations

from typing import Any

import pytest

from engine.providers import LLMRequest, Message
from engine.providers.registry import ProviderRegistry
from engine.spec.models import ProviderSpec
from tests.providers.conftest import Servers, servers, srv  # noqa: F401 - the fixtures


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(("vertex", "expected"), [(False, "gcp.gemini"),
                                                   (True, "gcp.vertex_ai")])
async def test_the_google_provider_name_says_which_endpoint(
        srv: Servers, collected: Any, vertex: bool, expected: str) -> None:  # noqa: F811
    spec = ProviderSpec(kind="google", model="gemini-test", base_url=srv.url + "/google/",
                        vertex=vertex, api_key="AIzaTestKey1234567890")
    registry = ProviderRegistry.from_specs({"g": spec}, env={})
    registry.add_wrapper(collected.tracer.provider_wrapper())
    reply = await registry.get("g").generate(LLMRequest([Message("user", "hi")]))
    assert reply.text == "reply: hi"
    await registry.aclose()
    chat = collected.one("chat gemini-test")
    assert chat.attributes["gen_ai.provider.name"] == expected
    assert chat.attributes["plait.provider"] == "g"


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_request_options_of_the_provider_and_the_step_are_on_the_span(
        srv: Servers, collected: Any) -> None:  # noqa: F811
    # `options:` on the provider (as in SPEC's `options: {temperature: 0}`) are sent with
    # every call: the span says so, with the step's options on top of them
    specs = {
        "o": ProviderSpec(kind="openai", model="gpt-test", base_url=srv.url + "/openai/v1",
                          api_key="sk-test-key-123456", options={
                              "temperature": 0, "presence_penalty": 0.5,
                              "max_completion_tokens": 99}),
        "g": ProviderSpec(kind="google", model="gemini-test", base_url=srv.url + "/google/",
                          api_key="AIzaTestKey1234567890", options={
                              "max_output_tokens": 64, "top_k": 5, "frequency_penalty": 0.25})}
    registry = ProviderRegistry.from_specs(specs, env={})
    registry.add_wrapper(collected.tracer.provider_wrapper())
    await registry.get("o").generate(LLMRequest([Message("user", "hi")],
                                                options={"top_p": 0.9, "temperature": 0.7}))
    await registry.get("g").generate(LLMRequest([Message("user", "hi")]))
    await registry.aclose()
    sent = srv.openai.requests[-1]
    assert (sent["temperature"], sent["top_p"], sent["presence_penalty"]) == (0.7, 0.9, 0.5)
    openai = collected.one("chat gpt-test").attributes
    assert openai["gen_ai.request.temperature"] == 0.7  # the step's wins, as it did on the wire
    assert openai["gen_ai.request.top_p"] == 0.9
    assert openai["gen_ai.request.presence_penalty"] == 0.5
    assert openai["gen_ai.request.max_tokens"] == 99
    google = collected.one("chat gemini-test").attributes
    assert google["gen_ai.request.max_tokens"] == 64
    assert google["gen_ai.request.top_k"] == 5
    assert google["gen_ai.request.frequency_penalty"] == 0.25
