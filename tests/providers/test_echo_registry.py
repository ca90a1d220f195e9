from __future__ import annotations

import anyio
import pytest

from engine.errors import ConfigError, Unavailable
from engine.providers import EchoProvider, LLMRequest, Message, ProviderRegistry
from engine.spec.models import ProviderSpec

pytestmark = pytest.mark.anyio


def _req(text: str = "hello", **kw: object) -> LLMRequest:
    return LLMRequest([Message("system", "be brief"), Message("user", text)], **kw)  # type: ignore[arg-type]


async def test_echo_replies_from_the_last_user_message() -> None:
    reply = await EchoProvider("e").generate(_req("hi there"))
    assert reply.text == "echo: hi there"
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0


async def test_echo_structured_output_matches_schema() -> None:
    schema = {"type": "object", "required": ["summary", "risk", "n"],
              "properties": {"summary": {"type": "string"}, "risk": {"enum": ["low", "high"]},
                             "n": {"type": "integer", "minimum": 3},
                             "tags": {"type": "array", "items": {"type": "string"},
                                      "minItems": 2}}}
    reply = await EchoProvider("e").generate(_req("x", output_schema=schema))
    assert reply.parsed == {"summary": "echo: x", "risk": "low", "n": 3,
                            "tags": ["echo: x", "echo: x"]}


async def test_echo_fixed_reply_and_seeded_failures_are_deterministic() -> None:
    async def outcomes() -> list[bool]:
        provider = EchoProvider("e", options={"failure_rate": 0.5, "seed": 7, "reply": "ok"})
        out = []
        for _ in range(20):
            try:
                out.append((await provider.generate(_req())).text == "ok")
            except Unavailable:
                out.append(False)
        return out

    first, second = await outcomes(), await outcomes()
    assert first == second and True in first and False in first


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_echo_latency_and_stream(anyio_backend: str) -> None:
    provider = EchoProvider("e", options={"latency": "20ms"})
    start = anyio.current_time()
    chunks = [c async for c in provider.stream(_req("a b c"))]
    assert anyio.current_time() - start >= 0.02
    assert "".join(c.text_delta for c in chunks) == "echo: a b c"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_echo_latency_is_cancelled_by_a_cancel_scope(anyio_backend: str) -> None:
    """A step timeout (an anyio cancel scope) cuts the simulated latency short, on either
    backend."""
    provider = EchoProvider("e", options={"latency": "30s"})
    start = anyio.current_time()
    with anyio.move_on_after(0.05) as scope:
        await provider.generate(_req())
    assert scope.cancelled_caught
    assert anyio.current_time() - start < 5


def test_echo_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        EchoProvider("e", options={"latnecy": 1})
    with pytest.raises(ConfigError, match="failure_rate"):
        EchoProvider("e", options={"failure_rate": 2})


def test_missing_key_names_env_var_before_anything_runs() -> None:
    specs = {"fast": ProviderSpec(kind="openai", model="gpt-4.1-mini"),
             "careful": ProviderSpec(kind="anthropic", model="claude-sonnet-4-5"),
             "g": ProviderSpec(kind="google", model="gemini-2.5-flash")}
    registry = ProviderRegistry.from_specs(specs, env={})
    with pytest.raises(ConfigError) as info:
        registry.check()
    text = str(info.value)
    assert "OPENAI_API_KEY" in text and "'fast'" in text
    assert "ANTHROPIC_API_KEY" in text and "'careful'" in text
    assert "GOOGLE_API_KEY or GEMINI_API_KEY" in text
    ok = ProviderRegistry.from_specs(specs, env={"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
                                                 "GEMINI_API_KEY": "k"})
    ok.check()


def test_unknown_option_and_fallback_are_reported() -> None:
    specs = {"a": ProviderSpec(kind="openai", model="m", api_key="k",
                               options={"temprature": 0}, fallback=["nope"])}
    with pytest.raises(ConfigError) as info:
        ProviderRegistry.from_specs(specs, env={}).check()
    assert "temprature" in str(info.value) and "'nope'" in str(info.value)


def test_azure_needs_endpoint_and_version() -> None:
    specs = {"az": ProviderSpec(kind="azure_openai", model="gpt-4o", api_key="k")}
    with pytest.raises(ConfigError, match="endpoint"):
        ProviderRegistry.from_specs(specs, env={}).check()


async def test_registry_best_and_health() -> None:
    registry = ProviderRegistry()
    low, high = EchoProvider("low"), EchoProvider("high")
    registry.register("low", low, priority=1)
    registry.register("high", high, priority=5)
    assert registry.best("echo") is high
    assert await registry.health_check_all() == {"low": True, "high": True}
    with pytest.raises(ConfigError, match="unknown provider 'x'"):
        registry.get("x")
    with pytest.raises(ConfigError, match="no healthy provider"):
        registry.best("openai")


async def test_from_specs_is_lazy_and_builds_echo() -> None:
    specs = {"e": ProviderSpec(kind="echo", options={"reply": "fixed"})}
    registry = ProviderRegistry.from_specs(specs, env={})
    registry.check()
    assert (await registry.get("e").generate(_req())).text == "fixed"
    await registry.aclose()


async def test_replay_without_a_cassette_refuses_clearly() -> None:
    registry = ProviderRegistry.from_specs({"r": ProviderSpec(kind="replay")}, env={})
    with pytest.raises(ConfigError, match="needs a cassette"):
        await registry.get("r").generate(_req())


@pytest.mark.parametrize(("spec", "env", "field"), [
    (ProviderSpec(kind="openai", model="m", base_url="127.0.0.1:8000/v1"), {}, "base_url"),
    (ProviderSpec(kind="azure_openai", model="gpt-4o", api_key="k", endpoint="not a url",
                  api_version="2024-10-21"), {}, "endpoint"),
    (ProviderSpec(kind="azure_openai", model="gpt-4o", api_key="k",
                  endpoint="https://r.openai.azure.com"), {"OPENAI_API_VERSION": "banana"},
     "api_version"),
])
def test_a_url_or_api_version_that_cannot_work_is_a_config_error(
        spec: ProviderSpec, env: dict[str, str], field: str) -> None:
    # values that came from secrets or the environment are checked here, before any call
    registry = ProviderRegistry.from_specs({"p": spec}, env=env)
    [problem] = registry.problems()
    assert problem.startswith(f"provider 'p' ({spec.kind}): `{field}`")
    assert "(hint: " in problem
    with pytest.raises(ConfigError) as info:
        registry.check()
    assert not info.value.retryable


@pytest.mark.parametrize(("options", "said"), [
    ({"failure_rate": "abc"},
     "option failure_rate must be a number within 0..1, got string \"abc\""),
    ({"failure_rate": True}, "option failure_rate must be a number within 0..1, got boolean true"),
    ({"seed": [1, 2]}, "option seed must be a whole number or a string, got array [1, 2]"),
    ({"reply": 3}, "option reply must be a string, got integer 3"),
])
def test_echo_options_of_the_wrong_type_are_config_errors(options: dict[str, object],
                                                         said: str) -> None:
    """`failure_rate: abc` and `seed: [1, 2]` crashed `plait run` with a raw ExceptionGroup
    (ValueError: could not convert string to float; TypeError: The only supported seed
    types are ...)."""
    with pytest.raises(ConfigError) as info:
        EchoProvider("e", options=options)
    assert str(info.value).startswith(f"provider 'e' (echo): {said}"), str(info.value)
