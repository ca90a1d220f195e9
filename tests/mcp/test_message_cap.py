"""The cap on one message from an MCP server, over real transports: a stdio subprocess (the
SDK's MCPServer, and a line with no end written under it) and streamable HTTP / HTTP+SSE
served by uvicorn on 127.0.0.1. A message over the cap fails the call with a ToolError that
names the server, the limit and `max_message_bytes`, ends that connection (the next call
starts the server afresh) and leaves the other servers alone; one under it passes whole."""

from __future__ import annotations

import gzip
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from engine.errors import ConfigError, ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.mcp._limits import MessageCap, _LimitedBody
from engine.spec.models import MCPServerSpec
from tests.mcp.big_server import big_server
from tests.mcp.test_transports import served

pytestmark = pytest.mark.anyio
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
CAP = 64 * 1024
#: a text whose result (the text twice, in content and structuredContent) is just under CAP
UNDER = CAP // 2 - 500
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=20, startup_timeout_s=20)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def stdio_spec(cap: int | None = CAP) -> MCPServerSpec:
    return MCPServerSpec(command=sys.executable, args=[str(HERE / "big_server.py")],
                         env={"PYTHONPATH": str(ROOT)}, max_message_bytes=cap)


def assert_too_large(error: ToolError, server: str, limit: int = CAP) -> None:
    text = str(error)
    assert f"MCP server '{server}' sent" in text
    assert f"({limit} bytes)" in text and "its connection was closed" in text
    assert "`max_message_bytes:`" in text
    assert error.context.get("server") == server


# ---------------------------------------------------------------- stdio


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_stdio_result_over_the_cap_fails_the_call_and_the_server_restarts(
        tmp_path: Path) -> None:
    specs = {"big": stdio_spec(), "other": stdio_spec()}
    async with MCPRuntime(specs, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.call_tool("other", "blob", {"size": 10})).text == "x" * 10
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": CAP + 1})
        assert_too_large(info.value, "big")
        assert "stdout line of more than 65536 bytes" in str(info.value)
        assert "tool 'big.blob' failed" in str(info.value)
        assert mcp.manager.status("big").running is False
        # the other server was not touched; the capped one starts afresh on next use, and
        # the call was not re-run although the tool is read-only (it would trip again)
        assert (await mcp.call_tool("other", "blob", {"size": 20})).text == "x" * 20
        assert (await mcp.call_tool("big", "blob", {"size": 30})).text == "x" * 30
        assert mcp.manager.status("big").spawns == 2
        assert mcp.executor.stats()["big.blob"]["retries"] == 0
        assert mcp.manager.status("other").spawns == 1


