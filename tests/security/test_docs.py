"""The YAML examples in docs/security.md validate against the workflow models."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from engine.policy import resolve_policy
from engine.spec.models import WorkflowSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_yaml_examples_validate(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        spec = WorkflowSpec.model_validate(yaml.safe_load(block))
        for name, policy in spec.policies.items():
            resolve_policy(policy, name=name, base_dir=tmp_path, env={})
