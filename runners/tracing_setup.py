"""The runner side of tracing: the OpenTelemetry SDK and its exporters, configured from CLI
flags and the standard ``OTEL_*`` environment variables, around one run.

    session = start_tracing(TraceConfig(file=Path("t.jsonl")))
    ... run_workflow(..., tracer=session.tracer) ...
    for line in session.shutdown(): print(line)   # flushes; warnings about dropped spans

Flags win over the environment. The environment variables honoured:

- ``OTEL_SDK_DISABLED=true``: no tracing at all, whatever the flags say;
- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console``, ``none`` (comma-separated);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: turn on OTLP;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the default, or ``grpc``), and the
  exporter's own ``OTEL_EXPORTER_OTLP_*`` headers, timeout and compression variables;
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (resource, default service ``plait``).

The resource is made once per session, before any run, and goes with every span to every
exporter: its values are masked with ``start_tracing(..., redact=)``, for the CLI
(``masked_for=``) :func:`resource_redactor` of the workflows the session will run (a
secret's value put into ``OTEL_RESOURCE_ATTRIBUTES`` shows as ``***``, as it does in the
spans themselves).

Spans reach the file through plait's own span processor (``runners/trace_file.py``: cheap
while the run goes, written in big batches), the console through the SDK's simple processor
(a line as each span ends) and OTLP through its batch processor (a worker thread posting
batches). Metrics are recorded only when something reads them: OTLP over HTTP; otherwise the
tracer gets a no-op meter provider.

An exporter that fails (an OTLP collector that is down) never fails the run: its spans are
dropped and :meth:`TracingSession.shutdown` returns ONE warning line saying so.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from engine.errors import ConfigError, MissingDependencyError, PlaitError
from engine.tracing import RunTracer

Redact = Callable[[str], str]

#: loggers of the SDK and exporters: not printed during a run (we report failures ourselves,
#: with what the exporters logged as the reason)
_QUIET = ("opentelemetry.sdk", "opentelemetry.exporter")
_SHUTDOWN_TIMEOUT_MS = 10_000
#: seconds an OTLP export may take, retries included, unless OTEL_EXPORTER_OTLP_*TIMEOUT says
OTLP_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class TraceConfig:
    file: Path | None = None
    console: bool = False
    otlp: str | None = None
    content: bool = False
    #: add to the trace file rather than start it afresh (a daemon's restarts keep their past)
    append: bool = False


@dataclass(frozen=True, slots=True)
class _Target:
    kind: str  # file | console | otlp
    where: str = ""
    protocol: str = "http/protobuf"


def wanted(config: TraceConfig, environ: Mapping[str, str] | None = None) -> bool:
    """Whether any exporter is asked for (by a flag or OTEL_* variables)."""
    return bool(_targets(config, os.environ if environ is None else environ))


def _targets(config: TraceConfig, env: Mapping[str, str]) -> list[_Target]:
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    targets: list[_Target] = []
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or
                env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip()
    if config.file is not None:
        targets.append(_Target("file", str(config.file)))
    if config.console:
        targets.append(_Target("console"))
    if config.otlp:
        targets.append(_Target("otlp", _traces_url(config.otlp, protocol), protocol))
    named = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not config.otlp and ("otlp" in named or (endpoint and not named)):
        targets.append(_Target("otlp", "", protocol))
    if "console" in named and not config.console:
        targets.append(_Target("console"))
    return targets


def _traces_url(url: str, protocol: str) -> str:
    """`--otlp http://host:4318` means the collector; OTLP/HTTP posts to /v1/traces.
    A URL that is not one is a ConfigError, before anything runs."""
    fix = "give the collector's address, e.g. http://127.0.0.1:4318"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise ConfigError(f"--otlp {_without_credentials(url)!r} is not a valid URL: "
                          f"{exc}", hint=fix) from None
    if protocol == "grpc":
        return url
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--otlp {_without_credentials(url)!r} is not an http:// or "
                          "https:// URL with a host",
                          hint=fix)
    if parts.path in ("", "/"):
        return url.rstrip("/") + "/v1/traces"
    return url


class _Counting:
    """Wraps an exporter; counts the spans it failed to send instead of logging each batch."""

    def __init__(self, inner: Any, label: str) -> None:
        self.inner, self.label = inner, label
        self.dropped = 0
        self.error: str | None = None

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter must never fail the run
            self.error = f"{type(exc).__name__}: {exc}"
            result = SpanExportResult.FAILURE
        if result != SpanExportResult.SUCCESS:
            self.dropped += len(spans)
        return result

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception as exc:
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(getattr(self.inner, "force_flush", lambda *_: True)(timeout_millis))


class TracingSession:
    """The SDK providers of one CLI run and the RunTracer built on them."""

    def __init__(self, config: TraceConfig, targets: list[_Target],
                 console: IO[str] | None = None, redact: Redact | None = None) -> None:
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        resource = _resource(redact)
        #: masks what the runner itself puts on spans (a `plait test` case's problems)
        self.redact: Redact = redact or (lambda text: text)
        self.content = config.content
        self.provider = TracerProvider(resource=resource)
        self._quiet = _silence()
        self.metrics_exporter = _metrics_exporter(targets)
        self.meter_provider: Any = None
        if self.metrics_exporter is not None:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            self.meter_provider = MeterProvider(resource=resource, metric_readers=[
                PeriodicExportingMetricReader(self.metrics_exporter,
                                              export_interval_millis=60_000)])
        #: what sends spans somewhere: each has label, dropped and error
        self.exporters: list[Any] = []
        try:
            for target in targets:
                if target.kind == "file":
                    file = _file_processor(Path(target.where), _label(target),
                                           append=config.append)
                    self.exporters.append(file)
                    self.provider.add_span_processor(file)
                    continue
                exporter = _Counting(_exporter(target, console), _label(target))
                self.exporters.append(exporter)
                if target.kind == "console":
                    self.provider.add_span_processor(SimpleSpanProcessor(exporter))  # type: ignore[arg-type]
                else:
                    self.provider.add_span_processor(BatchSpanProcessor(
                        exporter, max_queue_size=65_536,  # type: ignore[arg-type]
                        max_export_batch_size=2048, schedule_delay_millis=2000))
        except BaseException:  # a target that cannot work: close what was opened, loudly
            self.shutdown()
            raise
        # no metrics exporter (file, console): a no-op meter, so the tracer records none
        self.tracer = RunTracer(self.provider, self.meter_provider or NoOpMeterProvider(),
                                trace_content=config.content)

    def run_options(self) -> dict[str, Any]:
        """The RunOptions fields that trace a run into this session."""
        return {"tracer": self.tracer, "trace_content": self.content}

    def flush(self) -> None:
        """Write out what the ended spans so far (a long-lived process, between runs)."""
        self.provider.force_flush(_SHUTDOWN_TIMEOUT_MS)

    def close(self, out: IO[str] | None = None) -> None:
        """Shut down (:meth:`shutdown`) and print its warnings on `out` (stderr)."""
        for line in self.shutdown():
            print(line, file=out or sys.stderr, flush=True)

    def shutdown(self) -> list[str]:
        """Flush and close every exporter; one warning line per exporter that dropped spans."""
        try:
            self.provider.shutdown()
            if self.meter_provider is not None:
                if any(e.dropped and "OTLP" in e.label for e in self.exporters):
                    # the collector took no span: its metrics would wait out the same
                    # timeouts again (a run ended ~3 s later for nothing); they count as lost
                    self.metrics_exporter.skip = True
                self.meter_provider.shutdown(timeout_millis=_SHUTDOWN_TIMEOUT_MS)
        finally:
            _restore(self._quiet)
        warnings = []
        metrics_lost = self.metrics_exporter is not None and self.metrics_exporter.failed
        for exporter in self.exporters:
            if exporter.dropped or exporter.error:
                error = exporter.error or (self._quiet[1].reason() if "OTLP" in
                                           exporter.label else None)
                why = f" ({error})" if error else ""
                also = " (and the run's metrics)" if metrics_lost and "OTLP" in \
                    exporter.label else ""
                warnings.append(f"warning: traces were dropped: {exporter.dropped} span(s)"
                                f"{also} could not be sent to {exporter.label}{why}; the run "
                                "itself is not affected")
                metrics_lost = metrics_lost and not also
        if metrics_lost:
            warnings.append("warning: the run's metrics could not be sent to the OTLP "
                            "endpoint; the run itself is not affected")
        return warnings


@contextmanager
def traced_case(session: TracingSession, workflow: Any, case: Any,
                ) -> Iterator[Callable[[Any], Any]]:
    """A ``plait.test <case>`` span, the root of a trace of its own, current while a `plait
    test` case runs: its run's ``plait.run`` span nests under it. Give the case's outcome
    (a runners.workflow_tests.CaseResult) to the function it yields: it is recorded on the
    span (passed, failed, error or updated; a case that did not pass has status ERROR and
    its first problem as the description) and returned."""
    from opentelemetry import context, trace

    span = session.provider.get_tracer("plait").start_span(
        f"plait.test {case.name}", context=context.Context(), attributes={
            "plait.test.case": case.name, "plait.workflow": session.redact(workflow.name),
            "code.file.path": str(workflow.path)})
    token = context.attach(trace.set_span_in_context(span))

    def done(outcome: Any) -> Any:
        span.set_attribute("plait.test.status", outcome.status)
        if not outcome.ok:
            first = (outcome.problems or [outcome.status])[0].splitlines()[0]
            span.set_status(trace.StatusCode.ERROR, session.redact(first))
        return outcome

    try:
        yield done
    except BaseException as exc:
        span.set_attribute("error.type", type(exc).__name__)
        span.set_status(trace.StatusCode.ERROR, session.redact(str(exc)))
        raise
    finally:
        context.detach(token)
        span.end()


def _resource(redact: Redact | None) -> Any:
    """The resource of every span and metric: OTEL_SERVICE_NAME, else a service.name in
    OTEL_RESOURCE_ATTRIBUTES, else plait; its string values masked with `redact`."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "plait"}))
    if redact is None:
        return resource
    return Resource({k: redact(v) if isinstance(v, str) else v
                     for k, v in resource.attributes.items()}, resource.schema_url)


