"""The trace file of ``plait run --trace-file``: ended spans as JSON lines, in big batches.

A span processor (the SDK's extension point for what happens when a span ends) rather than a
``BatchSpanProcessor`` around an exporter: the batch processor's queue, worker thread and
wake-ups cost more per span than the run's own work on short steps, and the ended spans it
holds until the end make the garbage collector's full passes longer and more frequent. Here
``on_end`` turns the span into its line at once (a string the collector never scans) and keeps
the lines in a list, written out every :data:`BATCH` spans (so memory stays bounded on long
runs) and when the provider is flushed or shut down.

Imported only once the OpenTelemetry SDK is known to be installed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

__all__ = ("BATCH", "FileSpanProcessor", "span_line")

#: lines held before they are written (about 600 bytes each)
BATCH = 8192

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


class _Cache:
    """What most spans of a run share, formatted once: the trace id, the second part of the
    timestamps, kinds, plain statuses, the resource."""

    __slots__ = ("kinds", "resources", "second", "statuses", "trace")

    def __init__(self) -> None:
        self.trace: tuple[int, str] = (-1, "")
        self.second: tuple[int, str] = (-1, "")
        self.kinds: dict[Any, str] = {}
        self.statuses: dict[Any, str] = {}
        self.resources: dict[int, tuple[Any, str]] = {}

    def iso(self, ns: int | None) -> str | None:
        """`ns` like the SDK's timestamps: UTC, ISO 8601, microseconds."""
        if ns is None:
            return None
        seconds, rest = divmod(ns, 1_000_000_000)
        if seconds != self.second[0]:
            self.second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
        return f"{self.second[1]}.{rest // 1000:06d}Z"

    def iso_json(self, ns: int | None) -> str:
        text = self.iso(ns)
        return "null" if text is None else f'"{text}"'

    def trace_id(self, trace_id: int) -> str:
        if trace_id != self.trace[0]:
            self.trace = (trace_id, f"0x{trace_id:032x}")
        return self.trace[1]

    def kind(self, kind: Any) -> str:
        text = self.kinds.get(kind)
        if text is None:
            text = self.kinds[kind] = _encode(str(kind))
        return text

    def status(self, status: Any) -> str:
        if status.description:
            return _encode({"status_code": status.status_code.name,
                            "description": status.description})
        text = self.statuses.get(status.status_code)
        if text is None:
            text = self.statuses[status.status_code] = _encode(
                {"status_code": status.status_code.name})
        return text

    def resource(self, resource: Any) -> str:
        # keyed by id, the resource kept alongside so the id cannot be reused
        held = self.resources.get(id(resource))
        if held is None:
            held = self.resources[id(resource)] = (resource, _encode(
                {"attributes": dict(resource.attributes)}))
        return held[1]


def span_line(span: ReadableSpan, cache: _Cache | None = None) -> str:
    """One span as a JSON line with the keys of the SDK's ``to_json`` (name, context, kind,
    parent_id, start_time, end_time, status, attributes, events, resource), compact."""
    c = cache or _Cache()
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    parent_id = "null" if parent is None else f'"0x{parent.span_id:016x}"'
    events = span.events
    event_list = _encode([{"name": e.name, "timestamp": c.iso(e.timestamp),
                           "attributes": dict(e.attributes or {})}
                          for e in events]) if events else "[]"
    # attributes.copy(): the span's own dict, copied in one go (dict() would go key by key)
    return (f'{{"name":{_encode(span.name)},"context":{{"trace_id":"{c.trace_id(ctx.trace_id)}",'
            f'"span_id":"0x{ctx.span_id:016x}"}},"kind":{c.kind(span.kind)},'
            f'"parent_id":{parent_id},"start_time":{c.iso_json(span.start_time)},'
            f'"end_time":{c.iso_json(span.end_time)},"status":{c.status(span.status)},'
            f'"attributes":{_encode(span.attributes.copy())},"events":{event_list},'
            f'"resource":{c.resource(span.resource)}}}\n')


class FileSpanProcessor(SpanProcessor):
    """Writes every sampled span that ends to `path`, one JSON line each (see the module
    docstring). A failure to write never reaches the run: the spans are counted in
    `dropped` and the first error kept in `error`."""

    def __init__(self, path: Path, label: str, *, batch: int = BATCH) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: IO[str] | None = path.open("w", encoding="utf-8")
        self.label = label
        self._batch = batch
        self._lines: list[str] = []
        self._cache = _Cache()
        self._lock = threading.Lock()  # spans may end in other threads
        self.dropped = 0
        self.error: str | None = None

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return
        with self._lock:
            if self._out is None:  # shut down
                self.dropped += 1
                return
            try:
                self._lines.append(span_line(span, self._cache))
            except Exception as exc:  # a span processor must never fail the run
                self._failed(1, exc)
                return
            if len(self._lines) >= self._batch:
                self._write()

    def _write(self) -> None:
        lines, self._lines = self._lines, []
        if self._out is None or not lines:
            return
        try:
            self._out.write("".join(lines))
        except Exception as exc:
            self._failed(len(lines), exc)

    def _failed(self, count: int, exc: BaseException) -> None:
        self.dropped += count
        self.error = self.error or f"{type(exc).__name__}: {exc}"

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            self._write()
            if self._out is not None:
                try:
                    self._out.flush()
                except Exception as exc:
                    self.error = self.error or f"{type(exc).__name__}: {exc}"
                    return False
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._write()
            out, self._out = self._out, None
            if out is None:
                return
            try:
                out.flush()
                os.fsync(out.fileno())
            except Exception as exc:
                self.error = self.error or f"{type(exc).__name__}: {exc}"
            finally:
                out.close()
