"""The message cap on long-lived HTTP streams, over real sockets (uvicorn on 127.0.0.1): it
counts one message, never a connection's lifetime; an SSE event reaches the SDK when it
arrives, not when the body ends; and the HTTP client plait gives the SDK still goes through
the proxy the environment names (HTTP_PROXY), as the SDK's own client did."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime
from engine.mcp._limits import MessageCap, limited_http_client
from engine.spec.models import MCPServerSpec
from tests.mcp.big_server import big_server
from tests.mcp.test_message_cap import CAP, SETTINGS, assert_too_large
from tests.mcp.test_transports import served

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def legacy_sse_server() -> Iterator[int]:
    with served(big_server().sse_app(), lifespan="on") as port:
        yield port


async def test_legacy_sse_stream_carries_more_than_the_cap_in_many_events(
        tmp_path: Path, legacy_sse_server: int) -> None:
    """Over HTTP+SSE every answer comes on one GET stream that lives as long as the
    connection: 60 answers of ~2 KiB each (twice the cap in all) pass; one event over the cap
    still fails."""
    spec = MCPServerSpec(url=f"http://127.0.0.1:{legacy_sse_server}/sse", transport="sse",
                         max_message_bytes=CAP)
    async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with anyio.fail_after(60):
            for i in range(60):
                text = (await mcp.call_tool("big", "blob", {"size": 1000 + i})).text
                assert text == "x" * (1000 + i)
        assert mcp.manager.status("big").spawns == 1  # one connection all along
        with anyio.fail_after(30), pytest.raises(ToolError) as info:
            await mcp.call_tool("big", "blob", {"size": CAP + 1})
        assert_too_large(info.value, "big")


def _sse_app(release: threading.Event, events: int, size: int) -> Any:
    """A GET stream of `events` small SSE events: the first at once, the rest once
    `release` is set (the client has seen the first), with no end in between."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        event = b"event: message\r\ndata: " + b"e" * size + b"\r\n\r\n"
        await send({"type": "http.response.body", "body": event, "more_body": True})
        with anyio.fail_after(20):
            while not release.is_set():
                await anyio.sleep(0.01)
        for _ in range(events - 1):
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


async def test_an_sse_event_is_delivered_as_it_arrives_and_the_count_restarts_per_event(
        ) -> None:
    release = threading.Event()
    events, size = 400, 1000  # ~400 KB in all through a cap of 2 KiB
    with served(_sse_app(release, events, size)) as port:
        cap = MessageCap("s", 2048, "streamable-http")
        client = limited_http_client(cap, headers=None, timeout=httpx2.Timeout(20))
        async with client, client.stream("GET", f"http://127.0.0.1:{port}/") as response:
            received = 0
            with anyio.fail_after(20):
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    # the first event came while the server still holds the rest back
                    release.set()
        assert cap.error is None
        assert received == events * (size + len(b"event: message\r\ndata: \r\n\r\n"))


@contextmanager
def forwarding_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A plain HTTP forward proxy on 127.0.0.1 (absolute-form requests, one per connection):
    its port, and the request lines it forwarded."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()

    def relay(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def handle(client: socket.socket) -> None:
        with client:
            forward(client)

    def forward(client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv(65536)
            if not data:
                return
            head += data
        line, _, rest = head.partition(b"\r\n")
        method, target, version = line.split(b" ")
        seen.append(line)
        hostport, _, path = target.split(b"://", 1)[1].partition(b"/")
        host, _, port = hostport.partition(b":")
        upstream = socket.create_connection((host.decode(), int(port)), timeout=10)
        upstream.settimeout(None)
        client.settimeout(None)
        headers = b"\r\n".join(h for h in rest.split(b"\r\n")
                               if not h.lower().startswith((b"connection:",
                                                            b"proxy-connection:")))
        upstream.sendall(b" ".join((method, b"/" + path, version)) + b"\r\n"
                         + b"connection: close\r\n" + headers)
        back = threading.Thread(target=relay, args=(upstream, client), daemon=True)
        back.start()
        relay(client, upstream)
        back.join(timeout=10)
        upstream.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(client,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


async def test_remote_server_is_reached_through_the_environments_proxy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's client honours HTTP_PROXY (httpx's trust_env); the client that counts the
    bytes must too, or plait could not reach a server behind a proxy. The cap still
    applies to what comes through the proxy."""
    with served(big_server().streamable_http_app(json_response=True), lifespan="on") as port, \
            forwarding_proxy() as (proxy_port, seen):
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY",
                     "https_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
        spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp", max_message_bytes=CAP)
        async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
            with anyio.fail_after(30):
                assert (await mcp.call_tool("big", "blob", {"size": 10})).text == "x" * 10
            assert any(b"/mcp" in line for line in seen), seen
            with anyio.fail_after(30), pytest.raises(ToolError) as info:
                await mcp.call_tool("big", "blob", {"size": CAP + 1})
            assert_too_large(info.value, "big")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # NO_PROXY is honoured too
        seen.clear()
        async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
            with anyio.fail_after(30):
                assert (await mcp.call_tool("big", "blob", {"size": 10})).text == "x" * 10
        assert seen == []


async def test_http_connections_are_reused_under_the_counting_transport(
        tmp_path: Path) -> None:
    """Every response body is closed once read (its connection goes back to the pool): 30
    calls over streamable HTTP use a handful of TCP connections, not one each."""
    inner = big_server().streamable_http_app(json_response=True)
    clients: set[tuple[str, int]] = set()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            clients.add(tuple(scope["client"]))
        await inner(scope, receive, send)

    with served(app, lifespan="on") as port:
        spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp", max_message_bytes=CAP)
        async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
            with anyio.fail_after(30):
                for i in range(30):
                    assert (await mcp.call_tool("big", "blob", {"size": i})).text == "x" * i
    assert 1 <= len(clients) <= 3, clients


async def test_cancelling_a_read_closes_the_response() -> None:
    """A read cancelled mid-stream (a call's timeout) closes its connection: the server sees
    the client go, instead of streaming into a response nobody reads."""
    gone = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        async with anyio.create_task_group() as tg:
            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            with anyio.move_on_after(20):
                while True:
                    await send({"type": "http.response.body", "body": b"data: x\n\n",
                                "more_body": True})
                    await anyio.sleep(0.05)
            tg.cancel_scope.cancel()

    with served(app) as port:
        cap = MessageCap("s", 2048, "streamable-http")
        client = limited_http_client(cap, headers=None, timeout=httpx2.Timeout(20))
        async with client:
            with anyio.move_on_after(1):
                async with client.stream("GET", f"http://127.0.0.1:{port}/") as response:
                    async for _ in response.aiter_bytes():
                        pass
            with anyio.fail_after(10):
                while not gone.is_set():
                    await anyio.sleep(0.02)
        assert cap.error is None
