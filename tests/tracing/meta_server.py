"""A stdio MCP server that shows the `_meta` of the requests it gets (to see the W3C trace
context the client sent): its tool `meta` returns it (with the server's pid, as
`server_pid`), as does reading any `meta://` resource
and getting the prompt `meta` (whose message also holds the prompt's arguments). Reading
`meta://missing` and getting any other prompt are JSON-RPC errors."""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
from mcp import MCPError
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    GetPromptRequestParams,
    GetPromptResult,
    ListToolsResult,
    PaginatedRequestParams,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
    TextResourceContents,
    Tool,
)


def _meta(params: Any) -> dict[str, Any]:
    meta = params.meta
    if hasattr(meta, "model_dump"):
        return dict(meta.model_dump(mode="json", by_alias=True, exclude_none=True))
    return dict(meta or {})


async def call_tool(ctx: Any, params: CallToolRequestParams) -> CallToolResult:
    text = json.dumps({**_meta(params), "server_pid": os.getpid()})
    return CallToolResult(content=[TextContent(type="text", text=text)])


async def list_tools(ctx: Any, params: PaginatedRequestParams | None) -> ListToolsResult:
    return ListToolsResult(tools=[Tool(name="meta", description="Return the request _meta.",
                                       input_schema={"type": "object", "properties": {}})])


async def read_resource(ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
    if str(params.uri) == "meta://missing":
        raise MCPError(INVALID_PARAMS, f"no resource {params.uri}")
    return ReadResourceResult(contents=[TextResourceContents(
        uri=str(params.uri), mime_type="application/json", text=json.dumps(_meta(params)))])


async def get_prompt(ctx: Any, params: GetPromptRequestParams) -> GetPromptResult:
    if params.name != "meta":
        raise MCPError(INVALID_PARAMS, f"no prompt {params.name}")
    text = json.dumps({"meta": _meta(params), "arguments": params.arguments or {}})
    return GetPromptResult(description="the request's _meta", messages=[
        PromptMessage(role="user", content=TextContent(type="text", text=text))])


async def main() -> None:
    server = Server("meta", on_list_tools=list_tools, on_call_tool=call_tool,
                    on_read_resource=read_resource, on_get_prompt=get_prompt)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
