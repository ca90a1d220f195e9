"""The cap on one message from an MCP server, and the HTTP side of enforcing it.

A server (hostile or broken) could otherwise send one JSON-RPC message of any size: the
SDK's transports buffer a stdio line, a JSON response body or an SSE event whole before
parsing it. plait counts the bytes where they enter the process: the stdio transport in
`engine.mcp._stdio` counts the line it is reading; for HTTP, `LimitedTransport` (the httpx2
transport of the client plait gives the SDK) counts every response body as it streams
(a JSON body whole, an SSE stream event by event, framing included) and fails the read the
moment one message passes the cap, so at most the cap plus one network chunk is ever held.

Exceeding the cap calls `MessageCap.trip`: the connection is ended (the manager marks it
dead, so the next call starts afresh) and the call in flight fails with the `ToolError`
the cap made, which names the server, the limit and how to raise it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import ToolError

if TYPE_CHECKING:
    import httpx2

#: the MCP SDK's own limit on one SSE event of an HTTP+SSE (`transport: sse`) server, which
#: plait cannot raise (the SDK's `sse_client` takes no setting for it)
SDK_SSE_EVENT_LIMIT = 1024 * 1024
#: an empty line ends an SSE event: two line ends in a row (CRLF, LF or CR). Mixed endings
#: such as LF then a lone CR are not recognised: the event then counts on, which can only
#: make the cap trip early, never late
_SSE_ENDS = (b"\r\n\r\n", b"\n\n", b"\r\r", b"\n\r\n", b"\r\n\n")
_SSE_EVENT_END = re.compile(b"|".join(re.escape(end) for end in _SSE_ENDS))


def size_text(n: int) -> str:
    """`16 MiB (16777216 bytes)`, or just the bytes below 1 KiB."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit} ({n} bytes)"
    return f"{n} bytes"


@dataclass
class MessageCap:
    """The limit on one message of one connection to `server`, and whether it was exceeded
    (`error`). `on_trip` is told once, when it first is."""

    server: str
    limit: int
    #: "stdio", "streamable-http" or "sse": the wording of the error
    transport: str = "stdio"
    error: ToolError | None = None
    on_trip: Callable[[ToolError], None] | None = field(default=None, repr=False)

    def trip(self, what: str) -> ToolError:
        """Record that `what` (e.g. "a stdout line of more than N bytes") broke the cap."""
        if self.error is None:
            self.error = message_too_large(self.server, self.limit, what, self.transport)
            if self.on_trip is not None:
                self.on_trip(self.error)
        return self.error


def message_too_large(server: str, limit: int, what: str, transport: str) -> ToolError:
    text = (f"MCP server '{server}' sent {what}: plait takes at most {size_text(limit)} in "
            "one message; its connection was closed")
    hint = (f"if the server is right to send that much, raise `max_message_bytes:` of "
            f"mcp_servers.{server} (or MCP_MAX_MESSAGE_BYTES); otherwise ask it for less "
            "(a smaller page, a narrower query)")
    if transport == "sse" and limit >= SDK_SSE_EVENT_LIMIT:
        text += ("; over HTTP+SSE (`transport: sse`) that is also the MCP SDK's own limit, "
                 "which plait cannot raise")
        hint = ("ask the server for less, or connect to its streamable HTTP endpoint, "
                "where `max_message_bytes:` sets the limit")
    err = ToolError(text, hint=hint, server=server)
    err.retryable = False
    return err


# ---------------------------------------------------------------- HTTP


def _too_large_exc(cap: MessageCap, what: str, sse: bool) -> Exception:
    return _refused_exc(cap.trip(what).message, sse)


def _refused_exc(message: str, sse: bool) -> Exception:
    """What the response read raises: for a JSON body an httpx2 StreamError (the SDK turns
    it into an error answer to that one request), for an SSE stream an SSEError (the SDK
    ends that stream and fails the request waiting on it)."""
    import httpx2

    return httpx2.SSEError(message) if sse else httpx2.StreamError(message)


