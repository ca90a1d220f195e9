"""engine.mcp's public surface is locked, and importing it does not import the SDK."""

from __future__ import annotations

import subprocess
import sys

import engine.mcp
from tests.mcp.conftest import ROOT, child_env


def test_public_names() -> None:
    assert engine.mcp.__all__ == (
        "ConnectionStats", "MCPConnectionManager", "MCPRuntime", "MCPServerManager",
        "MCPSettings", "RateLimiter", "ServerStatus", "ToolDefinition", "ToolExecutor",
        "ToolInfo", "ToolRegistry", "ToolResult", "ToolStats", "Validator", "exposed",
        "normalise")
    for name in engine.mcp.__all__:
        assert getattr(engine.mcp, name) is not None


def test_import_is_lazy() -> None:
    code = ("import sys, engine.mcp, runners.cli.mcp; "
            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))")
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"
