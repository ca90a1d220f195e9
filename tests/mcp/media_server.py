"""A stdio MCP server whose tools answer with content blocks that are not text, for the
agent tests: snapshot (a text and a PNG image), picture (only an image), link (only a
resource link), blob (only an embedded binary resource)."""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.types import (
    BlobResourceContents,
    CallToolRequestParams,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ListToolsResult,
    PaginatedRequestParams,
    ResourceLink,
    TextContent,
    Tool,
)

OBJ = {"type": "object", "properties": {}}
#: 12 bytes, base64
PNG = "iVBORw0KGgoAAAAN"


async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[Tool(name=name, description=f"Answer with {name}.",
                                       input_schema=OBJ)
                                  for name in ("snapshot", "picture", "link", "blob")])


async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
    image = ImageContent(type="image", data=PNG, mime_type="image/png")
    blocks: dict[str, list[Any]] = {
        "snapshot": [TextContent(type="text", text="the page, as shown"), image],
        "picture": [image],
        "link": [ResourceLink(type="resource_link", uri="file:///logs/today.txt",
                              name="today.txt")],
        "blob": [EmbeddedResource(type="resource", resource=BlobResourceContents(
            uri="file:///a.bin", blob=PNG, mime_type="application/octet-stream"))],
    }
    return CallToolResult(content=blocks[params.name])


async def main() -> None:
    server = Server("media", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
