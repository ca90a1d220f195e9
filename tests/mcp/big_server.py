"""An MCP server (the SDK's MCPServer) that sends messages as large as it is asked to, for
the message-size cap tests.

Tools: blob(size) returns a text of `size` characters (read-only: a crash would re-run
it); shout(size) writes a log notification (`notifications/message`) of `size` characters
to the client, then returns "ok" (shout_http: the same through the SDK, which sends it on
2025-era sessions only); flood() writes a line with no end (at most 1 GiB: it is
killed long before): a broken or hostile server. Resource `big://{size}`: a text of `size`
characters.

shout and flood write to the protocol's pipe themselves (the SDK's stdio server points fd 1
at stderr while it runs, and sends no log notification at protocol 2026-07-28), so they
only work over stdio.

    python tests/mcp/big_server.py [--instructions N] [--describe N]   # stdio
    app = big_server().streamable_http_app(...)         # HTTP, served by the tests
"""

from __future__ import annotations

import json
import os
import sys
import warnings

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

FLOOD_CHUNK = b"x" * 65536
FLOOD_CHUNKS = 16384  # 1 GiB
#: a duplicate of the stdout pipe, taken before the SDK redirects fd 1 (stdio only)
WIRE = {"fd": 1}


def big_server(instructions: int = 0, describe: int = 0) -> MCPServer:
    server = MCPServer("big", log_level="ERROR", instructions="i" * instructions or None)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True),
                 description="d" * describe or None)
    def blob(size: int) -> str:
        """A text of `size` characters."""
        return "x" * size

    @server.tool()
    def shout(size: int) -> str:
        """Log a message of `size` characters, then answer ok."""
        note = {"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": "info", "data": "y" * size}}
        os.write(WIRE["fd"], json.dumps(note).encode() + b"\n")
        return "ok"

    @server.tool()
    async def shout_http(size: int, ctx: Context) -> str:
        """Log a message of `size` characters through the SDK (2025-era sessions), then
        answer ok."""
        with warnings.catch_warnings():  # the logging capability is deprecated in 2026-07-28
            warnings.simplefilter("ignore")
            await ctx.log("info", "y" * size)
        return "ok"

    @server.tool()
    def flood() -> str:
        """Write one endless line to stdout."""
        os.write(WIRE["fd"], b'{"jsonrpc": "2.0", "id": 0, "result": "')
        for _ in range(FLOOD_CHUNKS):
            os.write(WIRE["fd"], FLOOD_CHUNK)
        return "unreachable"

    @server.resource("big://{size}")
    def big(size: str) -> str:
        """A text of `size` characters."""
        return "z" * int(size)

    return server


if __name__ == "__main__":
    WIRE["fd"] = os.dup(1)
    # --instructions N: instructions of N characters, sent in the initialize answer;
    # --describe N: blob's description is N characters (in the tools/list answer)
    sizes = {flag: int(sys.argv[sys.argv.index(flag) + 1]) if flag in sys.argv else 0
             for flag in ("--instructions", "--describe")}
    big_server(sizes["--instructions"], sizes["--describe"]).run("stdio")
