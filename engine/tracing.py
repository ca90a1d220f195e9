"""OpenTelemetry tracing and metrics for runs: the library side.

This is the ONE module of the engine that imports OpenTelemetry, and only its API
(``opentelemetry-api``), lazily. Without it installed every method here is a no-op. The SDK,
exporters and sampling are configured by the runner (``runners/tracing_setup.py``), which
hands a tracer provider and a meter provider to :class:`RunTracer`.

A :class:`RunTracer` is a ``RunOptions.tracer``. It sees a run three ways:

- as a run listener, it turns events into spans: ``plait.run`` (one per run, its parent the
  current span: for a sub-workflow that is the calling step's span), ``plait.step <id>``
  (children of the run span; retries and fallbacks are span events on them);
- wrapping every provider the run's registry hands out, a ``chat <model>`` span per LLM call
  following the OpenTelemetry GenAI semantic conventions;
- wrapping the run's MCP tool executor, an ``execute_tool <tool>`` span per tool call with
  the GenAI and MCP attributes, and a ``resources/read`` or ``prompts/get <prompt>`` span
  per resource read and prompt get (``engine/tracing_mcp.py``). Each is current while the
  request runs, so the MCP SDK puts its trace context into the request's ``_meta`` (W3C
  ``traceparent``).

Step spans are made current inside the step's own task (StepStarted is emitted there), so
LLM and tool spans, and sub-workflow runs, nest under the step that made them.

Every attribute value and exception message goes through the run's secret redactor before
it is set. Message content (prompts, replies, tool arguments and results) is recorded only
with ``trace_content=True``. Given a ``NoOpMeterProvider`` (nothing would read them), it
records no metrics at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

__all__ = ("RunTracer", "otel_available")

Redact = Callable[[str], str]

#: plait provider kinds -> gen_ai.provider.name (OpenTelemetry GenAI semantic conventions)
PROVIDER_NAMES = {"openai": "openai", "azure_openai": "azure.ai.openai",
                  "anthropic": "anthropic", "google": "gcp.gemini", "echo": "plait.echo",
                  "replay": "plait.replay"}
_STATUS_ERROR = ("failed", "cancelled")


def otel_available() -> bool:
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def _no_redact(text: str) -> str:
    return text


class _Instruments:
    """The run metrics (OpenTelemetry metrics API)."""

    def __init__(self, meter: Any) -> None:
        self.step_duration = meter.create_histogram(
            "plait.step.duration", unit="s", description="Duration of a workflow step")
        self.tokens = meter.create_counter(
            "plait.tokens", unit="{token}", description="Tokens used by LLM calls")
        self.cost = meter.create_counter(
            "plait.cost", unit="USD", description="Estimated cost of LLM calls")
        self.retries = meter.create_counter(
            "plait.retries", unit="{retry}", description="Step attempts that were retried")
        self.tool_duration = meter.create_histogram(
            "plait.tool.duration", unit="s", description="Duration of an MCP tool call")


class _Api:
    """The OpenTelemetry API names the per-step paths use, imported once per tracer (an
    import statement in a function costs about a microsecond each time it runs)."""

    __slots__ = ("CLIENT", "ERROR", "INTERNAL", "attach", "detach", "get_current",
                 "in_context")

    def __init__(self) -> None:
        from opentelemetry import context, trace

        self.attach = context.attach
        self.detach = context.detach
        self.get_current = context.get_current
        self.in_context = trace.set_span_in_context
        self.INTERNAL = trace.SpanKind.INTERNAL
        self.CLIENT = trace.SpanKind.CLIENT
        self.ERROR = trace.StatusCode.ERROR


class _RunState:
    __slots__ = ("context", "cost", "parts", "redact", "span", "started", "steps", "tokens",
                 "workflow")

    def __init__(self, span: Any, context: Any, workflow: str, redact: Redact,
                 started: float = 0.0) -> None:
        self.span = span
        #: when the run started (seconds): a step restored from an earlier run ended before
        self.started = started
        #: a context holding the run span: the parent of its step spans, made once per run
        self.context = context
        self.workflow = workflow
        self.redact = redact
        #: summed over the run, added to the counters once when it ends (cheaper per step)
        self.tokens = {"input": 0, "output": 0}
        self.cost = 0.0
        #: step id -> (span, context token or None)
        self.steps: dict[str, tuple[Any, Any]] = {}
        #: (step id, item index or None, attempt or None) -> (span, context token)
        self.parts: dict[tuple[str, int | None, int | None], tuple[Any, Any]] = {}


class RunTracer:
    """Spans and metrics for runs (see the module docstring). One tracer may serve many runs
    at once (sub-workflows share their parent's), keyed by run id."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, *,
                 trace_content: bool = False) -> None:
        self.trace_content = trace_content
        self.enabled = otel_available()
        self._runs: dict[str, _RunState] = {}
        self._tracer: Any = None
        self._api: Any = None
        #: None when the meter provider is a no-op one (nothing would read the metrics)
        self._metrics: _Instruments | None = None
        if not self.enabled:
            return
        from opentelemetry import metrics, trace

        self._api = _Api()
        tp = tracer_provider or trace.get_tracer_provider()
        self._tracer = tp.get_tracer("plait")
        mp = meter_provider or metrics.get_meter_provider()
        if not isinstance(mp, metrics.NoOpMeterProvider):
            self._metrics = _Instruments(mp.get_meter("plait"))

    # ------------------------------------------------------------ run listener

    def listener(self, redact: Redact | None = None) -> Callable[[Any], None]:
        """A run listener (RunOptions.listeners) for one run, redacting with `redact`."""
        if not self.enabled:
            return lambda event: None
        redactor = redact or _no_redact

        def on_event(event: Any) -> None:
            handler = _HANDLERS.get(type(event).__name__)
            if handler is not None:
                handler(self, event, redactor)

        return on_event

    def _run_started(self, event: Any, redact: Redact) -> None:
        api = self._api
        attrs = {"plait.workflow": redact(event.workflow), "plait.run.id": event.run_id,
                 "plait.run.steps": event.steps, "plait.run.resumed": event.resumed}
        if event.weaker_sandbox:
            attrs["plait.sandbox.weaker"] = event.weaker_sandbox
        span = self._tracer.start_span("plait.run", kind=api.INTERNAL,
                                       start_time=_ns(event.at), attributes=attrs)
        self._runs[event.run_id] = _RunState(span, api.in_context(span, api.get_current()),
                                             event.workflow, redact, event.at)

    def _step_started(self, event: Any, redact: Redact) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        api = self._api
        span = self._tracer.start_span(
            f"plait.step {event.step_id}", context=run.context, start_time=_ns(event.at),
            attributes={"plait.step.id": event.step_id, "plait.step.kind": event.kind})
        # StepStarted is emitted in the step's own task: make the span current there so the
        # step's LLM and tool calls (and sub-workflow runs) nest under it
        run.steps[event.step_id] = (span, api.attach(api.in_context(span)))

    # A foreach item and a retry attempt each get a span, nested under the step (an attempt
    # of an item under the item). Their events are emitted in the task that runs them, so the
    # span is made current there and the LLM and tool calls inside nest under it.

    def _part_started(self, event: Any, key: tuple[str, int | None, int | None], name: str,
                      attributes: dict[str, Any]) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        api = self._api
        span = self._tracer.start_span(name, context=api.get_current(),
                                       start_time=_ns(event.at), attributes=attributes)
        run.parts[key] = (span, api.attach(api.in_context(span)))

    def _part_finished(self, event: Any, key: tuple[str, int | None, int | None],
                       error: str | None, kind: str | None, redact: Redact) -> None:
        run = self._runs.get(event.run_id)
        span, token = run.parts.pop(key, (None, None)) if run else (None, None)
        if span is None:
            return
        if token is not None:
            self._api.detach(token)
        if error is not None:
            message = redact(error)
            span.set_attribute("error.type", kind or "error")
            span.add_event("exception", {"exception.type": kind or "error",
                                         "exception.message": message},
                           timestamp=_ns(event.at))
            span.set_status(self._api.ERROR, message)
        span.end(end_time=_ns(event.at))

    def _item_started(self, event: Any, redact: Redact) -> None:
        self._part_started(event, (event.step_id, event.index, None),
                           f"plait.item {event.step_id}[{event.index}]",
                           {"plait.step.id": event.step_id, "plait.item.index": event.index})

    def _item_finished(self, event: Any, redact: Redact) -> None:
        self._part_finished(event, (event.step_id, event.index, None), event.error,
                            event.error_kind, redact)

    def _attempt_started(self, event: Any, redact: Redact) -> None:
        attrs = {"plait.step.id": event.step_id, "plait.attempt": event.attempt}
        if event.index is not None:
            attrs["plait.item.index"] = event.index
        self._part_started(event, (event.step_id, event.index, event.attempt),
                           f"plait.attempt {event.step_id} #{event.attempt}", attrs)

    def _attempt_finished(self, event: Any, redact: Redact) -> None:
        self._part_finished(event, (event.step_id, event.index, event.attempt), event.error,
                            event.error_kind, redact)

    def _step_retrying(self, event: Any, redact: Redact) -> None:
        run = self._runs.get(event.run_id)
        span = run.steps.get(event.step_id, (None, None))[0] if run else None
        if span is not None:
            span.add_event("plait.retry", {"plait.attempt": event.attempt,
                                           "plait.retry.delay": event.delay,
                                           "error.type": event.error_kind,
                                           "exception.message": redact(event.error)},
                           timestamp=_ns(event.at))
        if self._metrics is not None:
            self._metrics.retries.add(1, {"error.type": event.error_kind})

    def _step_fallback(self, event: Any, redact: Redact) -> None:
        run = self._runs.get(event.run_id)
        span = run.steps.get(event.step_id, (None, None))[0] if run else None
        if span is not None:
            span.add_event("plait.fallback", {"plait.provider.from": event.from_provider,
                                              "plait.provider.to": event.to_provider,
                                              "exception.message": redact(event.error)},
                           timestamp=_ns(event.at))

    def _step_finished(self, event: Any, redact: Redact) -> None:
        run = self._runs.get(event.run_id)
        if run is None:
            return
        span, token = run.steps.pop(event.step_id, (None, None))
        ran = span is not None
        end = event.at
        if not ran:  # skipped, cancelled before starting, or restored: an instant span
            # a restored step finished in the run resumed: an instant at this run's start,
            # not the earlier times (before its parent span, stretching the trace back)
            end = max(event.at, run.started)
            span = self._tracer.start_span(
                f"plait.step {event.step_id}", context=run.context,
                start_time=_ns(end if event.at < run.started else event.at - event.duration),
                attributes={"plait.step.id": event.step_id, "plait.step.kind": event.kind})
        elif token is not None:
            self._api.detach(token)
        _finish_step(span, event, redact, self._api.ERROR, end)
        span.end(end_time=_ns(end))
        # a step that did not start in this run did no work in it: a restored step's time,
        # tokens and cost were counted by the run that made them (a resume counted them twice)
        if self._metrics is None or not ran:
            return
        if event.status not in ("skipped", "restored"):
            # low-cardinality attributes only (a step id per series would explode them)
            self._metrics.step_duration.record(event.duration, {
                "plait.workflow": run.workflow, "plait.step.status": event.status})
        if event.usage:
            run.tokens["input"] += event.usage.get("input_tokens", 0)
            run.tokens["output"] += event.usage.get("output_tokens", 0)
        run.cost += event.cost or 0.0

    def _run_metrics(self, run: _RunState) -> None:
        if self._metrics is None:
            return
        for kind, value in run.tokens.items():
            if value:
                self._metrics.tokens.add(value, {"plait.workflow": run.workflow,
                                                 "gen_ai.token.type": kind})
        if run.cost:
            self._metrics.cost.add(run.cost, {"plait.workflow": run.workflow})

    def _run_finished(self, event: Any, redact: Redact) -> None:
        error = self._api.ERROR
        run = self._runs.pop(event.run_id, None)
        if run is None:
            return
        # cancelled in flight: their items and attempts first, then the steps
        for _key, (span, _token) in reversed(run.parts.items()):
            _cancelled(span, error, event.at)
        for _step_id, (span, _token) in run.steps.items():
            span.set_attribute("plait.step.status", "cancelled")
            _cancelled(span, error, event.at)
        self._run_metrics(run)
        run.span.set_attribute("plait.run.status", event.status)
        if event.status != "succeeded":
            message = redact(str((event.error or {}).get("message", event.status)))
            run.span.set_status(error, message)
        run.span.end(end_time=_ns(event.at))

    # ------------------------------------------------------------ providers

    def wrap_provider(self, name: str, provider: Any, redact: Redact | None = None, *,
                      content: bool = False) -> Any:
        """`provider` with a GenAI span around every call (ProviderRegistry.add_wrapper).
        `content` (or the tracer's trace_content) records messages on the spans."""
        if not self.enabled:
            return provider
        return _TracedProvider(self, name, provider, redact or _no_redact,
                               content or self.trace_content)

    def provider_wrapper(self, redact: Redact | None = None, *,
                         content: bool = False) -> Callable[[str, Any], Any]:
        return lambda name, provider: self.wrap_provider(name, provider, redact,
                                                         content=content)

    # ------------------------------------------------------------ tools

    def tool_wrapper(self, redact: Redact | None = None, *, content: bool = False,
                     transports: Mapping[str, str] | None = None) -> Any:
        """An MCP ToolExecutor wrapper: an ``execute_tool`` span and metrics per call.
        `transports` maps server names to stdio/http (for network.transport)."""
        from engine.tracing_mcp import tool_wrapper

        return tool_wrapper(self, redact or _no_redact, content or self.trace_content,
                            dict(transports or {}))

    def request_wrapper(self, redact: Redact | None = None, *, content: bool = False,
                        transports: Mapping[str, str] | None = None) -> Any:
        """An MCP ToolExecutor request wrapper: a ``resources/read`` or ``prompts/get``
        span per resource read or prompt get (see engine.tracing_mcp)."""
        from engine.tracing_mcp import request_wrapper

        return request_wrapper(self, redact or _no_redact, content or self.trace_content,
                               dict(transports or {}))

    def _tool_metrics(self, server: str, tool: str, started: float, error: str | None) -> None:
        if self._metrics is None:
            return
        attrs = {"gen_ai.tool.name": tool, "plait.mcp.server": server}
        if error:
            attrs["error.type"] = error
        self._metrics.tool_duration.record(time.perf_counter() - started, attrs)


