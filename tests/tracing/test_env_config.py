"""The standard OTEL_* environment variables: the resource they describe, and values that
are malformed or name what plait cannot do (a clear error, exit 2, before anything runs)."""

from __future__ import annotations

import json
from pathlib import Path

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
