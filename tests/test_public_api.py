"""The public surface of `engine` is deliberate: this test locks it."""

from __future__ import annotations

import subprocess
import sys

import engine

EXPECTED = {
    "AuthError", "BadRequest", "ConfigError", "ContextTooLong", "ExpressionError", "InputError",
    "MissingDependencyError", "PlaitError", "PolicyViolation", "ProviderError", "RateLimited",
    "RunControl", "RunError", "RunResult", "SandboxError", "SpecError", "StateError",
    "StepError", "StepResult", "Timeout", "ToolError", "Unavailable", "Workflow", "load",
    "load_text", "run_workflow", "stream_run",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(engine.__all__) == EXPECTED
    for name in engine.__all__:
        assert getattr(engine, name) is not None


def test_every_error_derives_from_plait_error() -> None:
    for name in engine.__all__:
        value = getattr(engine, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, engine.PlaitError)


def test_importing_the_loader_imports_no_vendor_sdk() -> None:
    code = ("import sys, engine; "
            "engine.load_text('version: 1\\nname: x\\nsteps:\\n  a: {run: ls}\\n', 'x.yaml');"
            " bad = [m for m in ('openai', 'anthropic', 'google.genai', 'mcp', "
            "'opentelemetry.sdk') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