# ------------------------------------------------------------------ step span helpers


def _finish_step(span: Any, event: Any, redact: Redact, error_status: Any,
                 at: float) -> None:
    attrs: dict[str, Any] = {"plait.step.status": event.status,
                             "plait.step.attempts": event.attempts}
    if event.usage:
        attrs["gen_ai.usage.input_tokens"] = event.usage.get("input_tokens", 0)
        attrs["gen_ai.usage.output_tokens"] = event.usage.get("output_tokens", 0)
    if event.cost:
        attrs["plait.cost"] = event.cost
    if event.reason:
        attrs["plait.step.reason"] = redact(event.reason)
    span.set_attributes(attrs)  # one call: the SDK takes its lock once
    if event.status in _STATUS_ERROR:
        error = event.error or {}
        message = redact(str(error.get("message") or event.reason or event.status))
        kind = str(error.get("kind") or error.get("type") or event.status)
        span.set_attribute("error.type", kind)
        span.add_event("exception", {"exception.type": kind, "exception.message": message},
                       timestamp=_ns(at))
        span.set_status(error_status, message)


def _cancelled(span: Any, error_status: Any, at: float) -> None:
    span.set_attribute("error.type", "cancelled")
    span.set_status(error_status, "cancelled")
    span.end(end_time=_ns(at))


