"""The trace file's span processor: lines like the SDK's own span JSON, written in batches,
and a file that cannot be written never failing the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

from runners.trace_file import FileSpanProcessor, span_line

#: whole microseconds, so the SDK's float conversion and ours agree
T0 = 1_795_000_000_123_456_000


def _provider(processor: Any) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "plait"}))
    provider.add_span_processor(processor)
    return provider


def _spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("plait")
    run = tracer.start_span("plait.run", start_time=T0, attributes={"plait.run.id": "r1"})
    step = tracer.start_span("plait.step a", context=trace.set_span_in_context(run),
                             start_time=T0 + 1000, attributes={"plait.step.id": "a"})
    chat = tracer.start_span("chat m", context=trace.set_span_in_context(step),
                             kind=trace.SpanKind.CLIENT, start_time=T0 + 2000,
                             attributes={"gen_ai.response.finish_reasons": ("stop",),
                                         "plait.cost": 0.25, "ok": True, "text": "é \"q\""})
    chat.end(end_time=T0 + 3000)
    step.add_event("plait.retry", {"plait.attempt": 2}, timestamp=T0 + 4000)
    step.set_status(StatusCode.ERROR, "it failed")
    step.end(end_time=T0 + 5000)
    run.end(end_time=T0 + 6000)


class _Keep:
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def test_a_line_holds_what_the_sdk_json_holds() -> None:
    keep = _Keep()
    _spans(_provider(keep))
    assert len(keep.spans) == 3
    for span in keep.spans:
        ours = json.loads(span_line(span))
        sdk = json.loads(span.to_json(indent=None))
        del sdk["context"]["trace_state"], sdk["links"]
        sdk["resource"].pop("schema_url", None)
        assert ours == sdk


def test_spans_are_written_in_batches_and_on_shutdown(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deep" / "t.jsonl"
    processor = FileSpanProcessor(path, "the trace file", batch=2)
    assert processor._out is not None
    writes: list[int] = []
    write = processor._out.write
    monkeypatch.setattr(processor._out, "write",
                        lambda text: writes.append(text.count("\n")) or write(text))
    provider = _provider(processor)
    _spans(provider)
    assert writes == [2]  # two spans made a batch; the third waits for the flush
    processor.force_flush()
    assert writes == [2, 1]
    assert len(path.read_text().splitlines()) == 3
    provider.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [s["name"] for s in lines] == ["chat m", "plait.step a", "plait.run"]
    step = lines[1]
    assert step["status"] == {"status_code": "ERROR", "description": "it failed"}
    assert step["events"][0]["attributes"] == {"plait.attempt": 2}
    assert step["parent_id"] == lines[2]["context"]["span_id"]
    assert processor.dropped == 0 and processor.error is None


def test_a_write_that_fails_is_counted_not_raised(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    processor = FileSpanProcessor(tmp_path / "t.jsonl", "the trace file", batch=2)
    assert processor._out is not None

    def full(text: str) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(processor._out, "write", full)
    provider = _provider(processor)
    _spans(provider)  # the run goes on
    provider.shutdown()
    assert processor.dropped == 3
    assert processor.error is not None and "No space left" in processor.error


def test_spans_ending_after_shutdown_are_dropped(tmp_path: Path) -> None:
    processor = FileSpanProcessor(tmp_path / "t.jsonl", "the trace file")
    provider = TracerProvider()
    provider.add_span_processor(processor)
    span = provider.get_tracer("plait").start_span("late")
    processor.shutdown()
    span.end()
    assert processor.dropped == 1
    assert (tmp_path / "t.jsonl").read_text() == ""


def test_the_file_target_records_no_metrics(tmp_path: Path) -> None:
    """Nothing would read them (the file carries spans only), so the tracer gets a no-op
    meter provider and skips its instruments."""
    from runners.tracing_setup import TraceConfig, start_tracing

    session = start_tracing(TraceConfig(file=tmp_path / "t.jsonl"), environ={})
    assert session is not None
    assert session.meter_provider is None and session.tracer._metrics is None
    assert session.shutdown() == []


def test_a_lone_surrogate_costs_no_span(tmp_path: Path) -> None:
    """A tool result or model reply may hold a lone surrogate (JSON's "\\ud800" decodes to
    one): that span's line is still written (as JSON's escape), and so are the others of
    its batch, where the UTF-8 encoder's error dropped them all."""
    path = tmp_path / "t.jsonl"
    processor = FileSpanProcessor(path, "the trace file")
    provider = _provider(processor)
    tracer = provider.get_tracer("plait")
    for name in ("before", "odd \ud800 name", "after"):
        tracer.start_span(name, attributes={"gen_ai.tool.call.result": f"x\udcff{name}"},
                          start_time=T0).end(end_time=T0 + 1000)
    provider.shutdown()
    assert processor.dropped == 0 and processor.error is None
    spans = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [s["name"] for s in spans] == ["before", "odd \ud800 name", "after"]
    assert spans[0]["attributes"]["gen_ai.tool.call.result"] == "x\udcffbefore"


def test_numbers_json_cannot_hold_are_written_as_strings(tmp_path: Path) -> None:
    """A NaN or infinite attribute (e.g. an option such as `temperature: .nan`) was written
    as a bare NaN, which strict JSON readers refuse: the line (and a trace viewer's import of
    the file) failed."""
    path = tmp_path / "t.jsonl"
    processor = FileSpanProcessor(path, "the trace file")
    provider = _provider(processor)
    tracer = provider.get_tracer("plait")
    tracer.start_span("odd", attributes={"gen_ai.request.temperature": float("nan"),
                                         "big": float("inf"), "neg": float("-inf"),
                                         "list": [1.5, float("nan")], "ok": 0.5},
                      start_time=T0).end(end_time=T0 + 1000)
    provider.shutdown()

    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    [line] = path.read_text(encoding="utf-8").splitlines()
    attributes = json.loads(line, parse_constant=refuse)["attributes"]
    assert attributes == {"gen_ai.request.temperature": "NaN", "big": "Infinity",
                          "neg": "-Infinity", "list": [1.5, "NaN"], "ok": 0.5}