def resource_redactor(workflows: Iterable[Any],
                      environ: Mapping[str, str] | None = None) -> Redact:
    """What the runs of `workflows` (engine Workflow objects) mask, as far as it is known
    before they start: their `secrets:` and those of the sub-workflows they call
    (:func:`with_subworkflows`) that are set (environment, then the .env next to the
    workflow), the provider keys that are set, and the secrets written into the files. A
    secret that is missing is left to the run to report."""
    from engine.secrets import Redactor, literal_secret_values, parse_dotenv

    env = os.environ if environ is None else environ
    redactor = Redactor()
    for workflow in with_subworkflows(workflows):
        spec = workflow.spec
        dotenv = workflow.base_dir / ".env"
        try:
            values = parse_dotenv(dotenv.read_text(encoding="utf-8")) \
                if dotenv.is_file() else {}
        except (OSError, UnicodeDecodeError):  # the run reads it again, and says why
            values = {}
        values.update((k, v) for k, v in env.items() if v)
        redactor.update(Redactor.from_env(spec.secrets, env=values))
        redactor.add(*literal_secret_values(spec))
    return redactor.redact


def with_subworkflows(workflows: Iterable[Any]) -> list[Any]:
    """`workflows` and every workflow file their `workflow:` steps call, at any depth, each
    once: a sub-workflow's run masks its own `secrets:` (read from the environment or the
    .env next to ITS file). A file that cannot be loaded is left out: the run says why."""
    from engine.spec.loader import load

    found: dict[Path, Any] = {}
    todo = list(workflows)
    while todo:
        workflow = todo.pop()
        key = Path(workflow.path).resolve()
        if key in found:
            continue
        found[key] = workflow
        for step in workflow.spec.steps.values():
            name = getattr(step, "workflow", None)
            if not isinstance(name, str):
                continue
            target = (workflow.base_dir / name).resolve()
            if target in found:
                continue
            try:
                todo.append(load(target))
            except PlaitError:
                continue
    return list(found.values())


