"""The test suite's in-process demo MCP server (tests/mcp/inproc.py), served over stdio."""

from __future__ import annotations

from tests.mcp.inproc import demo_server

if __name__ == "__main__":
    demo_server().run("stdio")