def _record_error(span: Any, exc: BaseException, redact: Redact) -> str:
    """record_exception with the message redacted (SDK errors may echo a key); a
    cancellation is `cancelled` (its message is the cancel scope's repr)."""
    import anyio
    from opentelemetry.trace import StatusCode

    if isinstance(exc, anyio.get_cancelled_exc_class()):
        kind = message = "cancelled"
    else:
        kind, message = type(exc).__name__, redact(str(exc))
    span.set_attribute("error.type", kind)
    span.add_event("exception", {"exception.type": kind, "exception.message": message})
    span.set_status(StatusCode.ERROR, message)
    return kind


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


_HANDLERS: dict[str, Callable[[RunTracer, Any, Redact], None]] = {
    "RunStarted": RunTracer._run_started,
    "StepStarted": RunTracer._step_started,
    "StepRetrying": RunTracer._step_retrying,
    "StepFallback": RunTracer._step_fallback,
    "StepFinished": RunTracer._step_finished,
    "ItemStarted": RunTracer._item_started,
    "ItemFinished": RunTracer._item_finished,
    "AttemptStarted": RunTracer._attempt_started,
    "AttemptFinished": RunTracer._attempt_finished,
    "RunFinished": RunTracer._run_finished,
}


# ------------------------------------------------------------------ LLM calls


