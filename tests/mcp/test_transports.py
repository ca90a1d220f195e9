"""Bundled servers as real subprocesses over stdio, streamable HTTP and SSE; third-party
servers (mcp-server-time, mcp-server-git) over stdio from their own virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.mcp import MCPRuntime, MCPSettings
from engine.spec.models import MCPServerSpec
from tests.mcp.conftest import ROOT, free_port, spawn_http

pytestmark = pytest.mark.anyio
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=15, startup_timeout_s=30)
MODULES = {"files": "engine.mcp.servers.files", "data": "engine.mcp.servers.data",
           "web": "engine.mcp.servers.web"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "hello.txt").write_text("hello over the wire")
    (data / "t.csv").write_text("a,b\n1,2\n3,4\n")
    return data


def args_for(kind: str, root: Path) -> list[str]:
    return ["--allow-domain", "127.0.0.1"] if kind == "web" else ["--root", str(root)]


async def check(mcp: MCPRuntime, kind: str) -> None:
    if kind == "files":
        assert (await mcp.call("s.read_file", {"path": "hello.txt"})).text == \
            "hello over the wire"
    elif kind == "data":
        assert (await mcp.call("s.stats", {"path": "t.csv", "column": "b"})).value["sum"] == 6
    else:
        names = [t.name for t in await mcp.list_tools("s")]
        assert names == ["fetch"]


@pytest.mark.parametrize("kind", ["files", "data", "web"])
async def test_bundled_over_stdio(tmp_path: Path, root: Path, kind: str) -> None:
    spec = MCPServerSpec(command=sys.executable, args=["-m", MODULES[kind],
                                                       *args_for(kind, root)],
                         env={"PYTHONPATH": str(ROOT)})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        await check(mcp, kind)


@pytest.fixture(params=[("files", "streamable-http"), ("data", "streamable-http"),
                        ("web", "streamable-http"), ("files", "sse")])
def http_server(request: pytest.FixtureRequest, root: Path) -> Iterator[tuple[str, str, int]]:
    kind, transport = request.param
    for path, port in spawn_http(MODULES[kind], *args_for(kind, root), transport=transport):
        yield kind, path, port


async def test_bundled_over_http(tmp_path: Path, http_server: tuple[str, str, int]) -> None:
    kind, path, port = http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/{path}",
                         transport="sse" if path == "sse" else None,
                         headers={"X-Plait-Test": "1"})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        await check(mcp, kind)
        assert mcp.manager.status("s").transport == ("sse" if path == "sse" else
                                                      "streamable-http")


def third_party_bin() -> Path:
    value = os.environ.get("PLAIT_TEST_MCP_BIN")
    if not value:
        pytest.skip("PLAIT_TEST_MCP_BIN is unset: point it at the bin/ directory of a "
                    "virtualenv with mcp-server-time and mcp-server-git installed")
    return Path(value)


async def test_third_party_time_server(tmp_path: Path) -> None:
    spec = MCPServerSpec(command=str(third_party_bin() / "mcp-server-time"),
                         args=["--local-timezone", "UTC"])
    async with MCPRuntime({"time": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        names = {t.name for t in await mcp.list_tools("time")}
        assert "get_current_time" in names
        result = await mcp.call("time.get_current_time", {"timezone": "Europe/Berlin"})
        assert "Europe/Berlin" in result.text


async def test_third_party_git_server(tmp_path: Path) -> None:
    binary = third_party_bin() / "mcp-server-git"
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
           "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "a.txt").write_text("a\n")
    subprocess.run(["git", "-C", str(repo), "add", "a.txt"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "first commit"], check=True,
                   env=env)
    spec = MCPServerSpec(command=str(binary), args=["--repository", str(repo)])
    async with MCPRuntime({"git": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        log = await mcp.call("git.git_log", {"repo_path": str(repo)})
        assert "first commit" in log.text
        status = await mcp.call("git.git_status", {"repo_path": str(repo)})
        assert "branch" in status.text.lower()


@contextmanager
def served(app: Any, **config: Any) -> Iterator[int]:
    """`app` served by uvicorn on 127.0.0.1 in a thread while the block runs: its port."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def recording_http_server() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """An SDK MCPServer behind uvicorn on 127.0.0.1, recording each request's headers."""
    from tests.mcp.inproc import demo_server

    seen: list[dict[str, str]] = []
    inner = demo_server().streamable_http_app()

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            raw = scope["headers"]
            seen.append({k.decode(): v.decode() for k, v in raw})  # type: ignore[attr-defined]
        await inner(scope, receive, send)  # type: ignore[arg-type]

    with served(app, lifespan="on") as port:
        yield port, seen


async def test_http_headers_reach_the_server(
        tmp_path: Path, recording_http_server: tuple[int, list[dict[str, str]]]) -> None:
    port, seen = recording_http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp",
                         headers={"Authorization": "Bearer t0ken"})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.call("s.add", {"a": 2, "b": 2})).value == 4
    assert seen and all(h.get("authorization") == "Bearer t0ken" for h in seen)


TOKEN = "t0ken-SECRET-0123456789abcdef"


