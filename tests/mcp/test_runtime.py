"""MCPRuntime over in-process servers: discovery, calls, results, errors, filters, stats."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError, PolicyViolation, ToolError, UnknownToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.spec.models import MCPServerSpec
from tests.mcp.inproc import demo_server, paged_server

pytestmark = pytest.mark.anyio
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=5)


def runtime(tmp_path: Path, spec: MCPServerSpec | None = None, **kwargs: object) -> MCPRuntime:
    servers = {"demo": spec} if spec is not None else {}
    return MCPRuntime(servers, base_dir=tmp_path, in_process={"demo": demo_server()},
                      settings=SETTINGS, **kwargs)  # type: ignore[arg-type]


async def test_call_text_and_structured(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        result = await mcp.call_tool("demo", "add", {"a": 2, "b": 3})
        assert result.text == "5"
        assert result.structured == {"result": 5}
        assert result.value == 5
        profile = await mcp.call("demo.profile", {"name": "ada"})
        assert profile.value == {"name": "ada", "length": 3}


async def test_image_and_resource_and_prompt(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        image = await mcp.call_tool("demo", "picture", {})
        assert image.images and image.images[0]["mimeType"] == "image/png"
        contents = await mcp.read_resource("demo", "memo://greeting")
        assert contents[0]["text"] == "hello from a resource"
        prompt = await mcp.get_prompt("demo", "review", {"topic": "the plan"})
        assert "Please review the plan." in str(prompt["messages"])


async def test_is_error_becomes_tool_error_with_server_text(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        with pytest.raises(ToolError, match=r"demo\.fail") as info:
            await mcp.call_tool("demo", "fail", {"reason": "disk on fire"}, step_id="s1")
        assert info.value.context["step"] == "s1"
        assert info.value.context["tool"] == "fail"


async def test_unknown_tool_and_server_suggest(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        with pytest.raises(ToolError, match="has no tool 'ad'") as info:
            await mcp.call_tool("demo", "ad", {})
        assert info.value.hint == "did you mean 'add'?"
        with pytest.raises(ToolError, match="unknown MCP server 'dem'") as info:
            await mcp.call_tool("dem", "add", {})
        assert info.value.hint == "did you mean 'demo'?"


async def test_arguments_checked_against_schema_before_call(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        with pytest.raises(ToolError, match="do not match its input schema at a"):
            await mcp.call_tool("demo", "add", {"a": "two", "b": 3})
        with pytest.raises(ToolError, match="'b' is a required property"):
            await mcp.call_tool("demo", "add", {"a": 1})
        # the server never saw the bad calls
        assert (await mcp.call_tool("demo", "calls", {})).text == "0"


async def test_allow_deny_filters(tmp_path: Path) -> None:
    spec = MCPServerSpec(command="in-process", tools={"allow": ["a*", "e*", "fail"],
                                                      "deny": ["echo"]})
    async with runtime(tmp_path, spec) as mcp:
        names = [t.name for t in await mcp.list_tools("demo")]
        assert names == ["add", "fail"]
        with pytest.raises(UnknownToolError, match=r"filtered out by the server's "
                           r"`tools\.deny` pattern 'echo'") as denied:
            await mcp.call_tool("demo", "echo", {"text": "x"})
        assert denied.value.hint == "remove that pattern from `tools.deny`"
        with pytest.raises(UnknownToolError, match=r"filtered out by the server's `tools\.allow` "
                           r"\(none of \['a\*', 'e\*', 'fail'\] matches it\)") as hidden:
            await mcp.call_tool("demo", "calls", {})
        assert hidden.value.hint == "add 'calls' to `tools.allow`"


async def test_metadata_list_and_search(tmp_path: Path) -> None:
    spec = MCPServerSpec(command="in-process", tool_metadata={
        "add": {"category": "math", "tags": ["numbers"]},
        "profile": {"category": "people", "tags": ["structured"]}})
    async with runtime(tmp_path, spec) as mcp:
        await mcp.list_tools()
        assert [t.name for t in mcp.registry.list(category="math")] == ["add"]
        ranked = [t.name for t in mcp.registry.search("echo text")]
        assert ranked[0] == "echo"
        assert [t.name for t in mcp.registry.search("numbers")] == ["add"]
        assert mcp.registry.search("zzz-nothing") == []


async def test_timeout_per_tool(tmp_path: Path) -> None:
    spec = MCPServerSpec(command="in-process", tool_metadata={"slow": {"timeout": "200ms"}})
    async with runtime(tmp_path, spec) as mcp:
        with pytest.raises(ToolError, match=r"did not answer within 0.2s"):
            await mcp.call_tool("demo", "slow", {"seconds": 5})
        assert (await mcp.call_tool("demo", "slow", {"seconds": 0})).text == "done"


async def test_validator_hook_runs_before_call(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, object]]] = []

    def validator(name: str, args: object) -> None:
        seen.append((name, dict(args)))  # type: ignore[call-overload]
        if args.get("text") == "rm -rf /":  # type: ignore[attr-defined]
            raise PolicyViolation("blocked by test policy")

    async with runtime(tmp_path, validator=validator) as mcp:
        assert (await mcp.call_tool("demo", "echo", {"text": "hi"})).text == "hi"
        with pytest.raises(PolicyViolation):
            await mcp.call_tool("demo", "echo", {"text": "rm -rf /"})
    assert seen == [("demo.echo", {"text": "hi"}), ("demo.echo", {"text": "rm -rf /"})]


async def test_pagination(tmp_path: Path) -> None:
    mcp = MCPRuntime({}, base_dir=tmp_path, in_process={"paged": paged_server()},
                     settings=SETTINGS)
    async with mcp:
        tools = await mcp.list_tools("paged")
        assert [t.name for t in tools] == [f"t{i:02d}" for i in range(25)]


async def test_tool_definitions_expand_globs(tmp_path: Path) -> None:
    async with runtime(tmp_path) as mcp:
        defs = await mcp.tool_definitions(["demo.e*", "demo.add"])
        assert [d.name for d in defs] == ["demo.echo", "demo.add"]
        assert defs[1].input_schema["required"] == ["a", "b"]
        with pytest.raises(ToolError, match="did you mean 'add'"):
            await mcp.tool_definitions(["demo.adx"])
        # a glob that matches nothing is a typo, not an agent without tools
        with pytest.raises(UnknownToolError, match=r"'demo\.ech_\*' matches no tool") as info:
            await mcp.tool_definitions(["demo.add", "demo.ech_*"])
        assert "add, " in str(info.value.hint)


async def test_stats_and_concurrent_calls_share_one_session(tmp_path: Path) -> None:
    import anyio

    async with runtime(tmp_path) as mcp:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(mcp.call_tool, "demo", "add", {"a": i, "b": 1})
        stats = mcp.stats()
        assert stats["servers"]["demo"]["calls"] == 50
        assert stats["servers"]["demo"]["spawns"] == 1
        assert stats["tools"]["demo.add"]["calls"] == 50
        assert stats["servers"]["demo"]["latency_median_ms"] > 0
        assert await mcp.manager.health_check("demo")
        status = mcp.manager.status("demo")
        assert (status.running, status.spawns, status.protocol_version) == \
            (True, 1, "2026-07-28")


async def test_rate_limiter_waits_for_a_slot() -> None:
    import anyio

    from engine.mcp import RateLimiter

    limiter = RateLimiter(2, window_s=0.3)
    start = anyio.current_time()
    for _ in range(3):
        await limiter.acquire()
    assert anyio.current_time() - start >= 0.25


async def test_rate_limit_from_tool_metadata(tmp_path: Path) -> None:
    spec = MCPServerSpec(command="in-process", tool_metadata={"echo": {"rate_limit": 5}})
    async with runtime(tmp_path, spec) as mcp:
        for _ in range(5):
            await mcp.call_tool("demo", "echo", {"text": "x"})
        limiter = mcp.executor._limiters["demo.echo"]
        assert limiter.per_minute == 5 and len(limiter._times) == 5
        assert "demo.add" not in mcp.executor._limiters


async def test_max_connections_closes_least_recently_used_idle(tmp_path: Path) -> None:
    settings = MCPSettings(health_interval_s=0, call_timeout_s=5, max_connections=1)
    mcp = MCPRuntime({}, base_dir=tmp_path, settings=settings,
                     in_process={"one": demo_server(), "two": demo_server()})
    async with mcp:
        await mcp.call_tool("one", "add", {"a": 1, "b": 1})
        await mcp.call_tool("two", "add", {"a": 1, "b": 1})
        assert not mcp.manager.is_running("one") and mcp.manager.is_running("two")
        await mcp.call_tool("one", "add", {"a": 1, "b": 1})
        assert mcp.manager.status("one").spawns == 2


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.errors import ConfigError

    monkeypatch.setenv("MCP_SERVER_TIMEOUT", "2.5")
    monkeypatch.setenv("MCP_MAX_CONNECTIONS", "3")
    monkeypatch.setenv("MCP_HEALTH_CHECK_INTERVAL", "0")
    settings = MCPSettings.from_env()
    assert (settings.call_timeout_s, settings.max_connections, settings.health_interval_s) == \
        (2.5, 3, 0)
    monkeypatch.setenv("MCP_SERVER_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="MCP_SERVER_TIMEOUT='soon' is not a number"):
        MCPSettings.from_env()


@pytest.mark.parametrize(("name", "raw"), [("MCP_SERVER_TIMEOUT", "nan"),
                                           ("MCP_MAX_CONNECTIONS", "inf"),
                                           ("MCP_HEALTH_CHECK_INTERVAL", "nan")])
def test_settings_refuse_numbers_that_are_not_finite(monkeypatch: pytest.MonkeyPatch,
                                                     name: str, raw: str) -> None:
    """NaN passed the minimum check (NaN < 1 is false): a NaN timeout reached the calls;
    MCP_MAX_CONNECTIONS=inf crashed with OverflowError (int(inf)), a traceback."""
    monkeypatch.setenv(name, raw)
    with pytest.raises(ConfigError, match=f"{name}='{raw}' is not a number"):
        MCPSettings.from_env()
