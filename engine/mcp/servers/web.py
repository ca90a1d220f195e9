"""plait-mcp-web: fetch a web page and turn it into markdown or plain text.

Only hosts on the `--allow-domain` list (and their subdomains) may be fetched; with no list,
every fetch is refused. Redirects are followed by hand, each hop checked against the list.
Every connection goes to an address checked after resolving the name: loopback, private and
link-local addresses are refused unless `--allow-private-addresses` (or the address itself is
on the list). Responses are capped at `--max-bytes` and `--timeout` seconds.

    plait-mcp-web --allow-domain example.com --allow-domain docs.python.org
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

from engine.mcp.servers._common import base_parser, parse, serve, tool

DEFAULT_MAX_BYTES = 2_000_000
DEFAULT_TIMEOUT_S = 20.0
MAX_REDIRECTS = 5


class DomainNotAllowed(ValueError):
    pass


class UnsupportedURL(ValueError):
    """Not an http(s) URL with a host (whatever the allowlist says)."""


class AddressNotAllowed(ValueError):
    """An allowed host that is, or resolves to, a loopback, private or link-local address."""


def public_address(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local
    like the cloud metadata service at 169.254.169.254, unspecified, shared or multicast)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> str | None:
    """`host` as a normalised IP address, or None for a name."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _guarded_transport(allow: Sequence[str], allow_private: bool) -> Any:
    """An httpx transport whose every connection goes to an address checked here, after the
    name was resolved once, so DNS cannot answer the check with one address and the connect
    with another."""
    import anyio
    import httpcore2
    import httpx2

    literals = {ip for ip in map(_literal, allow) if ip is not None}

    async def address_for(host: str, port: int) -> str:
        literal = _literal(host)
        if literal is not None:  # an IP address in the URL: allowed by name, or public
            if allow_private or literal in literals or public_address(literal):
                return literal
            raise AddressNotAllowed(
                f"{host} is a loopback, private or link-local address; this server fetches "
                "such an address only when it is itself on the --allow-domain list")
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host}: {exc}") from None
        addresses = sorted({str(info[4][0]) for info in infos}, key=lambda a: ":" in a)
        private = [a for a in addresses if not public_address(a)]
        if private and not allow_private:
            raise AddressNotAllowed(
                f"{host} resolves to {private[0]}, a loopback, private or link-local "
                "address; start the server with --allow-private-addresses to fetch from "
                "an internal network")
        return addresses[0]

    class Guarded(httpcore2.AnyIOBackend):
        async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                              local_address: str | None = None,
                              socket_options: Any = None) -> Any:
            address = await address_for(host, port)
            return await super().connect_tcp(address, port, timeout, local_address,
                                             socket_options)

    class Transport(httpx2.AsyncHTTPTransport):
        def __init__(self) -> None:
            super().__init__(trust_env=False)
            self._pool = httpcore2.AsyncConnectionPool(
                ssl_context=httpx2.create_ssl_context(trust_env=False),
                network_backend=Guarded())

    return Transport()


def host_allowed(url: str, allowed: Sequence[str]) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return False
    for domain in allowed:
        domain = domain.lower().strip().rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def to_markdown(html: str, *, plain: bool = False, limit: int | None = None
                ) -> tuple[str, bool]:
    """The page as markdown (or plain text), at most `limit` characters, and whether it was
    cut there. The limit is kept while converting: nested lists indent every line by their
    depth, so 32 KB of `<ul><li>` made 16 MB of markdown, and a 2 MB page would never end."""
    import html2text

    class Full(Exception):
        pass

    class Capped(html2text.HTML2Text):
        size = 0

        def outtextf(self, s: str) -> None:
            super().outtextf(s)
            self.size += len(s)
            if limit is not None and self.size > limit:
                raise Full

    converter = Capped()
    converter.body_width = 0
    converter.ignore_images = plain
    converter.ignore_links = plain
    converter.ignore_emphasis = plain
    try:
        return str(converter.handle(html)).strip(), False
    except Full:
        return "".join(converter.outtextlist)[:limit].strip(), True


