"""The bundled web server against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.mcp.servers import web
from engine.spec.models import MCPServerSpec
from tests.http_site import local_site
from tests.mcp.conftest import ROOT

pytestmark = pytest.mark.anyio
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=10)
PAGE = (b"<html><body><h1>Title</h1><p>Some <b>bold</b> text and a "
        b"<a href='https://example.org/x'>link</a>.</p></body></html>")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/page":
            self._send(200, "text/html; charset=utf-8", PAGE)
        elif self.path == "/big":
            self._send(200, "text/plain", b"x" * 5000)
        elif self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/page")
            self.end_headers()
        elif self.path == "/tofile":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        elif self.path == "/away":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/page")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"nope")

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    with local_site(Handler) as url:
        yield url


def web_rt(tmp_path: Path, allowed: list[str], **kwargs: object) -> MCPRuntime:
    return MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                      in_process={"web": web.build(allowed, **kwargs)})  # type: ignore[arg-type]


async def test_fetch_html_as_markdown_and_text(tmp_path: Path, site: str) -> None:
    async with web_rt(tmp_path, ["127.0.0.1"]) as mcp:
        page = (await mcp.call("web.fetch", {"url": f"{site}/page"})).value
        assert page["status"] == 200
        assert "# Title" in page["content"] and "**bold**" in page["content"]
        assert "[link](https://example.org/x)" in page["content"]
        plain = (await mcp.call("web.fetch", {"url": f"{site}/page", "format": "text"})).value
        assert "**" not in plain["content"] and "link" in plain["content"]


async def test_no_allowlist_refuses_everything(tmp_path: Path, site: str) -> None:
    async with web_rt(tmp_path, []) as mcp:
        with pytest.raises(ToolError, match="not on this server's domain allowlist"):
            await mcp.call("web.fetch", {"url": f"{site}/page"})


async def test_other_host_and_redirect_off_list_refused(tmp_path: Path, site: str) -> None:
    async with web_rt(tmp_path, ["127.0.0.1"]) as mcp:
        ok = (await mcp.call("web.fetch", {"url": f"{site}/hop"})).value
        assert ok["url"].endswith("/page")
        with pytest.raises(ToolError, match="allowlist"):
            await mcp.call("web.fetch", {"url": f"{site}/away"})
        with pytest.raises(ToolError, match="only http:// and https:// URLs"):
            await mcp.call("web.fetch", {"url": "file:///etc/passwd"})


async def test_a_url_that_is_not_http_is_refused_as_such_by_the_real_server(
        tmp_path: Path, site: str) -> None:
    """file:// (given, or reached by a redirect) was refused with a hint to add a host to the
    allowlist, which cannot help: the server says it fetches only http(s) URLs."""
    spec = MCPServerSpec(command=sys.executable, args=["-m", "engine.mcp.servers.web",
                                                       "--allow-domain", "127.0.0.1"],
                         env={"PYTHONPATH": str(ROOT)})
    settings = MCPSettings(health_interval_s=0, call_timeout_s=15, startup_timeout_s=30)
    async with MCPRuntime({"web": spec}, base_dir=tmp_path, settings=settings) as mcp:
        for url in ("file:///etc/passwd", f"{site}/tofile"):
            with pytest.raises(ToolError) as info:
                await mcp.call("web.fetch", {"url": url})
            said = str(info.value)
            assert "'file:///etc/passwd': this server fetches only http:// and https:// " \
                   "URLs, not file: (read local files with plait-mcp-files)" in said, said
            assert "allowlist" not in said and "--allow-domain" not in said
        with pytest.raises(ToolError, match="only http:// and https:// URLs, not ftp:"):
            await mcp.call("web.fetch", {"url": "ftp://127.0.0.1/x"})
        with pytest.raises(ToolError, match="'http:///x' has no host"):
            await mcp.call("web.fetch", {"url": "http:///x"})
        # an http URL off the list still gets the allowlist hint
        with pytest.raises(ToolError, match="start the server with --allow-domain"):
            await mcp.call("web.fetch", {"url": "http://localhost:9/x"})
        assert (await mcp.call("web.fetch", {"url": f"{site}/page"})).value["status"] == 200


async def test_size_cap(tmp_path: Path, site: str) -> None:
    async with web_rt(tmp_path, ["127.0.0.1"], max_bytes=1000) as mcp:
        big = (await mcp.call("web.fetch", {"url": f"{site}/big"})).value
        assert big["truncated"] is True and len(big["content"]) == 1000


def test_host_allowed_matches_subdomains_only() -> None:
    assert web.host_allowed("https://docs.example.com/x", ["example.com"])
    assert web.host_allowed("https://example.com", ["example.com"])
    assert not web.host_allowed("https://badexample.com", ["example.com"])
    assert not web.host_allowed("https://example.com.evil.net", ["example.com"])
    assert not web.host_allowed("ftp://example.com", ["example.com"])