class _TracedProvider:
    """An LLMProvider that puts a GenAI ``chat`` span around each call of the one it wraps."""

    def __init__(self, tracer: RunTracer, name: str, inner: Any, redact: Redact,
                 content: bool) -> None:
        self._t = tracer
        self._content = content
        self._inner = inner
        self._redact = redact
        self.name = getattr(inner, "name", name)
        self.kind = getattr(inner, "kind", "?")
        self.registry_name = name
        #: the provider's own `options:`, sent with every call (a step's override them)
        options = getattr(inner, "options", None)
        self._options: Mapping[str, Any] = options if isinstance(options, Mapping) else {}
        #: the attributes every chat span of this provider starts with
        self._base = {"gen_ai.operation.name": "chat",
                      "gen_ai.provider.name": _provider_name(inner, self.kind),
                      "plait.provider": name}

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._inner, attr)

    def _model(self, req: Any) -> str:
        # redacted: a model may be named by a secret (a private deployment's name)
        return self._redact(str(req.model or getattr(self._inner, "model", None) or ""))

    def _start(self, req: Any) -> Any:
        model = self._model(req)
        attrs: dict[str, Any] = self._base.copy()
        if model:
            attrs["gen_ai.request.model"] = model
        if self._options or req.options or req.max_tokens or req.stop:
            attrs.update(_request_options(req, self._options))
        if req.tools:
            attrs["gen_ai.tool.definitions"] = _json(
                [{"type": "function", "name": t.name} for t in req.tools])
        if req.output_schema is not None:
            attrs["gen_ai.output.type"] = "json"
        if self._content:
            system, messages = _messages(req.messages)
            if system:
                attrs["gen_ai.system_instructions"] = self._redact(_json(system))
            attrs["gen_ai.input.messages"] = self._redact(_json(messages))
        name = f"chat {model}" if model else "chat"
        return self._t._tracer.start_span(name, kind=self._t._api.CLIENT, attributes=attrs)

    def _finish(self, span: Any, response: Any) -> None:
        usage = response.usage
        attrs: dict[str, Any] = {
            "gen_ai.usage.input_tokens": usage.input_tokens,
            "gen_ai.usage.output_tokens": usage.output_tokens,
            "gen_ai.response.finish_reasons": (str(response.finish_reason),)}
        if usage.cached_input_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_input_tokens
        if response.model:
            attrs["gen_ai.response.model"] = self._redact(str(response.model))
        if response.raw_id:
            attrs["gen_ai.response.id"] = self._redact(str(response.raw_id))
        if self._content:
            attrs["gen_ai.output.messages"] = self._redact(_json([_output(response)]))
        span.set_attributes(attrs)

    async def generate(self, req: Any) -> Any:
        api = self._t._api
        span = self._start(req)
        # current while the call runs (what trace.use_span does, without its generator)
        token = api.attach(api.in_context(span))
        try:
            response = await self._inner.generate(req)
        except BaseException as exc:
            _record_error(span, exc, self._redact)
            span.end()
            raise
        finally:
            api.detach(token)
        self._finish(span, response)
        span.end()
        return response

    async def stream(self, req: Any) -> AsyncIterator[Any]:
        from engine.providers.types import collect_stream

        span = self._start(req)
        chunks: list[Any] = []
        try:
            async for chunk in self._inner.stream(req):
                chunks.append(chunk)
                yield chunk
        except BaseException as exc:
            _record_error(span, exc, self._redact)
            span.end()
            raise
        try:
            response = collect_stream(chunks)
        except ValueError as exc:  # bad tool arguments: the step's own fold reports them
            _record_error(span, exc, self._redact)
        else:
            self._finish(span, response)
        span.end()

    async def health_check(self) -> bool:
        return bool(await self._inner.health_check())

    async def aclose(self) -> None:
        await self._inner.aclose()