async def test_stdio_result_just_under_the_cap_arrives_whole(tmp_path: Path) -> None:
    # the result carries the text twice (content and structuredContent), plus its envelope
    async with MCPRuntime({"big": stdio_spec()}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        result = await mcp.call_tool("big", "blob", {"size": UNDER})
        assert result.text == "x" * UNDER


async def test_stdio_default_cap_passes_a_large_result(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024  # 48 reads of the pipe: once quadratic in the SDK's reader
    async with MCPRuntime({"big": stdio_spec(None)}, base_dir=tmp_path,
                          settings=SETTINGS) as mcp:
        assert len((await mcp.call_tool("big", "blob", {"size": size})).text) == size


async def test_stdio_line_without_end_is_cut_at_the_cap_and_the_server_killed(
        tmp_path: Path) -> None:
    """A server that writes a line with no end (up to 1 GiB): the call fails as soon as the
    cap is passed, instead of the engine buffering it all."""
    async with MCPRuntime({"big": stdio_spec()}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        await mcp.call_tool("big", "blob", {"size": 1})
        with anyio.fail_after(15), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "flood", {})
        assert_too_large(info.value, "big")


async def test_stdio_log_notification_over_the_cap_ends_the_connection(
        tmp_path: Path) -> None:
    async with MCPRuntime({"big": stdio_spec()}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "shout", {"size": CAP + 1})
        assert_too_large(info.value, "big")
        assert (await mcp.call_tool("big", "shout", {"size": 100})).text == "ok"


async def test_stdio_resource_read_over_the_cap(tmp_path: Path) -> None:
    async with MCPRuntime({"big": stdio_spec()}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        contents = await mcp.read_resource("big", "big://1000")
        assert contents[0]["text"] == "z" * 1000
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.read_resource("big", f"big://{CAP + 1}")
        assert_too_large(info.value, "big")
        assert "read_resource 'big://65537' failed" in str(info.value)


# ---------------------------------------------------------------- HTTP


@pytest.fixture(scope="module", params=["json", "sse-stream"])
def http_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The big server over streamable HTTP answering with JSON bodies or with SSE streams."""
    app = big_server().streamable_http_app(json_response=request.param == "json")
    with served(app, lifespan="on") as port:
        yield str(request.param), port


def settings_for(kind: str) -> MCPSettings:
    """The SDK's server answers a 2026-era call with a JSON body; a 2025-era session gets an
    SSE stream when the app streams."""
    return SETTINGS if kind == "json" else replace(SETTINGS, protocol_mode="legacy")


async def test_http_result_over_the_cap_fails_and_one_under_passes(
        tmp_path: Path, http_server: tuple[str, int]) -> None:
    kind, port = http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp", max_message_bytes=CAP)
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=settings_for(kind)) as mcp:
        assert (await mcp.call_tool("big", "blob", {"size": UNDER})).text == "x" * UNDER
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": CAP + 1})
        assert_too_large(info.value, "big")
        assert ("response body" if kind == "json" else "SSE event") in str(info.value)
        assert mcp.manager.status("big").running is False
        assert (await mcp.call_tool("big", "blob", {"size": 5})).text == "xxxxx"


async def test_http_log_notification_over_the_cap(tmp_path: Path) -> None:
    """On a 2025-era session the server's log notifications for a call come as events of
    the call's SSE stream: counted like any other message. (An app that answers with JSON
    bodies sends them nowhere.)"""
    with served(big_server().streamable_http_app(), lifespan="on") as port:
        await _shout_over_http(tmp_path, port)


async def _shout_over_http(tmp_path: Path, port: int) -> None:
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp", max_message_bytes=CAP)
    settings = replace(SETTINGS, protocol_mode="legacy")
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=settings) as mcp:
        assert (await mcp.call_tool("big", "shout_http", {"size": 100})).text == "ok"
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "shout_http", {"size": CAP + 1})
        assert_too_large(info.value, "big")


async def test_http_default_cap_is_above_the_sdks_own_one_mib(
        tmp_path: Path, http_server: tuple[str, int]) -> None:
    """The SDK caps one SSE event at 1 MiB unless told otherwise: plait passes its cap."""
    kind, port = http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp")
    size = 2 * 1024 * 1024
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=settings_for(kind)) as mcp:
        assert len((await mcp.call_tool("big", "blob", {"size": size})).text) == size


async def _endless_json(send: Any) -> None:
    """A JSON body that never ends (up to 1 GiB: the client hangs up long before)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"jsonrpc": "2.0", "result": "',
                "more_body": True})
    chunk = b"x" * 65536
    for _ in range(16384):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b'"}'})


