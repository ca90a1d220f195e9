from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.providers.conftest import servers, srv  # noqa: F401  (the fake vendor servers)

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def write_workflow(directory: Path, text: str, name: str = "wf.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def comparable(result: Any) -> dict[str, Any]:
    """What must be identical between a recorded and a replayed run: outputs and, per step,
    status, output, attempts, usage, cost, audit and notes (a foreach step's in item order)."""
    steps = {}
    for sid, step in result.steps.items():
        audit, notes = step.audit, step.notes
        steps[sid] = {"status": step.status, "output": step.output, "attempts": step.attempts,
                      "usage": step.usage, "cost": step.cost, "error": step.error,
                      "notes": notes, "audit": audit}
    return {"status": result.status, "outputs": result.outputs, "usage": result.usage,
            "cost": result.cost, "steps": steps}

