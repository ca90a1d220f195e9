"""ToolExecutor: calls `server.tool` with checked arguments, limits, timeouts and stats.

Before a call: the tool must exist and be exposed (did-you-mean otherwise), must not be a
flagged rug pull under a strict policy, its arguments must match its input schema, and the
optional `validator` hook (policy argument checks) must accept them, and so must the
call's own `check` (a step's `policy:`), if it has one. Then the per-tool rate
limit and timeout apply. A server that crashes mid-call is restarted on next use; the call is
re-run once when the tool is read-only or idempotent, never when it may have side effects.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from engine.deadlines import capacity_wait
from engine.errors import PlaitError, ToolError
from engine.mcp._transport import http_refusal, safe_url
from engine.mcp.pool import MCPConnectionManager
from engine.mcp.registry import ToolInfo, ToolRegistry
from engine.mcp.results import ToolResult, normalise

Validator = Callable[[str, Mapping[str, Any]], None]
#: ``validator(server, method, params)`` before a resource read or prompt get is sent
RequestValidator = Callable[[str, str, Mapping[str, Any]], None]
RATE_WINDOW_S = 60.0
#: grace on top of the SDK's own read timeout before the call is abandoned outright
TIMEOUT_GRACE_S = 1.0
#: what the SDK's streamable HTTP client says for a POST answered with an HTTP error
_SDK_HTTP_STAND_IN = "Server returned an error response"


class RateLimiter:
    """At most `per_minute` acquisitions in any 60 s window (`window_s`); waits for a slot."""

    def __init__(self, per_minute: int, *, window_s: float = RATE_WINDOW_S) -> None:
        self.per_minute = per_minute
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        # waiting for the window is not the call's time (engine.deadlines)
        if self._lock.locked():
            async with capacity_wait():
                await self._lock.acquire()
        else:
            await self._lock.acquire()
        try:
            now = anyio.current_time()
            while self._times and now - self._times[0] >= self.window_s:
                self._times.popleft()
            if len(self._times) >= self.per_minute:
                async with capacity_wait():
                    await anyio.sleep(self.window_s - (now - self._times[0]))
                self._times.popleft()
            self._times.append(anyio.current_time())
        finally:
            self._lock.release()


@dataclass
class ToolStats:
    calls: int = 0
    errors: int = 0
    retries: int = 0
    total_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        mean = self.total_s / self.calls * 1000 if self.calls else None
        return {"calls": self.calls, "errors": self.errors, "retries": self.retries,
                "mean_ms": mean}


class _Crashed(Exception):
    """The connection closed under an in-flight call."""


CallWrapper = Callable[[str, str, dict[str, Any], Callable[[], Awaitable[ToolResult]]],
                       Awaitable[ToolResult]]
#: ``await wrapper(server, method, params, call)`` around a resource read or a prompt get
RequestWrapper = Callable[[str, str, dict[str, Any], Callable[[], Awaitable[Any]]],
                          Awaitable[Any]]


class ToolExecutor:
    """Runs tool calls, resource reads and prompt gets through the pool."""

    def __init__(self, registry: ToolRegistry, *, validator: Validator | None = None,
                 request_validator: RequestValidator | None = None) -> None:
        self.registry = registry
        self.pool: MCPConnectionManager = registry.pool
        self.validator = validator
        #: the policy's checks of a resource URI or prompt arguments (as `validator` is of
        #: tool arguments): raises PolicyViolation, and the request is not sent
        self.request_validator = request_validator
        self._limiters: dict[str, RateLimiter] = {}
        self._stats: dict[str, ToolStats] = {}
        self._wrappers: list[CallWrapper] = []
        self._request_wrappers: list[RequestWrapper] = []

    def add_wrapper(self, wrapper: CallWrapper) -> None:
        """Wrap every tool call: ``await wrapper(server, tool, arguments, call)`` gets the
        call as a zero-argument coroutine function and returns its ToolResult (tracing,
        cassette record and replay). Wrappers run outside validation and the connection, so
        a replaying wrapper can answer without starting the server."""
        self._wrappers.append(wrapper)

    def add_request_wrapper(self, wrapper: RequestWrapper) -> None:
        """Wrap every resource read and prompt get (what :meth:`add_wrapper` is to tool
        calls): ``await wrapper(server, method, params, call)`` with `method` the MCP method,
        ``resources/read`` (params ``{"uri"}``) or ``prompts/get`` (``{"name",
        "arguments"}``), and `call` the request as a zero-argument coroutine function.
        The last wrapper added is the outermost."""
        self._request_wrappers.append(wrapper)

    async def _wrapped(self, server: str, method: str, params: dict[str, Any],
                       call: Callable[[], Awaitable[Any]], **context: Any) -> Any:
        for wrapper in self._request_wrappers:
            call = partial(wrapper, server, method, params, call)
        try:
            return await call()
        except PlaitError as exc:
            exc.context.setdefault("server", server)
            for key, value in context.items():
                if value is not None:
                    exc.context.setdefault(key, value)
            raise

    def _validate_request(self, server: str, method: str, params: dict[str, Any],
                          check: RequestValidator | None) -> None:
        if self.request_validator is not None:
            self.request_validator(server, method, params)
        if check is not None:
            check(server, method, params)

    async def call(self, server: str, tool: str, arguments: Mapping[str, Any] | None = None, *,
                   timeout: float | None = None, step_id: str | None = None,
                   check: Validator | None = None) -> ToolResult:
        """Call `server.tool`. Raises ToolError (tool failed, bad arguments, unknown tool,
        timeout, crash) or PolicyViolation (refused before the call). `check` is this call's
        own check, made after `validator`'s (a step's `policy:` on top of its server's)."""
        args = dict(arguments or {})
        try:
            call: Callable[[], Awaitable[ToolResult]] = partial(self._call, server, tool, args,
                                                                timeout, check)
            for wrapper in self._wrappers:
                call = partial(wrapper, server, tool, args, call)
            return await call()
        except PlaitError as exc:
            exc.context.setdefault("server", server)
            exc.context.setdefault("tool", tool)
            if step_id is not None:
                exc.context.setdefault("step", step_id)
            raise

    async def _call(self, server: str, tool: str, args: dict[str, Any],
                    timeout: float | None, check: Validator | None) -> ToolResult:
        info = await self.registry.get(server, tool)
        self.registry.validate_arguments(info, args)
        if self.validator is not None:
            self.validator(info.qualified_name, args)
        if check is not None:
            check(info.qualified_name, args)
        if info.rate_limit is not None:
            limiter = self._limiters.setdefault(info.qualified_name,
                                                RateLimiter(info.rate_limit))
            await limiter.acquire()
        limit = timeout or info.timeout or self._server_timeout(server)
        stats = self._stats.setdefault(info.qualified_name, ToolStats())
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                raw = await self._once(info, args, limit)
            except _Crashed as crash:
                self._finish(info, stats, started, ok=False)
                if attempt == 1 and info.read_only:
                    stats.retries += 1
                    continue
                raise await self._crash_error(info, str(crash), attempt) from None
            except ToolError:
                self._finish(info, stats, started, ok=False)
                raise
            result = normalise(server, tool, raw, time.perf_counter() - started)
            self._finish(info, stats, started, ok=not result.is_error)
            if result.is_error:
                raise ToolError(f"tool '{info.qualified_name}' failed: "
                                f"{result.text or '(no message)'}", server=server, tool=tool)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _server_timeout(self, server: str) -> float:
        spec = self.pool.manager.spec(server)
        return spec.timeout if spec.timeout is not None else \
            self.pool.manager.settings.call_timeout_s

    def _finish(self, info: ToolInfo, stats: ToolStats, started: float, *, ok: bool) -> None:
        elapsed = time.perf_counter() - started
        stats.calls += 1
        stats.total_s += elapsed
        if not ok:
            stats.errors += 1
        self.pool.record(info.server, ok=ok, duration_s=elapsed)

    async def _once(self, info: ToolInfo, args: dict[str, Any], limit: float) -> Any:
        async with self.pool.session(info.server) as client:
            try:
                return await self._call_on(client, info, args, limit)
            except Exception:
                self._raise_if_too_large(info.server, client, f"tool '{info.qualified_name}'")
                raise

    async def _call_on(self, client: Any, info: ToolInfo, args: dict[str, Any],
                       limit: float) -> Any:
        from mcp import MCPError
        from pydantic import ValidationError

        try:
            with anyio.fail_after(limit + TIMEOUT_GRACE_S):
                return await client.call_tool(info.name, args, read_timeout_seconds=limit)
        except MCPError as exc:
            raise self._mcp_error(info, client, exc, limit) from None
        except TimeoutError:
            raise self._timeout_error(info, limit) from None
        except (RuntimeError, ValidationError) as exc:
            raise ToolError(f"tool '{info.qualified_name}' returned a malformed result: "
                            f"{_first_paragraph(str(exc))}",
                            hint="the server broke the MCP protocol; "
                            "report it to the server's authors",
                            server=info.server, tool=info.name) from None

    def _raise_if_too_large(self, server: str, client: Any, what: str) -> None:
        """When `client`'s connection ended on a message over the size cap, that is why
        `what` (a call, a read) failed, whatever the SDK said: raise the cap's error."""
        error = self.pool.manager.too_large(server, client)
        if error is None:
            return
        self.registry.invalidate(server)
        raise ToolError(f"{what} failed: {error.message}", hint=error.hint,
                        server=server) from None

    def _mcp_error(self, info: ToolInfo, client: Any, exc: Any,
                   limit: float) -> Exception:
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        if exc.code == CONNECTION_CLOSED:
            self.pool.manager.mark_dead(info.server, client, "connection closed mid-call")
            self.registry.invalidate(info.server)
            return _Crashed("the connection closed while the call was in flight")
        if exc.code == REQUEST_TIMEOUT:
            return self._timeout_error(info, limit)
        status = self.pool.manager.http_error_status(info.server)
        if status is not None and exc.message == _SDK_HTTP_STAND_IN:
            url = self.pool.manager.spec(info.server).url or ""
            refusal = http_refusal(info.server, safe_url(url), status)
            return ToolError(f"tool '{info.qualified_name}' failed: {refusal.message}",
                             hint=refusal.hint, server=info.server, tool=info.name)
        return ToolError(f"tool '{info.qualified_name}' failed: {exc}", server=info.server,
                         tool=info.name)

    def _timeout_error(self, info: ToolInfo, limit: float) -> ToolError:
        err = ToolError(f"tool '{info.qualified_name}' did not answer within {limit:g}s",
                        hint="raise `timeout:` of the tool (tool_metadata) or of the server, "
                             "or MCP_SERVER_TIMEOUT", server=info.server, tool=info.name)
        err.retryable = True
        return err

    async def _crash_error(self, info: ToolInfo, reason: str, attempt: int) -> ToolError:
        tail = await self.pool.manager.final_stderr_tail(info.server)
        why = ("it crashed again when re-run" if attempt == 2 else
               "not re-run because the tool is not marked read-only or idempotent")
        text = f"MCP server '{info.server}' went down during '{info.qualified_name}' " \
               f"({reason}); {why}"
        if tail:
            text += f"; its stderr ended with:\n{tail}"
        err = ToolError(text, hint="the server is restarted on next use", server=info.server,
                        tool=info.name)
        err.retryable = True
        return err

    async def _refused(self, client: Any, server: str, method: str, args: tuple[Any, ...],
                       exc: Exception, limit: float) -> ToolError:
        """The error of a read or get the server refused, saying what the server offers
        instead when its listings tell (the SDK's servers answer "Internal server error")."""
        from engine.mcp._offers import prompt_problem, resource_hint

        status = self.pool.manager.http_error_status(server)
        if status is not None and getattr(exc, "message", None) == _SDK_HTTP_STAND_IN:
            # the HTTP status the SDK left out of its error (a 401 of an expired token...)
            url = self.pool.manager.spec(server).url or ""
            refusal = http_refusal(server, safe_url(url), status)
            return ToolError(f"{method} {args[0]!r} failed: {refusal.message}",
                             hint=refusal.hint, server=server)
        text = f"MCP server '{server}': {method} {args[0]!r} failed: {exc}"
        hint: str | None = None
        if method == "get_prompt":
            problem = await prompt_problem(client, server, args[0], args[1], limit)
            if problem is not None:
                text, hint = f"{problem[0]} (the server answered: {exc})", problem[1]
        else:
            hint = await resource_hint(client, limit)
        return ToolError(text, hint=hint, server=server)

    async def _request_crash(self, server: str, what: str, reason: str) -> ToolError:
        tail = await self.pool.manager.final_stderr_tail(server)
        text = f"MCP server '{server}' went down during {what} ({reason})"
        if tail:
            text += f"; its stderr ended with:\n{tail}"
        err = ToolError(text, hint="the server is restarted on next use; `retry: {attempts: "
                        "2, on: [tool]}` on the step tries again", server=server)
        err.retryable = True
        return err

    async def read_resource(self, server: str, uri: str, *, step_id: str | None = None,
                            check: RequestValidator | None = None) -> list[dict[str, Any]]:
        """The contents of a resource: [{uri, mimeType, text | blob}]. Raises ToolError, or
        PolicyViolation (refused before the read, by `request_validator` or by `check`)."""
        result: list[dict[str, Any]] = await self._wrapped(
            server, "resources/read", {"uri": uri},
            partial(self._read_resource, server, uri, check), resource=uri, step=step_id)
        return result

    async def _read_resource(self, server: str, uri: str,
                             check: RequestValidator | None) -> list[dict[str, Any]]:
        self._validate_request(server, "resources/read", {"uri": uri}, check)
        result = await self._request(server, "read_resource", uri)
        return [c.model_dump(mode="json", by_alias=True, exclude_none=True)
                for c in result.contents]

    async def get_prompt(self, server: str, name: str,
                         arguments: Mapping[str, str] | None = None, *,
                         step_id: str | None = None,
                         check: RequestValidator | None = None) -> dict[str, Any]:
        """A prompt: {description, messages: [{role, content}]}. Raises ToolError, or
        PolicyViolation (refused before the get, by `request_validator` or by `check`)."""
        given = dict(arguments or {})
        result: dict[str, Any] = await self._wrapped(
            server, "prompts/get", {"name": name, "arguments": given},
            partial(self._get_prompt, server, name, given, check), prompt=f"{server}.{name}",
            step=step_id)
        return result

    async def _get_prompt(self, server: str, name: str, arguments: Mapping[str, str],
                          check: RequestValidator | None) -> dict[str, Any]:
        sent = {k: str(v) for k, v in arguments.items()}
        self._validate_request(server, "prompts/get", {"name": name, "arguments": sent},
                               check)
        result = await self._request(server, "get_prompt", name, sent)
        data: dict[str, Any] = result.model_dump(mode="json", by_alias=True, exclude_none=True,
                                                 include={"description", "messages"})
        return data

    async def _request(self, server: str, method: str, *args: Any) -> Any:
        async with self.pool.session(server) as client:
            try:
                return await self._request_on(client, server, method, *args)
            except _Crashed as crash:
                # not re-run: the step's `retry:` decides (a read that kills its server
                # would most likely kill it again)
                raise await self._request_crash(server, f"{method} {args[0]!r}",
                                                str(crash)) from None
            except Exception:
                self._raise_if_too_large(server, client, f"{method} {args[0]!r}")
                raise

    async def _request_on(self, client: Any, server: str, method: str, *args: Any) -> Any:
        from mcp import MCPError
        from mcp_types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        limit = self._server_timeout(server)
        try:
            with anyio.fail_after(limit):
                return await getattr(client, method)(*args)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED and self.pool.manager.too_large(
                    server, client) is None:
                # the connection is gone: restart the server on next use, as after a tool
                # call, instead of failing every later request with "Connection closed"
                self.pool.manager.mark_dead(server, client, "connection closed mid-request")
                self.registry.invalidate(server)
                raise _Crashed("the connection closed while the request was in flight") \
                    from None
            if exc.code == REQUEST_TIMEOUT:
                raise _request_timeout(server, method, args[0], limit) from None
            raise await self._refused(client, server, method, args, exc, limit) from None
        except TimeoutError:
            raise _request_timeout(server, method, args[0], limit) from None

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: stat.to_dict() for name, stat in sorted(self._stats.items())}


def _request_timeout(server: str, method: str, what: Any, limit: float) -> ToolError:
    err = ToolError(f"MCP server '{server}': {method} {what!r} did not answer within "
                    f"{limit:g}s", hint="raise the server's `timeout:` or MCP_SERVER_TIMEOUT, "
                    "or fix the server", server=server)
    err.retryable = True
    return err


def _first_paragraph(text: str) -> str:
    """What an SDK's validation error says, without the schema dump that follows it."""
    return text.split("\n\n", 1)[0][:500]
