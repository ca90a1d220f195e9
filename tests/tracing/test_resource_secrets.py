"""The resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) goes with every span: a secret's
value put there is masked like it is in the spans, whichever exporter writes it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tracing.test_exporters import plait

SECRET = "s3cr3t-in-the-RES0URCE"
WORKFLOW = """\
version: 1
name: resourced
secrets: [MY_TOKEN]
providers:
  p: {kind: echo, model: echo-1}
steps:
  a:
    llm: p
    prompt: "hi ${{ secrets.MY_TOKEN }}"
"""


def _spans(path: Path) -> list[dict[str, object]]:
    text = path.read_text()
    assert SECRET not in text
    return [json.loads(line) for line in text.splitlines()]


def test_a_secret_in_otel_resource_attributes_is_masked(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl", cwd=tmp_path,
                env={"MY_TOKEN": SECRET, "OTEL_RESOURCE_ATTRIBUTES":
                     f"deployment.environment=prod,team.token={SECRET}"})
    assert out.returncode == 0, out.stderr
    spans = _spans(tmp_path / "t.jsonl")
    assert len(spans) == 3
    for span in spans:
        attrs = span["resource"]["attributes"]  # type: ignore[index]
        assert attrs["team.token"] == "***"
        assert attrs["deployment.environment"] == "prod"
        assert attrs["service.name"] == "plait"


def test_a_secret_from_dotenv_in_the_service_name_is_masked_on_the_console(
        tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / ".env").write_text(f"MY_TOKEN={SECRET}\n")
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl", "--trace-console",
                cwd=tmp_path, env={"OTEL_SERVICE_NAME": f"svc-{SECRET}"})
    assert out.returncode == 0, out.stderr
    assert '"service.name": "svc-***"' in out.stderr
    assert SECRET not in out.stderr + out.stdout
    (span, *_) = _spans(tmp_path / "t.jsonl")
    assert span["resource"]["attributes"]["service.name"] == "svc-***"  # type: ignore[index]


SUB = """\
version: 1
name: child
secrets: [CHILD_TOKEN]
providers:
  p: {kind: echo, model: echo-1}
steps:
  a:
    llm: p
    prompt: "child ${{ secrets.CHILD_TOKEN }}"
outputs:
  said: ${{ steps.a.output }}
"""
CALLER = """\
version: 1
name: caller
steps:
  sub:
    workflow: sub/child.yaml
"""


def test_a_secret_declared_only_by_a_sub_workflow_is_masked_in_the_resource(
        tmp_path: Path) -> None:
    # the caller declares no secret; the sub-workflow (two levels down, its .env next to
    # it) does: its values are masked in the resource all the same
    (tmp_path / "wf.yaml").write_text(CALLER.replace("sub/child.yaml", "mid.yaml"))
    (tmp_path / "mid.yaml").write_text(CALLER.replace("caller", "mid"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text(SUB)
    (tmp_path / "sub" / ".env").write_text(f"DOTENV_TOKEN={SECRET}-dotenv\n")
    (tmp_path / "sub" / "child.yaml").write_text(
        SUB.replace("[CHILD_TOKEN]", "[CHILD_TOKEN, DOTENV_TOKEN]"))
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl", cwd=tmp_path,
                env={"CHILD_TOKEN": SECRET, "OTEL_SERVICE_NAME": f"svc-{SECRET}-dotenv",
                     "OTEL_RESOURCE_ATTRIBUTES": f"team.token={SECRET}"})
    assert out.returncode == 0, out.stderr
    spans = _spans(tmp_path / "t.jsonl")
    assert {s["name"] for s in spans} >= {"plait.run", "plait.step sub", "plait.step a"}
    for span in spans:
        attrs = span["resource"]["attributes"]  # type: ignore[index]
        assert attrs["team.token"] == "***"
        assert attrs["service.name"] == "svc-***"
