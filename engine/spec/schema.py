"""The JSON Schema of workflow files, generated from the models (one source of truth)."""

from __future__ import annotations

import json
from typing import Any


def workflow_schema() -> dict[str, Any]:
    from engine.spec.models import WorkflowSpec

    schema = WorkflowSpec.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def workflow_schema_text() -> str:
    return json.dumps(workflow_schema(), indent=2, sort_keys=False) + "\n"