def build(allowed: Sequence[str], *, max_bytes: int = DEFAULT_MAX_BYTES,
          timeout_s: float = DEFAULT_TIMEOUT_S, allow_private: bool = False) -> Any:
    """The web MCPServer fetching only from `allowed` domains, and from their loopback,
    private or link-local addresses only with `allow_private` (or an allowed IP address)."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    server = MCPServer("plait-web", log_level="WARNING")
    allow = list(allowed)

    @tool(server, annotations=ToolAnnotations(read_only_hint=True, open_world_hint=True))
    async def fetch(url: str, format: Literal["markdown", "text", "html"] = "markdown"
                    ) -> dict[str, Any]:
        """Fetch an http(s) URL from an allowed domain; HTML is turned into markdown (or plain
        text). Returns url (after redirects), status, content_type, content, truncated."""
        final, status, ctype, body, truncated = await _get(url, allow, max_bytes, timeout_s,
                                                           allow_private)
        text = _decode(body, ctype)
        if "html" in ctype and format != "html":
            text, cut = to_markdown(text, plain=format == "text", limit=max_bytes)
            truncated = truncated or cut
        return {"url": final, "status": status, "content_type": ctype, "content": text,
                "truncated": truncated}

    return server


def _decode(body: bytes, content_type: str) -> str:
    """The body as text in the response's charset; a charset Python does not know (a page
    may say anything) falls back to UTF-8 instead of failing the fetch."""
    try:
        return body.decode(_charset(content_type), errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


async def _get(url: str, allow: list[str], max_bytes: int, timeout_s: float,
               allow_private: bool = False) -> tuple[str, int, str, bytes, bool]:
    import httpx2

    try:
        return await _follow(url, allow, max_bytes, timeout_s, allow_private)
    except TimeoutError:
        raise ValueError(f"{url!r} took more than {timeout_s:g} s to answer (--timeout); "
                         "try again later, or start the server with a larger --timeout"
                         ) from None
    except httpx2.HTTPError as exc:  # the SDK would hide its text as a crash
        raise ValueError(f"could not fetch {url!r}: {exc or type(exc).__name__}") from None


async def _follow(url: str, allow: list[str], max_bytes: int, timeout_s: float,
                  allow_private: bool) -> tuple[str, int, str, bytes, bool]:
    import anyio
    import httpx2

    async with httpx2.AsyncClient(transport=_guarded_transport(allow, allow_private),
                                  timeout=timeout_s, follow_redirects=False,
                                  trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_scheme(url)
            if not host_allowed(url, allow):
                raise DomainNotAllowed(
                    f"{url!r} is not on this server's domain allowlist "
                    f"({', '.join(allow) or 'empty: every fetch is refused'}); "
                    "start the server with --allow-domain DOMAIN")
            # httpx's timeout bounds each read, not the request: a server sending a byte
            # every few seconds would hold the fetch for as long as it likes
            with anyio.fail_after(timeout_s):
                async with client.stream("GET", url) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = urljoin(url, location)
                        continue
                    body, truncated = await _read_capped(response, max_bytes)
                    ctype = response.headers.get("content-type", "")
                    return str(response.url), response.status_code, ctype, body, truncated
    raise ValueError(f"more than {MAX_REDIRECTS} redirects")


def _check_scheme(url: str) -> None:
    """Refuse what is not an http(s) URL with a host (file:, ftp:, data:, a bare path) as
    such: the allowlist hint would send the user after a host that is not the problem."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        what = f", not {scheme}:" if scheme else ""
        hint = ("read local files with plait-mcp-files" if scheme == "file" else
                "write the whole URL, e.g. https://example.com/page")
        raise UnsupportedURL(f"{url!r}: this server fetches only http:// and https:// "
                             f"URLs{what} ({hint})")
    if not parts.hostname:
        raise UnsupportedURL(f"{url!r} has no host: write the whole URL, e.g. "
                             "https://example.com/page")


async def _read_capped(response: Any, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False


def main(argv: Sequence[str] | None = None) -> None:
    parser = base_parser("plait-mcp-web", "MCP server: fetch allowlisted web pages as markdown")
    parser.add_argument("--allow-domain", action="append", default=[], metavar="DOMAIN",
                        help="a domain (and its subdomains) that may be fetched; repeatable")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"largest response read (default {DEFAULT_MAX_BYTES})")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds per request (default {DEFAULT_TIMEOUT_S:g})")
    parser.add_argument("--allow-private-addresses", action="store_true",
                        help="also fetch from allowed names that resolve to loopback, private "
                             "or link-local addresses (an internal network)")
    opts = parse(parser, argv)
    serve(build(opts.allow_domain, max_bytes=opts.max_bytes, timeout_s=opts.timeout,
                allow_private=opts.allow_private_addresses), opts)


if __name__ == "__main__":
    main()