@pytest.fixture(scope="module")
def refusing_http_server() -> Iterator[int]:
    """Answers /mcp and /sse with 401 (echoing the token it was sent), POST /hang never in
    time, anything else 404."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def deny(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"bad token {request.headers.get('authorization')}",
                                 status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def hang(request: Request) -> PlainTextResponse:
        await anyio.sleep(5)  # longer than the client waits
        return PlainTextResponse("too late")

    app = Starlette(routes=[Route("/mcp", deny, methods=["GET", "POST", "DELETE"]),
                            Route("/sse", deny), Route("/hang", hang, methods=["POST"])])
    with served(app, lifespan="off", timeout_graceful_shutdown=1) as port:
        yield port


@pytest.mark.parametrize(("path", "transport", "expected"), [
    ("mcp", None, "refused the credentials (HTTP 401)"),
    ("sse", "sse", "refused the credentials (HTTP 401)"),
    ("nothing-here", None, "has no MCP endpoint there (HTTP 404)"),
    ("nothing-here", "sse", "has no MCP endpoint there (HTTP 404)"),
])
async def test_an_http_error_at_connect_says_what_it_means(
        tmp_path: Path, refusing_http_server: int, path: str, transport: str | None,
        expected: str) -> None:
    from engine.errors import ToolError

    url = f"http://127.0.0.1:{refusing_http_server}/{path}"
    spec = MCPServerSpec(url=url, transport=transport,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with pytest.raises(ToolError) as info:
            await mcp.call("s.echo", {"text": "x"})
    text = str(info.value)
    assert expected in text and url in text
    assert ("headers:" if "401" in expected else "path") in (info.value.hint or "")
    assert TOKEN not in text and "developer.mozilla.org" not in text


async def test_an_http_server_that_never_initialises_is_named_with_its_url(
        tmp_path: Path, refusing_http_server: int) -> None:
    from engine.errors import ToolError

    url = f"http://127.0.0.1:{refusing_http_server}/hang"
    spec = MCPServerSpec(url=url, startup_timeout="500ms")
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with pytest.raises(ToolError, match=r"did not finish initialising within 0\.5s") \
                as info:
            await mcp.call("s.echo", {"text": "x"})
    assert url in str(info.value) and "command" not in (info.value.hint or "")


@pytest.fixture
def crashing_sse_server() -> Iterator[int]:
    for _path, port in spawn_http("tests.mcp.http_faulty", transport="sse"):
        yield port


async def test_an_sse_stream_that_drops_mid_call_is_a_tool_error_without_a_traceback(
        tmp_path: Path, crashing_sse_server: int,
        caplog: pytest.LogCaptureFixture) -> None:
    from engine.errors import ToolError

    spec = MCPServerSpec(url=f"http://127.0.0.1:{crashing_sse_server}/sse", transport="sse")
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.call("s.echo", {"text": "up"})).text == "up"
        with pytest.raises(ToolError, match=r"went down during 's\.crash'"):
            await mcp.call("s.crash", {})
    # the SDK logs the dropped stream with a traceback; it must not reach the user's handlers
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("mcp.")]


async def test_an_sse_stream_dropped_between_calls_reconnects_on_the_next_call(
        tmp_path: Path) -> None:
    from tests.mcp.conftest import child_env, free_port, wait_port

    port = free_port()
    argv = [sys.executable, "-m", "tests.mcp.http_faulty", "--transport", "sse", "--port",
            str(port)]

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, env=child_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_port(port, proc)
        return proc

    proc = start()
    try:
        spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/sse", transport="sse")
        async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
            assert (await mcp.call("s.echo", {"text": "one"})).text == "one"
            proc.kill()  # the server goes away while no call is in flight ...
            proc.wait(timeout=5)
            with anyio.fail_after(5):
                while mcp.manager.is_running("s"):  # ... and plait notices the dropped stream
                    await anyio.sleep(0.02)
            proc = start()  # back on the same port
            # not "went down during 's.echo'": the call was never sent on the dead stream
            assert (await mcp.call("s.echo", {"text": "two"})).text == "two"
    finally:
        proc.kill()
        proc.wait(timeout=5)


@pytest.fixture
def revoking_http_server() -> Iterator[tuple[int, dict[str, bool]]]:
    """An SDK MCPServer behind uvicorn that answers every POST with 401 once told to."""
    from tests.mcp.inproc import demo_server

    state = {"revoked": False}
    inner = demo_server().streamable_http_app()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and state["revoked"]:
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"token expired"})
            return
        await inner(scope, receive, send)

    with served(app, lifespan="on") as port:
        yield port, state


async def test_a_401_in_the_middle_of_a_run_names_the_credentials(
        tmp_path: Path, revoking_http_server: tuple[int, dict[str, bool]]) -> None:
    from engine.errors import ToolError

    port, state = revoking_http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.call("s.add", {"a": 2, "b": 2})).value == 4
        state["revoked"] = True  # the token expires mid-run
        with pytest.raises(ToolError, match=r"refused the credentials \(HTTP 401\)") as info:
            await mcp.call("s.echo", {"text": "x"})
        assert "headers:" in (info.value.hint or "") and TOKEN not in str(info.value)
        state["revoked"] = False  # an error that is no HTTP status is not labelled as one
        assert (await mcp.call("s.add", {"a": 1, "b": 1})).value == 2
        assert mcp.manager.http_error_status("s") is None


async def test_a_401_under_a_resource_read_or_prompt_get_names_the_credentials(
        tmp_path: Path, revoking_http_server: tuple[int, dict[str, bool]]) -> None:
    """Found in review: a read or get said only "failed: Server returned an error
    response", the SDK's words, where a tool call names the status and `headers:`."""
    from engine.errors import ToolError

    port, state = revoking_http_server
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp",
                         headers={"Authorization": f"Bearer {TOKEN}"})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        assert (await mcp.read_resource("s", "memo://greeting"))[0]["text"]
        state["revoked"] = True
        with pytest.raises(ToolError, match=r"refused the credentials \(HTTP 401\)") as info:
            await mcp.read_resource("s", "memo://greeting")
        assert str(info.value).startswith("read_resource 'memo://greeting' failed: ")
        assert "headers:" in (info.value.hint or "") and TOKEN not in str(info.value)
        with pytest.raises(ToolError, match=r"refused the credentials \(HTTP 401\)"):
            await mcp.get_prompt("s", "review", {"topic": "x"})