def _file_processor(path: Path, label: str, *, append: bool = False) -> Any:
    """The trace file's span processor; ConfigError if the file cannot be written."""
    from runners.targets import check_writable
    from runners.trace_file import FileSpanProcessor

    check_writable(path, "--trace-file", "the trace file")
    try:
        return FileSpanProcessor(path, label, append=append)
    except OSError as exc:
        raise ConfigError(f"cannot write the trace file {path}: {exc.strerror or exc}",
                          hint="give --trace-file the path of a file in a writable "
                               "directory") from None


def start_tracing(config: TraceConfig, environ: Mapping[str, str] | None = None, *,
                  console: IO[str] | None = None,
                  redact: Redact | None = None,
                  masked_for: Callable[[], Iterable[Any]] | None = None,
                  ) -> TracingSession | None:
    """A tracing session for the exporters asked for, or None when none is. `redact`
    masks the resource's values; or `masked_for()` gives the workflows whose secrets it
    masks (:func:`resource_redactor`), worked out only when there is a session to start."""
    env = os.environ if environ is None else environ
    targets = _targets(config, env)
    _check_environment(env, targets)
    if not targets:
        return None
    try:
        import opentelemetry.sdk  # noqa: F401
    except ImportError:
        raise MissingDependencyError("opentelemetry-sdk", "otel") from None
    if redact is None and masked_for is not None:
        redact = resource_redactor(masked_for(), env)
    return TracingSession(config, targets, console, redact)


_EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = ("http/protobuf", "grpc")
_SAMPLERS = ("always_on", "always_off", "traceidratio", "parentbased_always_on",
             "parentbased_always_off", "parentbased_traceidratio")


def _check_environment(env: Mapping[str, str], targets: list[_Target]) -> None:
    """OTEL_* values plait (or the SDK) cannot use are ConfigErrors before the run: the SDK
    would log a warning nobody sees and fall back to a default (spans sent elsewhere than
    asked, or not at all)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    named = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    unknown = [n for n in named if n not in _EXPORTERS]
    if unknown:
        raise _env_error("OTEL_TRACES_EXPORTER", f"names an exporter plait does not have: "
                         f"{', '.join(unknown)}", "use otlp, console or none "
                         "(comma-separated), or unset it")
    if targets:
        _check_sampler(env)
        bad = _malformed_entry(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        if bad:
            raise _env_error("OTEL_RESOURCE_ATTRIBUTES", f"is malformed (entry {bad} is not "
                             "key=value)", "write it as key=value pairs separated by commas, "
                             "e.g. deployment.environment=prod,team=data")
    otlp = next((t for t in targets if t.kind == "otlp"), None)
    if otlp is not None:
        _check_otlp(env, otlp)


def _check_otlp(env: Mapping[str, str], otlp: _Target) -> None:
    if otlp.protocol not in _PROTOCOLS:
        raise _env_error("OTEL_EXPORTER_OTLP_PROTOCOL", f"is {otlp.protocol!r}, which plait "
                         "cannot send", "use http/protobuf (the default) or grpc")
    for name in ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"):
        if env.get(name) and not _is_number(env[name], 0.0, None):
            raise _env_error(name, f"is {env[name]!r}, not a number", "give a number, "
                             "e.g. 10, or unset it")
    for name in ("OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"):
        value = env.get(name, "").strip().lower()
        if value and value not in ("gzip", "deflate", "none"):
            raise _env_error(name, f"is {value!r}, a compression the OTLP exporter does not "
                             "have", "use gzip, deflate or none")
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        bad = _malformed_entry(env.get(name, ""))
        if bad:  # the values are credentials: never echoed
            raise _env_error(name, f"is malformed (entry {bad} is not name=value)",
                             "write it as name=value pairs separated by commas, with the "
                             "values URL-encoded")
    if otlp.protocol != "grpc" and not otlp.where:
        _check_endpoint(env)


def _check_endpoint(env: Mapping[str, str]) -> None:
    """The OTLP/HTTP endpoint the exporter will read from the environment."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        url = env.get(name)
        if not url:
            continue
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError on a port that is not a number
        except ValueError:
            ok = False
        if not ok:
            raise _env_error(name, f"{_without_credentials(url)!r} is not an http:// or "
                             "https:// URL with a host", "give the collector's address, "
                             "e.g. http://127.0.0.1:4318")
        return


def _check_sampler(env: Mapping[str, str]) -> None:
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler and sampler not in _SAMPLERS:
        raise _env_error("OTEL_TRACES_SAMPLER", f"is {sampler!r}, not a sampler the "
                         "OpenTelemetry SDK has", f"use one of {', '.join(_SAMPLERS)}")
    arg = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if sampler.endswith("traceidratio") and arg and not _is_number(arg, 0.0, 1.0):
        raise _env_error("OTEL_TRACES_SAMPLER_ARG", f"is {arg!r}, not a ratio from 0 to 1",
                         "give the fraction of traces to keep, e.g. 0.25")


def _malformed_entry(text: str) -> int | None:
    """The 1-based number of the first comma-separated entry of `text` that is not
    name=value (blank entries are skipped), or None."""
    for number, item in enumerate(text.split(","), 1):
        name, equals, _value = item.partition("=")
        if item.strip() and not (equals and name.strip()):
            return number
    return None


def _is_number(text: str, low: float, high: float | None) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return low <= value and (high is None or value <= high)


