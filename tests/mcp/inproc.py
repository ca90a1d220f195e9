"""In-process MCP servers for fast unit tests (driven through the real SDK, no subprocess)."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server import Server
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.types import Image
from mcp.types import (
    CallToolRequestParams,
    CallToolResult,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
    Tool,
    ToolAnnotations,
)

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
                    "0000000d4944415478da63f8cfc0f01f0005000201e3a2f2b40000000049454e44ae426082")


def demo_server() -> MCPServer:
    server = MCPServer("demo", log_level="ERROR")
    state = {"calls": 0}

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def add(a: int, b: int) -> int:
        """Add two integers."""
        state["calls"] += 1
        return a + b

    @server.tool()
    def echo(text: str, upper: bool = False) -> str:
        """Echo text back, optionally upper-cased."""
        return text.upper() if upper else text

    @server.tool()
    def fail(reason: str) -> str:
        """Always fails with the given reason."""
        raise ValueError(reason)

    @server.tool()
    def picture() -> Image:
        """Return a 1x1 PNG image."""
        return Image(data=PNG, format="png")

    @server.tool()
    def profile(name: str) -> dict[str, Any]:
        """Return a structured profile."""
        return {"name": name, "length": len(name)}

    @server.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await anyio.sleep(seconds)
        return "done"

    @server.tool()
    def calls() -> int:
        """How many times add ran."""
        return state["calls"]

    @server.resource("memo://greeting", mime_type="text/plain")
    def greeting() -> str:
        return "hello from a resource"

    @server.prompt()
    def review(topic: str) -> str:
        """Review prompt."""
        return f"Please review {topic}."

    return server


def paged_server(total: int = 25, page_size: int = 10) -> Server[Any]:
    """A low-level server that lists `total` tools over several pages."""
    tools = [Tool(name=f"t{i:02d}", description=f"tool number {i}",
                  input_schema={"type": "object", "properties": {}}) for i in range(total)]

    async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
        start = int(params.cursor) if params and params.cursor else 0
        end = start + page_size
        return ListToolsResult(tools=tools[start:end],
                               next_cursor=str(end) if end < total else None)

    async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=params.name)])

    return Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)
