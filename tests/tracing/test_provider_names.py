"""`gen_ai.provider.name` follows the GenAI semantic conventions' well-known values: a Google
provider reached through Vertex AI (`vertex: true`) is `gcp.vertex_ai`, through the Gemini API
`gcp.gemini`. The google-genai SDK talks to the wire-level fake server of the provider tests."""

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