async def _gzipped_json(send: Any) -> None:
    """A small JSON-RPC answer, gzip-encoded although the client asked for identity."""
    body = gzip.compress(b'{"jsonrpc": "2.0", "id": 1, "result": {"content": []}}')
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-encoding", b"gzip"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module", params=[_endless_json, _gzipped_json])
def hostile_http_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """The big server over streamable HTTP, except that a `tools/call` is answered by the
    param: an endless body, or a compressed one."""
    inner = big_server().streamable_http_app(json_response=True)
    answer = request.param

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await inner(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b'"tools/call"' in body:
            await answer(send)
            return
        replay = iter([{"type": "http.request", "body": body, "more_body": False}])
        await inner(scope, lambda: _next(replay, receive), send)

    with served(app, lifespan="on") as port:
        yield answer.__name__, port


async def _next(replay: Iterator[dict[str, Any]], receive: Any) -> dict[str, Any]:
    for message in replay:
        return message
    result: dict[str, Any] = await receive()
    return result


async def test_http_endless_or_compressed_body_is_refused(
        tmp_path: Path, hostile_http_server: tuple[str, int]) -> None:
    kind, port = hostile_http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp", max_message_bytes=CAP)
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with anyio.fail_after(15), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": 1})
        if kind == "_endless_json":
            assert_too_large(info.value, "big")
        else:
            assert "sent a gzip-encoded body although plait asked for none" in str(info.value)


async def test_stdio_tool_listing_over_the_cap(tmp_path: Path) -> None:
    spec = stdio_spec()
    spec = spec.model_copy(update={"args": [*spec.args, "--describe", str(CAP + 1)]})
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.list_tools("big")
        assert_too_large(info.value, "big")
        assert str(info.value).startswith("listing the tools failed: MCP server 'big' sent")


async def test_stdio_initialize_answer_over_the_cap_fails_the_start(tmp_path: Path) -> None:
    spec = stdio_spec()
    spec = spec.model_copy(update={"args": [*spec.args, "--instructions", str(CAP + 1)]})
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": 1})
        assert_too_large(info.value, "big")


@pytest.fixture(scope="module")
def legacy_sse_server() -> Iterator[int]:
    with served(big_server().sse_app(), lifespan="on") as port:
        yield port


@pytest.mark.parametrize("cap", [CAP, None])
async def test_legacy_sse_over_the_cap(tmp_path: Path, legacy_sse_server: int,
                                       cap: int | None) -> None:
    """Over HTTP+SSE the SDK's 1 MiB event limit also applies: plait's own count trips first
    and says so."""
    spec = MCPServerSpec(url=f"http://127.0.0.1:{legacy_sse_server}/sse", transport="sse",
                         max_message_bytes=cap)
    limit = cap or 1024 * 1024
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.call_tool("big", "blob", {"size": 10})).text == "x" * 10
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": limit + 1})
        assert_too_large(info.value, "big", limit)
        assert ("the MCP SDK's own limit" in str(info.value)) == (cap is None)
        assert (await mcp.call_tool("big", "blob", {"size": 10})).text == "x" * 10


# ---------------------------------------------------------------- counting, settings


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _read(parts: list[bytes], limit: int) -> MessageCap:
    cap = MessageCap("s", limit, "streamable-http")
    body = _LimitedBody(_chunks(parts), cap, sse=True)
    with pytest.raises(httpx2.SSEError, match="more than"):
        async for _ in body:
            pass
    return cap


async def _read_all(parts: list[bytes], limit: int) -> int:
    body = _LimitedBody(_chunks(parts), MessageCap("s", limit), sse=True)
    return sum([len(chunk) async for chunk in body])


async def test_sse_counting_is_per_event_whatever_the_chunks() -> None:
    event = b"event: message\r\ndata: " + b"a" * 70 + b"\r\n\r\n"
    stream = event * 50
    # many events, each at the limit, in chunks cut anywhere (even inside "\r\n\r\n")
    for size in (1, 3, 7, 64, 1000, len(stream)):
        parts = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert await _read_all(parts, len(event)) == len(stream)
        await _read(parts, len(event) - 1)
    # one event over it, after good ones and in the same chunk as they are
    bad = b"data: " + b"b" * 200 + b"\n\n"
    for parts in ([stream + bad], [stream, bad], [stream + bad[:50], bad[50:] + event]):
        cap = await _read(parts, 150)
        assert cap.error is not None and "an SSE event of more than 150 bytes" in str(cap.error)


def test_the_environment_sets_the_default_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_MAX_MESSAGE_BYTES", "2048")
    assert MCPSettings.from_env().max_message_bytes == 2048
    monkeypatch.setenv("MCP_MAX_MESSAGE_BYTES", "10")
    with pytest.raises(ConfigError, match="at least 1024"):
        MCPSettings.from_env()
    monkeypatch.delenv("MCP_MAX_MESSAGE_BYTES")
    assert MCPSettings.from_env().max_message_bytes == 16 * 1024 * 1024
