"""The MCP spans of :mod:`engine.tracing`, client side, following the OpenTelemetry MCP
semantic conventions (which also hold the GenAI ``execute_tool`` span):

- ``execute_tool <tool>`` per tool call (``mcp.method.name`` ``tools/call``,
  ``gen_ai.operation.name`` ``execute_tool``, ``gen_ai.tool.name``);
- ``resources/read`` per resource read (``mcp.resource.uri``; the URI stays out of the span
  name, as the conventions ask, to keep names low-cardinality);
- ``prompts/get <prompt>`` per prompt get (``gen_ai.prompt.name``).

Each span is CLIENT, current while the request runs, so the MCP SDK writes its context into
the request's ``_meta`` (W3C ``traceparent``) and the server's spans join the trace. Every
value that may hold a secret (a URI, arguments, results, error messages) goes through the
run's redactor; arguments and results are recorded only with ``trace_content``.

No OpenTelemetry import here: the tracer, span kinds and status codes come from the
:class:`~engine.tracing.RunTracer` (``engine.tracing`` stays the one module importing it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.tracing import Redact, _json, _record_error

if TYPE_CHECKING:
    from engine.tracing import RunTracer

__all__ = ("request_wrapper", "tool_wrapper")

Call = Callable[[], Awaitable[Any]]
Wrapper = Callable[[str, str, dict[str, Any], Call], Awaitable[Any]]


def _transport(transports: Mapping[str, str], server: str) -> dict[str, Any]:
    kind = transports.get(server)
    if not kind:
        return {}
    return {"network.transport": "pipe" if kind == "stdio" else "tcp"}


def tool_wrapper(tracer: RunTracer, redact: Redact, capture: bool,
                 transports: Mapping[str, str]) -> Wrapper:
    """A ToolExecutor wrapper (``add_wrapper``): an ``execute_tool`` span per call."""
    return _wrapper(_traced_tool, tracer, redact, capture, transports)


def _wrapper(traced: Any, tracer: RunTracer, redact: Redact, capture: bool,
             transports: Mapping[str, str]) -> Wrapper:
    """A ToolExecutor wrapper calling `traced` (the span maker) with what it needs, or just
    the call when OpenTelemetry is not installed."""

    async def wrapper(server: str, name: str, params: dict[str, Any], call: Call) -> Any:
        if not tracer.enabled:
            return await call()
        return await traced(tracer, server, name, params, call, redact,
                            _transport(transports, server), capture)

    return wrapper


async def _traced_tool(tracer: RunTracer, server: str, tool: str, arguments: dict[str, Any],
                       call: Call, redact: Redact, transport: dict[str, Any],
                       capture: bool) -> Any:
    from engine.providers.types import TOOL_CALL_ID

    attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool",
                             "gen_ai.tool.name": tool, "gen_ai.tool.type": "function",
                             "mcp.method.name": "tools/call", "plait.mcp.server": server,
                             **transport}
    call_id = TOOL_CALL_ID.get()  # set by an agent loop: the model's id of this call
    if call_id:
        attrs["gen_ai.tool.call.id"] = redact(call_id)
    if capture:
        attrs["gen_ai.tool.call.arguments"] = redact(_json(arguments))
    started = time.perf_counter()
    with tracer._tracer.start_as_current_span(
            f"execute_tool {tool}", kind=tracer._api.CLIENT, attributes=attrs,
            record_exception=False, set_status_on_exception=False) as span:
        try:
            result = await call()
        except BaseException as exc:
            kind = _record_error(span, exc, redact)
            tracer._tool_metrics(server, tool, started, kind)
            raise
        failed = bool(getattr(result, "is_error", False))
        if failed:
            span.set_attribute("error.type", "tool_error")
            span.set_status(tracer._api.ERROR,
                            redact(str(getattr(result, "text", ""))[:500]))
        if capture:
            span.set_attribute("gen_ai.tool.call.result",
                               redact(str(getattr(result, "text", "")) or
                                      _json(getattr(result, "value", None))))
    tracer._tool_metrics(server, tool, started, "tool_error" if failed else None)
    return result


def request_wrapper(tracer: RunTracer, redact: Redact, capture: bool,
                    transports: Mapping[str, str]) -> Wrapper:
    """A ToolExecutor request wrapper (``add_request_wrapper``): a ``resources/read`` or
    ``prompts/get <prompt>`` span per request."""
    return _wrapper(_traced_request, tracer, redact, capture, transports)


def _request_span(method: str, params: dict[str, Any], server: str, redact: Redact,
                  capture: bool) -> tuple[str, dict[str, Any]]:
    """The span name and first attributes of a resource read or prompt get."""
    attrs: dict[str, Any] = {"mcp.method.name": method, "plait.mcp.server": server}
    if method == "resources/read":
        attrs["mcp.resource.uri"] = redact(str(params.get("uri", "")))
        return method, attrs
    name = str(params.get("name", ""))
    attrs["gen_ai.prompt.name"] = name
    if capture:
        attrs["plait.mcp.prompt.arguments"] = redact(_json(params.get("arguments") or {}))
    return f"{method} {name}" if name else method, attrs


async def _traced_request(tracer: RunTracer, server: str, method: str, params: dict[str, Any],
                          call: Call, redact: Redact, transport: dict[str, Any],
                          capture: bool) -> Any:
    name, attrs = _request_span(method, params, server, redact, capture)
    attrs.update(transport)
    with tracer._tracer.start_as_current_span(
            name, kind=tracer._api.CLIENT, attributes=attrs,
            record_exception=False, set_status_on_exception=False) as span:
        try:
            result = await call()
        except BaseException as exc:
            _record_error(span, exc, redact)
            raise
        if capture:
            span.set_attribute("plait.mcp.result", redact(_json(result)))
    return result
