"""MCP: server lifecycle, pooled sessions, tool registry and executor, bundled servers.

The `mcp` SDK is imported only when a server is actually started, so importing this package
(e.g. by `plait validate`) stays cheap.
"""

from __future__ import annotations

from engine.mcp._settings import MCPSettings
from engine.mcp.executor import RateLimiter, ToolExecutor, ToolStats, Validator
from engine.mcp.manager import MCPServerManager, ServerStatus
from engine.mcp.pool import ConnectionStats, MCPConnectionManager
from engine.mcp.registry import ToolInfo, ToolRegistry, exposed
from engine.mcp.results import ToolResult, normalise
from engine.mcp.runtime import MCPRuntime, ToolDefinition

__all__ = (
    "ConnectionStats",
    "MCPConnectionManager",
    "MCPRuntime",
    "MCPServerManager",
    "MCPSettings",
    "RateLimiter",
    "ServerStatus",
    "ToolDefinition",
    "ToolExecutor",
    "ToolInfo",
    "ToolRegistry",
    "ToolResult",
    "ToolStats",
    "Validator",
    "exposed",
    "normalise",
)
