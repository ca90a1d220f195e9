"""A stdio MCP server whose one tool, `meta`, returns the `_meta` of the request it got (to
see the W3C trace context the client sent)."""

from __future__ import annotations

import json
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


async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
    meta = params.meta.model_dump(mode="json", by_alias=True, exclude_none=True) \
        if hasattr(params.meta, "model_dump") else (params.meta or {})
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(meta))])


async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[Tool(name="meta", description="Return the request _meta.",
                                       input_schema={"type": "object", "properties": {}})])


async def main() -> None:
    server = Server("meta", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
