"""A remote MCP server (streamable HTTP or SSE) whose `crash` tool kills the process
mid-call, so the client's stream drops. Run as
``python -m tests.mcp.http_faulty --transport sse --host 127.0.0.1 --port N``."""

from __future__ import annotations

import argparse
import os


def main() -> None:
    from mcp.server.mcpserver import MCPServer

    parser = argparse.ArgumentParser()
    parser.add_argument("--transport", default="sse")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    opts = parser.parse_args()
    server = MCPServer("http-faulty", log_level="WARNING")

    @server.tool()
    def crash() -> str:
        """Exit the process mid-call."""
        os._exit(2)

    @server.tool()
    def echo(text: str) -> str:
        """Return the text."""
        return text

    server.run(opts.transport, host=opts.host, port=opts.port)


if __name__ == "__main__":
    main()
