"""Errors for names that do not exist, with a "did you mean"."""

from __future__ import annotations

import difflib

from engine.errors import UnknownToolError


def suggest(name: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def unknown_server(name: str, known: list[str]) -> UnknownToolError:
    hint = suggest(name, known) or (
        f"declared servers: {', '.join(sorted(known))}" if known else
        "declare it under `mcp_servers:` in the workflow file")
    return UnknownToolError(f"unknown MCP server '{name}'", hint=hint, server=name)


def unknown_tool(server: str, tool: str, known: list[str]) -> UnknownToolError:
    hint = suggest(tool, known) or (
        f"server '{server}' exposes: {', '.join(sorted(known))}" if known else
        f"server '{server}' exposes no tools (check `tools.allow`/`tools.deny`)")
    return UnknownToolError(f"MCP server '{server}' has no tool '{tool}'", hint=hint,
                            server=server, tool=tool)