def _provider_name(provider: Any, kind: str) -> str:
    """The GenAI conventions' gen_ai.provider.name: Gemini through Vertex AI is
    gcp.vertex_ai, through the Gemini API gcp.gemini."""
    if kind == "google" and getattr(getattr(provider, "spec", None), "vertex", False) is True:
        return "gcp.vertex_ai"
    return PROVIDER_NAMES.get(kind, kind)


#: provider options -> the GenAI request attributes (several vendors' names for one)
_OPTION_ATTRIBUTES = {
    "temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k", "seed": "gen_ai.request.seed",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens"}


def _request_options(req: Any, base: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes of the options sent: the provider's (`base`) with the step's
    on top, as the providers merge them."""
    options = {**base, **req.options} if isinstance(req.options, Mapping) else dict(base)
    out: dict[str, Any] = {}
    for key, attr in _OPTION_ATTRIBUTES.items():
        value = options.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[attr] = value
    if req.max_tokens:
        out["gen_ai.request.max_tokens"] = req.max_tokens
    if req.stop:
        out["gen_ai.request.stop_sequences"] = tuple(str(s) for s in req.stop)
    return out


def _messages(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """GenAI semconv message shapes: (system instructions, input messages)."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.append({"type": "text", "content": message.text})
            continue
        parts: list[dict[str, Any]] = []
        if message.role == "tool":
            parts.append({"type": "tool_call_response", "id": message.tool_call_id,
                          "response": message.text})
        elif message.text:
            parts.append({"type": "text", "content": message.text})
        for call in message.tool_calls:
            parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                          "arguments": dict(call.arguments)})
        out.append({"role": message.role, "parts": parts})
    return system, out


def _output(response: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if response.text:
        parts.append({"type": "text", "content": response.text})
    for call in response.tool_calls:
        parts.append({"type": "tool_call", "id": call.id, "name": call.name,
                      "arguments": dict(call.arguments)})
    return {"role": "assistant", "parts": parts, "finish_reason": response.finish_reason}
