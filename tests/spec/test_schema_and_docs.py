"""The committed schema and generated docs match the code; examples validate against the
schema as an editor would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from engine.spec.docgen import spec_reference
from engine.spec.schema import workflow_schema, workflow_schema_text
from engine.spec.yaml_source import read

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "workflows").glob("*/*.yaml"))


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "workflow.schema.json").read_text()
    assert committed == workflow_schema_text(), \
        "run: plait schema > schemas/workflow.schema.json"


def test_schema_is_valid_draft_2020_12() -> None:
    schema = workflow_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_docs_are_current() -> None:
    assert (ROOT / "docs" / "spec-reference.md").read_text() == spec_reference(), \
        "run: python -m engine.spec.docgen > docs/spec-reference.md"
    # in a process of its own, as the docs are made: click caches each command's help option
    # with the names of the first context that asked for it, and tests that invoke a
    # subcommand directly (without the root's `-h, --help`) would change what it prints here
    generated = subprocess.run([sys.executable, "-m", "runners.cli.docgen"], cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
                               capture_output=True, text=True, timeout=60, check=True).stdout
    assert (ROOT / "docs" / "cli.md").read_text() == generated, \
        "run: COLUMNS=100 python -m runners.cli.docgen > docs/cli.md"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_examples_validate_against_the_schema(path: Path) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=")
    data = read(path).data
    jsonschema.Draft202012Validator(workflow_schema()).validate(json.loads(json.dumps(data)))


def test_schema_rejects_what_the_loader_rejects() -> None:
    validator = jsonschema.Draft202012Validator(workflow_schema())
    bad = {"version": 1, "name": "x", "steps": {"a": {"run": "ls", "promt": "x"}}}
    assert list(validator.iter_errors(bad))
    two_kinds = {"version": 1, "name": "x", "steps": {"a": {"run": "ls", "llm": "p",
                                                          "prompt": "x"}}}
    assert list(validator.iter_errors(two_kinds))
