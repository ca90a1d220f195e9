"""The trace file of ``plait run --trace-file``: ended spans as JSON lines, in big batches.

A span processor (the SDK's extension point for what happens when a span ends) rather than a
``BatchSpanProcessor`` around an exporter: the batch processor's queue, worker thread and
wake-ups cost more per span than the run's own work on short steps, and the ended spans it
holds until they are exported are ~10 objects each that the garbage collector scans in every
full pass (on the executor benchmark's 2,000-step workload that was ~90 ms of the run). Here
``on_end`` copies what the line needs into a tuple of plain values (a :data:`Record`: one
object for the collector where the span is about ten) and lets the span go; records become
lines and are written every :data:`BATCH` spans (so memory stays bounded on long runs) and
when the provider is flushed or shut down, i.e. mostly after the run.

Imported only once the OpenTelemetry SDK is known to be installed.
"""

from __future__ import annotations

import json
import json.encoder
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from engine.jsontext import compact_encoder, finite

__all__ = ("BATCH", "FileSpanProcessor", "span_line")

#: spans held (as records, about 1 kB each) before they are written
BATCH = 8192

#: compact, UTF-8 as is (attribute values are flat: no circular-reference check needed);
#: strict JSON: NaN and infinities are refused, and _encode writes them as strings
_strict = compact_encoder(str, allow_nan=False)


def _encode(value: Any) -> str:
    try:
        return _strict(value)
    except ValueError:  # a NaN or infinite float (e.g. an option's value): "NaN", "Infinity"
        return _strict(finite(value))


_string = json.encoder.encode_basestring  # a str as a JSON string, as _encode writes it



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


#: what on_end keeps of a span until it is written: (name, trace id, span id, parent span id
#: or None, kind JSON, start ns, end ns, status JSON, attributes, events JSON or None,
#: resource JSON). Strings, numbers and a flat dict: the tuple (and until a full collection
#: the dict) is all the garbage collector scans, where the span itself is about ten objects.
Record = tuple[str, int, int, "int | None", str, "int | None", "int | None", str,
               dict[str, Any], "str | None", str]


def span_record(span: ReadableSpan, c: _Cache) -> Record:
    ctx = span.context
    assert ctx is not None
    parent = span.parent
    events = span.events
    # attributes.copy(): the span's own dict, copied in one go (dict() would go key by key)
    return (span.name, ctx.trace_id, ctx.span_id, None if parent is None else parent.span_id,
            c.kind(span.kind), span.start_time, span.end_time, c.status(span.status),
            span.attributes.copy(),  # type: ignore[union-attr]
            _encode([{"name": e.name, "timestamp": c.iso(e.timestamp),
                      "attributes": dict(e.attributes or {})} for e in events])
            if events else None, c.resource(span.resource))


def record_line(record: Record, c: _Cache) -> str:
    """One span as a JSON line with the keys of the SDK's ``to_json`` (name, context, kind,
    parent_id, start_time, end_time, status, attributes, events, resource), compact."""
    name, trace_id, span_id, parent, kind, start, end, status, attrs, events, resource = record
    parent_id = "null" if parent is None else f'"0x{parent:016x}"'
    return (f'{{"name":{_string(name)},"context":{{"trace_id":"{c.trace_id(trace_id)}",'
            f'"span_id":"0x{span_id:016x}"}},"kind":{kind},"parent_id":{parent_id},'
            f'"start_time":{c.iso_json(start)},"end_time":{c.iso_json(end)},'
            f'"status":{status},"attributes":{_encode(attrs)},"events":{events or "[]"},'
            f'"resource":{resource}}}\n')


def span_line(span: ReadableSpan, cache: _Cache | None = None) -> str:
    """`span` as its line (:func:`record_line`)."""
    c = cache or _Cache()
    return record_line(span_record(span, c), c)


class FileSpanProcessor(SpanProcessor):
    """Writes every sampled span that ends to `path`, one JSON line each (see the module
    docstring). A failure to write never reaches the run: the spans are counted in
    `dropped` and the first error kept in `error`."""

    def __init__(self, path: Path, label: str, *, batch: int = BATCH,
                 append: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a lone surrogate (JSON's "\ud800" decodes to one) cannot be UTF-8: written as the
        # JSON escape it came from (the encoder puts it, raw, only inside strings), rather
        # than failing the write of its whole batch
        self._out: IO[str] | None = path.open("a" if append else "w", encoding="utf-8",
                                              errors="backslashreplace")
        self.label = label
        self._batch = batch
        self._records: list[Record] = []
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
                self._records.append(span_record(span, self._cache))
            except Exception as exc:  # a span processor must never fail the run
                self._failed(1, exc)
                return
            if len(self._records) >= self._batch:
                self._write()

    def _write(self) -> None:
        records, self._records = self._records, []
        if self._out is None or not records:
            return
        try:
            self._out.write("".join([record_line(r, self._cache) for r in records]))
        except Exception as exc:
            self._failed(len(records), exc)

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
