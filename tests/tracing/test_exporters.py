"""The runner's exporters, end to end through `plait run`: a trace file, a local OTLP/HTTP
receiver that decodes the protobuf, and an OTLP endpoint that is down."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """\
version: 1
name: exported
providers:
  p: {kind: echo, model: echo-1}
steps:
  a:
    llm: p
    prompt: one
  b:
    llm: p
    prompt: "two ${{ steps.a.output }}"
"""


def plait(*args: str, cwd: Path, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "OTEL_SDK_DISABLED"}
    full.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=full, check=False)


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return path


def test_trace_file_one_span_a_line(workflow: Path) -> None:
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl", cwd=workflow.parent)
    assert out.returncode == 0, out.stderr
    lines = (workflow.parent / "t.jsonl").read_text().splitlines()
    spans = [json.loads(line) for line in lines]
    names = sorted(s["name"] for s in spans)
    assert names == ["chat echo-1", "chat echo-1", "plait.run", "plait.step a",
                     "plait.step b"]
    run = next(s for s in spans if s["name"] == "plait.run")
    assert run["resource"]["attributes"]["service.name"] == "plait"
    assert {s["context"]["trace_id"] for s in spans} == {run["context"]["trace_id"]}


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[Any]

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as metrics
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as traces

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path != "/v1/metrics" and getattr(self.server, "refuse_traces", False):
            self.send_response(400)  # not retried by the exporter
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/v1/metrics":
            message: Any = metrics.ExportMetricsServiceRequest()
            message.ParseFromString(body)
            self.server.metrics.append(message)  # type: ignore[attr-defined]
            payload = metrics.ExportMetricsServiceResponse().SerializeToString()
        else:
            message = traces.ExportTraceServiceRequest()
            message.ParseFromString(body)
            self.server.received.append(  # type: ignore[attr-defined]
                (self.path, self.headers["Content-Type"], message))
            payload = traces.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    server.metrics = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_otlp_http_receiver_gets_the_spans(workflow: Path, receiver: Any) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    out = plait("run", "wf.yaml", "--no-record", "--otlp", url, cwd=workflow.parent)
    assert out.returncode == 0, out.stderr
    assert "dropped" not in out.stderr
    assert receiver.received, "no export request arrived"
    names = []
    for path, content_type, request in receiver.received:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                names += [span.name for span in ss.spans]
    assert sorted(names) == ["chat echo-1", "chat echo-1", "plait.run", "plait.step a",
                             "plait.step b"]
    metric_names = {m.name for request in receiver.metrics for rm in request.resource_metrics
                    for sm in rm.scope_metrics for m in sm.metrics}
    assert {"plait.step.duration", "plait.tokens"} <= metric_names


def test_otlp_from_env_vars(workflow: Path, receiver: Any) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    out = plait("run", "wf.yaml", "--no-record", cwd=workflow.parent,
                env={"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "nightly"})
    assert out.returncode == 0, out.stderr
    request = receiver.received[0][2]
    attrs = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert attrs["service.name"] == "nightly"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_otlp_endpoint_down_warns_once_and_the_run_succeeds(workflow: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    out = plait("run", "wf.yaml", "--no-record", "--otlp", url, "--json", cwd=workflow.parent)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "succeeded"
    warnings = [line for line in out.stderr.splitlines() if "dropped" in line]
    assert len(warnings) == 1, out.stderr
    assert warnings[0].startswith("warning: traces were dropped: 5 span(s) (and the run's "
                                  "metrics) could not be sent to the OTLP endpoint")
    assert url in warnings[0]
    assert "Traceback" not in out.stderr and "ERROR" not in out.stderr


def test_the_warning_names_the_url_the_spans_went_to(workflow: Path) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the exporter posts to its /v1/traces, which
    the warning names (it named the base, unlike the same warning for --otlp)."""
    url = f"http://127.0.0.1:{_closed_port()}"
    out = plait("run", "wf.yaml", "--no-record", cwd=workflow.parent,
                env={"OTEL_EXPORTER_OTLP_ENDPOINT": url + "/"})
    assert out.returncode == 0, out.stderr
    assert f"could not be sent to the OTLP endpoint {url}/v1/traces (" in out.stderr


def test_sdk_disabled_means_no_trace_file(workflow: Path) -> None:
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl",
                cwd=workflow.parent, env={"OTEL_SDK_DISABLED": "true"})
    assert out.returncode == 0 and not (workflow.parent / "t.jsonl").exists()


def test_trace_console_prints_spans_on_stderr(workflow: Path) -> None:
    out = plait("run", "wf.yaml", "--no-record", "--trace-console", "--json",
                cwd=workflow.parent)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "succeeded"  # stdout untouched
    spans = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    assert sorted(s["name"] for s in spans) == ["chat echo-1", "chat echo-1", "plait.run",
                                                "plait.step a", "plait.step b"]


def test_env_selects_exporters() -> None:
    from runners.tracing_setup import TraceConfig, _targets

    assert _targets(TraceConfig(), {}) == []
    assert [t.kind for t in _targets(TraceConfig(), {"OTEL_TRACES_EXPORTER": "console"})] == \
        ["console"]
    assert _targets(TraceConfig(), {"OTEL_TRACES_EXPORTER": "none",
                                    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}) == []
    otlp = _targets(TraceConfig(otlp="http://127.0.0.1:4318/"), {})
    assert [(t.kind, t.where) for t in otlp] == [("otlp", "http://127.0.0.1:4318/v1/traces")]
    kept = _targets(TraceConfig(otlp="http://127.0.0.1:4318/custom/path"), {})
    assert kept[0].where == "http://127.0.0.1:4318/custom/path"
    assert _targets(TraceConfig(file=Path("t.jsonl")), {"OTEL_SDK_DISABLED": "true"}) == []


def test_grpc_without_its_exporter_is_a_clear_error(workflow: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the gRPC exporter is installed here")
    out = plait("run", "wf.yaml", "--no-record", "--otlp", "http://127.0.0.1:4317",
                cwd=workflow.parent, env={"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert out.returncode == 2
    assert "opentelemetry-exporter-otlp-proto-grpc" in out.stderr
    assert "plait[otel-grpc]" in out.stderr


def test_metrics_are_not_sent_where_the_spans_were_refused(workflow: Path,
                                                           receiver: Any) -> None:
    """When the collector took no span, the run's metrics (sent to the same collector at the
    end) would wait out the same timeouts again: they are counted lost instead."""
    receiver.refuse_traces = True
    url = f"http://127.0.0.1:{receiver.server_address[1]}"
    out = plait("run", "wf.yaml", "--no-record", "--otlp", url, cwd=workflow.parent)
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "dropped" in line]
    assert len(warnings) == 1 and "(and the run's metrics)" in warnings[0], out.stderr
    assert receiver.metrics == []