def _env_error(name: str, what: str, fix: str) -> ConfigError:
    return ConfigError(f"the environment variable {name} {what}", hint=fix)


def _exporter(target: _Target, console: IO[str] | None) -> Any:
    if target.kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        from runners.gh_text import inert_json

        # spans hold untrusted text (--trace-content): under GitHub Actions, inert
        return ConsoleSpanExporter(out=console or sys.stderr,
                                   formatter=lambda span: inert_json(span.to_json(indent=None))
                                   + "\n")
    if target.protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GRPCExporter,
            )
        except ImportError:
            raise MissingDependencyError("opentelemetry-exporter-otlp-proto-grpc",
                                         "otel-grpc") from None
        return GRPCExporter(endpoint=target.where or None)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingDependencyError("opentelemetry-exporter-otlp-proto-http", "otel") from None
    return OTLPSpanExporter(endpoint=target.where or None, timeout=_otlp_timeout())


def _otlp_timeout() -> float | None:
    """The exporter's deadline (retries included): the OTEL_* variable when set, else
    OTLP_TIMEOUT, short so a collector that is down delays the end of a run only briefly."""
    if os.environ.get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or \
            os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT"):
        return None
    return OTLP_TIMEOUT


def _metrics_exporter(targets: list[_Target]) -> Any:
    """With OTLP over HTTP, the run's metrics go to the same collector (/v1/metrics)."""
    target = next((t for t in targets if t.kind == "otlp" and t.protocol != "grpc"), None)
    if target is None:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    except ImportError:
        return None
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

    endpoint = None
    if target.where.endswith("/v1/traces"):
        endpoint = target.where[: -len("traces")] + "metrics"
    inner = OTLPMetricExporter(endpoint=endpoint, timeout=_otlp_timeout())

    class _CountingMetrics(MetricExporter):
        """Remembers a failed export instead of logging it."""

        def __init__(self) -> None:
            super().__init__(inner._preferred_temporality, inner._preferred_aggregation)
            self.failed = False
            #: set when the spans to the same collector were dropped: export nothing more
            self.skip = False

        def export(self, metrics_data: Any, timeout_millis: float = 10_000,
                   **kwargs: Any) -> MetricExportResult:
            if self.skip:
                self.failed = True
                return MetricExportResult.FAILURE
            try:
                result = inner.export(metrics_data, timeout_millis=timeout_millis)
            except Exception:
                result = MetricExportResult.FAILURE
            self.failed = self.failed or result != MetricExportResult.SUCCESS
            return result

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            inner.shutdown()

    return _CountingMetrics()


def _label(target: _Target) -> str:
    if target.kind == "otlp":
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if base and target.protocol != "grpc":  # the exporter posts to the base's /v1/traces
            base = base.rstrip("/") + "/v1/traces"
        where = target.where or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or \
            base or "the default endpoint"
        return f"the OTLP endpoint {_without_credentials(where)}"
    return "the trace file " + target.where if target.kind == "file" else "the console"


def _without_credentials(url: str) -> str:
    """`url` with a user and password in it (http://user:pw@host) shown as ***."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or "@" not in parts.netloc:  # not a URL the parser understands
        return "***@" + url.rpartition("@")[2]
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


class _Captured(logging.Handler):
    """What the exporters log during a run, kept instead of printed: the first error and the
    first warning (an HTTP status, a refused connection), the reason spans were dropped."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.error: str | None = None
        self.warning: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()[:300]
        except Exception:  # a record that cannot be formatted says nothing useful
            return
        if record.levelno >= logging.ERROR:
            self.error = self.error or text
        else:
            self.warning = self.warning or text

    def reason(self) -> str | None:
        return "; ".join(t for t in (self.error, self.warning) if t) or None


Quieted = tuple[list[tuple[logging.Logger, bool, int]], _Captured]


def _silence() -> Quieted:
    saved = []
    captured = _Captured()
    for name in _QUIET:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate, logger.level))
        logger.propagate = False
        if name == "opentelemetry.exporter":
            logger.setLevel(logging.WARNING)
            logger.addHandler(captured)
        else:
            logger.setLevel(logging.CRITICAL + 1)
    return saved, captured


def _restore(quieted: Quieted) -> None:
    saved, captured = quieted
    for logger, propagate, level in saved:
        logger.removeHandler(captured)
        logger.propagate = propagate
        logger.setLevel(level)
