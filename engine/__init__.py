"""plait's engine: load a workflow file, check it, and run it.

    import engine
    wf = engine.load("workflow.yaml")
    result = await wf.run({"folder": "./data"})

Names are imported on first use, so `import engine.errors` (or a bundled MCP server) does not
pay for the spec models, the expression engine or the graph library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import (
        AuthError,
        BadRequest,
        ConfigError,
        ContextTooLong,
        ExpressionError,
        InputError,
        MissingDependencyError,
        PlaitError,
        PolicyViolation,
        ProviderError,
        RateLimited,
        RunError,
        SandboxError,
        SpecError,
        StateError,
        StepError,
        Timeout,
        ToolError,
        Unavailable,
    )
    from engine.executor import RunControl, RunResult, StepResult, run_workflow, stream_run
    from engine.spec.loader import load, load_text
    from engine.spec.workflow import Workflow

_WHERE = {
    "load": "engine.spec.loader", "load_text": "engine.spec.loader",
    "Workflow": "engine.spec.workflow",
    "RunControl": "engine.executor", "RunResult": "engine.executor",
    "StepResult": "engine.executor", "run_workflow": "engine.executor",
    "stream_run": "engine.executor",
    **{name: "engine.errors" for name in (
        "AuthError", "BadRequest", "ConfigError", "ContextTooLong", "ExpressionError",
        "InputError", "MissingDependencyError", "PlaitError", "PolicyViolation",
        "ProviderError", "RateLimited", "RunError", "SandboxError", "SpecError", "StateError",
        "StepError", "Timeout", "ToolError", "Unavailable")},
}

__all__ = (
    "AuthError",
    "BadRequest",
    "ConfigError",
    "ContextTooLong",
    "ExpressionError",
    "InputError",
    "MissingDependencyError",
    "PlaitError",
    "PolicyViolation",
    "ProviderError",
    "RateLimited",
    "RunControl",
    "RunError",
    "RunResult",
    "SandboxError",
    "SpecError",
    "StateError",
    "StepError",
    "StepResult",
    "Timeout",
    "ToolError",
    "Unavailable",
    "Workflow",
    "load",
    "load_text",
    "run_workflow",
    "stream_run",
)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
