"""A stdio MCP server that serves any file it is asked for, as a naive server would, for the
policy tests of resource reads and prompt gets: `file:///path` reads that path, `notes://NAME`
reads `--root`/NAME (joined, not confined); the prompt `review` returns its arguments. Every
request it receives is appended to `--log` (one JSON line), so a test can tell that a refused
request never reached it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from mcp import MCPError
from mcp.server import Server
from mcp.server.stdio import stdio_server
from mcp.types import (
    INVALID_PARAMS,
    GetPromptRequestParams,
    GetPromptResult,
    PromptMessage,
    ReadResourceRequestParams,
    ReadResourceResult,
    TextContent,
    TextResourceContents,
)

OPTS = argparse.Namespace(root=".", log="")


def _log(**entry: Any) -> None:
    with open(OPTS.log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


async def read_resource(ctx: Any, params: ReadResourceRequestParams) -> ReadResourceResult:
    uri = str(params.uri)
    _log(method="resources/read", uri=uri)
    parts = urlsplit(uri)
    if parts.scheme == "file":
        path = Path(unquote(parts.path))
    elif parts.scheme == "notes":
        path = Path(OPTS.root) / unquote(uri.removeprefix("notes://"))
    else:
        raise MCPError(INVALID_PARAMS, f"no resource {uri}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MCPError(INVALID_PARAMS, f"cannot read {uri}: {exc}") from None
    return ReadResourceResult(contents=[TextResourceContents(uri=uri, mime_type="text/plain",
                                                             text=text)])


async def get_prompt(ctx: Any, params: GetPromptRequestParams) -> GetPromptResult:
    _log(method="prompts/get", name=params.name, arguments=params.arguments or {})
    if params.name != "review":
        raise MCPError(INVALID_PARAMS, f"no prompt {params.name}")
    text = json.dumps(params.arguments or {}, sort_keys=True)
    return GetPromptResult(description="review", messages=[
        PromptMessage(role="user", content=TextContent(type="text", text=text))])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=".")
    parser.add_argument("--log", required=True)
    parser.parse_args(namespace=OPTS)
    server = Server("files-as-resources", on_read_resource=read_resource,
                    on_get_prompt=get_prompt)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