@dataclass
class _LimitedBody:
    """A response body that counts its bytes per message as it streams."""

    inner: Any
    cap: MessageCap
    sse: bool
    #: bytes of the message being received so far (for SSE: since the last event's end)
    pending: int = 0
    tail: bytes = b""
    #: a Content-Length over the cap: refused before a byte is read
    declared: int | None = None
    #: a Content-Encoding other than identity: refused before a byte is read
    encoding: str | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self.declared is not None:
            raise _too_large_exc(self.cap, f"a response body of {self.declared} bytes",
                                 sse=False)
        if self.encoding is not None:
            raise _refused_exc(
                f"MCP server '{self.cap.server}' sent a {self.encoding}-encoded body although "
                "plait asked for none (Accept-Encoding: identity); plait does not inflate "
                "server bodies, whose inflated size it could not bound", self.sse)
        async for chunk in self.inner:
            if self.cap.error is not None:  # tripped elsewhere on this connection
                raise _too_large_exc(self.cap, "", self.sse)
            self._count(chunk)
            yield chunk

    def _count(self, chunk: bytes) -> None:
        limit = self.cap.limit
        if not self.sse:
            self.pending += len(chunk)
            if self.pending > limit:
                raise _too_large_exc(self.cap, f"a response body of more than {limit} bytes",
                                     sse=False)
            return
        # the last bytes of the previous chunk go in front: an event's end can straddle two
        known = len(self.tail)
        window = self.tail + chunk
        self.tail = window[-3:]
        if self.pending + len(chunk) <= limit:  # no event in here can be too large
            last = max((window.rfind(end) + len(end) for end in _SSE_ENDS
                        if end in window), default=0)
            self.pending = len(window) - last if last > known else self.pending + len(chunk)
            return
        size, counted = self.pending, known
        for match in _SSE_EVENT_END.finditer(window):
            if match.end() <= known:  # ended in the previous chunk: counted then
                continue
            size += match.end() - counted
            if size > limit:
                break
            size, counted = 0, match.end()
        else:
            size += len(window) - counted
        if size > limit:
            raise _too_large_exc(self.cap, f"an SSE event of more than {limit} bytes", sse=True)
        self.pending = size

    async def aclose(self) -> None:
        await self.inner.aclose()


@functools.cache
def _limited_transport_class() -> type[Any]:
    import httpx2

    class LimitedBody(_LimitedBody, httpx2.AsyncByteStream):
        """`_LimitedBody` as the byte stream type httpx2 requires."""

    class LimitedTransport(httpx2.AsyncBaseTransport):
        """An httpx2 transport that asks for unencoded bodies and counts every response
        body against the connection's `MessageCap`."""

        def __init__(self, cap: MessageCap, inner: httpx2.AsyncBaseTransport | None = None
                     ) -> None:
            self.cap = cap
            self.inner = inner if inner is not None else httpx2.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            if self.cap.error is not None:  # this connection is over: no more requests
                raise httpx2.ConnectError(self.cap.error.message, request=request)
            # a compressed body would be counted compressed and inflated unbounded
            request.headers["accept-encoding"] = "identity"
            response = await self.inner.handle_async_request(request)
            sse = response.headers.get("content-type", "").partition(";")[0].strip().lower() \
                == "text/event-stream"
            body = LimitedBody(response.stream, self.cap, sse)
            # refusals fail the read (the SDK then fails the one request waiting on it), not
            # the send, which the SDK does not expect to fail: its whole transport would stop
            length = response.headers.get("content-length", "")
            if not sse and length.isdigit() and int(length) > self.cap.limit:
                body.declared = int(length)
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                body.encoding = encoding
            response.stream = body
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    return LimitedTransport


def limited_transport(cap: MessageCap) -> httpx2.AsyncBaseTransport:
    """The transport for the httpx2 client of one connection (httpx2 imported lazily)."""
    transport: httpx2.AsyncBaseTransport = _limited_transport_class()(cap)
    return transport


def limited_http_client(cap: MessageCap, *, headers: dict[str, str] | None,
                        timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """What the SDK's `create_mcp_http_client` makes (no redirects followed by the client,
    the MCP timeouts, the proxies of the environment), on transports that enforce `cap`."""
    import httpx2

    kwargs: dict[str, Any] = {"timeout": timeout, "transport": limited_transport(cap),
                              "mounts": _proxy_mounts(cap)}
    if headers is not None:
        kwargs["headers"] = headers
    return httpx2.AsyncClient(**kwargs)


def _proxy_mounts(cap: MessageCap) -> dict[str, Any]:
    """The environment's proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) as httpx2
    mounts, each a transport that enforces `cap`: a client given its own `transport` no
    longer reads them itself (httpx2 honours them only for the transport it makes), and the
    SDK's client, which plait's replaces, did. None (NO_PROXY) is the client's transport."""
    import httpx2
    from httpx2._utils import get_environment_proxies

    transport = _limited_transport_class()
    return {pattern: None if url is None
            else transport(cap, httpx2.AsyncHTTPTransport(proxy=url))
            for pattern, url in get_environment_proxies().items()}
