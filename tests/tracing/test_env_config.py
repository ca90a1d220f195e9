"""The standard OTEL_* environment variables: the resource they describe, and values that
are malformed or name what plait cannot do (a clear error, exit 2, before anything runs)."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.tracing.test_exporters import WORKFLOW, plait


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW)
    return path


def _resource(workflow: Path, env: dict[str, str]) -> dict[str, str]:
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl",
                cwd=workflow.parent, env=env)
    assert out.returncode == 0, out.stderr
    first = (workflow.parent / "t.jsonl").read_text().splitlines()[0]
    return dict(json.loads(first)["resource"]["attributes"])


def test_service_name_from_resource_attributes(workflow: Path) -> None:
    attrs = _resource(workflow, {"OTEL_RESOURCE_ATTRIBUTES":
                                 "service.name=billing,deployment.environment=prod"})
    assert attrs["service.name"] == "billing"
    assert attrs["deployment.environment"] == "prod"
    # OTEL_SERVICE_NAME wins over the one in OTEL_RESOURCE_ATTRIBUTES
    attrs = _resource(workflow, {"OTEL_RESOURCE_ATTRIBUTES": "service.name=billing",
                                 "OTEL_SERVICE_NAME": "nightly"})
    assert attrs["service.name"] == "nightly"
    assert _resource(workflow, {})["service.name"] == "plait"


@pytest.mark.parametrize(("env", "says"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
      "OTEL_EXPORTER_OTLP_TIMEOUT": "ten"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
      "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"}, "OTEL_EXPORTER_OTLP_COMPRESSION"),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_RESOURCE_ATTRIBUTES": "team=data,prod"},
     "OTEL_RESOURCE_ATTRIBUTES"),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "sometimes"},
     "OTEL_TRACES_SAMPLER"),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "traceidratio",
      "OTEL_TRACES_SAMPLER_ARG": "5"}, "OTEL_TRACES_SAMPLER_ARG"),
])
def test_malformed_otel_values_are_clear_errors(workflow: Path, env: dict[str, str],
                                                says: str) -> None:
    """The SDK would log a warning (which a run never shows) and carry on with a default:
    spans exported somewhere else than asked, or not at all, and nobody told."""
    out = plait("run", "wf.yaml", "--no-record", cwd=workflow.parent, env=env)
    assert out.returncode == 2, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr
    assert "started" not in out.stderr  # before anything runs


def test_malformed_otlp_headers_error_does_not_echo_them(workflow: Path) -> None:
    token = "Bearer-4c9f-very-secret"
    out = plait("run", "wf.yaml", "--no-record", cwd=workflow.parent,
                env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                     "OTEL_EXPORTER_OTLP_HEADERS": f"x-team=ops,authorization {token}"})
    assert out.returncode == 2, out.stderr
    assert "OTEL_EXPORTER_OTLP_HEADERS" in out.stderr
    assert token not in out.stderr


def test_sampler_from_env(workflow: Path) -> None:
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl",
                cwd=workflow.parent, env={"OTEL_TRACES_SAMPLER": "always_off"})
    assert out.returncode == 0, out.stderr
    assert (workflow.parent / "t.jsonl").read_text() == ""


def test_sdk_disabled_skips_the_checks(workflow: Path) -> None:
    out = plait("run", "wf.yaml", "--no-record", cwd=workflow.parent,
                env={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "zipkin"})
    assert out.returncode == 0, out.stderr


def test_the_dropped_warning_hides_credentials_in_the_endpoint(workflow: Path) -> None:
    from tests.tracing.test_exporters import _closed_port

    port = _closed_port()
    for env, flags in (({"OTEL_EXPORTER_OTLP_ENDPOINT":
                         f"http://plait:hunter2-pw@127.0.0.1:{port}"}, ()),
                       ({}, ("--otlp", f"http://plait:hunter2-pw@127.0.0.1:{port}"))):
        out = plait("run", "wf.yaml", "--no-record", *flags, cwd=workflow.parent,
                    env={**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"})  # fail fast
        assert out.returncode == 0, out.stderr
        (warning,) = [line for line in out.stderr.splitlines() if "dropped" in line]
        assert "hunter2" not in out.stderr
        assert f"http://***@127.0.0.1:{port}" in warning


class _Refuses(http.server.BaseHTTPRequestHandler):
    """A collector that answers every export with 401 (a wrong or missing token)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b"bad token"
        self.send_response(401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_dropped_warning_says_why(workflow: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = plait("run", "wf.yaml", "--no-record", "--otlp",
                    f"http://127.0.0.1:{server.server_address[1]}", cwd=workflow.parent)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert out.returncode == 0, out.stderr
    (warning,) = [line for line in out.stderr.splitlines() if "dropped" in line]
    assert "401" in warning, warning
