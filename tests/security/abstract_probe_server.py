"""A stdio MCP server whose one tool, `probe`, tries to reach an abstract unix socket by
name (stream connect and datagram send) and a TCP port on 127.0.0.1, and reports each
outcome: "connected" or "refused <errno name>". Run inside the sandbox by
test_attack_abstract_sockets.py."""

from __future__ import annotations

import errno
import json
import socket
from typing import Any

import anyio
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
)

SCHEMA = {"type": "object", "required": ["stream", "dgram", "port"],
          "properties": {"stream": {"type": "string"}, "dgram": {"type": "string"},
                         "port": {"type": "integer"}}}


def _outcome(family: int, kind: int, address: Any) -> str:
    sock = socket.socket(family, kind)
    sock.settimeout(5)
    try:
        if kind == socket.SOCK_DGRAM:
            sock.sendto(b"from-mcp", address)
        else:
            sock.connect(address)
            sock.sendall(b"from-mcp")
        return "connected"
    except OSError as exc:
        return "refused " + errno.errorcode.get(exc.errno or 0, str(exc.errno))
    finally:
        sock.close()


async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
    args = params.arguments or {}
    result = {
        "stream": _outcome(socket.AF_UNIX, socket.SOCK_STREAM, "\0" + str(args["stream"])),
        "dgram": _outcome(socket.AF_UNIX, socket.SOCK_DGRAM, "\0" + str(args["dgram"])),
        "tcp": _outcome(socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", int(args["port"]))),
    }
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(result))])


async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[Tool(name="probe", description="Try to reach sockets.",
                                       input_schema=SCHEMA)])


async def main() -> None:
    server = Server("probe", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
