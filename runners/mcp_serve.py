"""`plait mcp serve FILE`: a workflow as an MCP server. One tool, named after the workflow,
takes the workflow's inputs (typed, with their defaults and descriptions) and returns its
outputs; every call is a full, recorded run."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from engine.errors import PlaitError

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                          "object": dict[str, Any], "array": list[Any]}


def tool_name(workflow_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", workflow_name)[:64]


def _signature(workflow: Any) -> inspect.Signature:
    params = []
    for name, spec in workflow.spec.inputs.items():
        kind: Any = _TYPES[spec.type]
        if spec.enum:
            kind = Literal[tuple(spec.enum)]
        default = inspect.Parameter.empty if spec.is_required else spec.default
        params.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, default=default,
            annotation=Annotated[kind, Field(description=spec.description or name)]))
    return inspect.Signature(params, return_annotation=dict[str, Any])


def build_server(path: Path, *, state: str | None = None, share_servers: bool = False) -> Any:
    """An MCPServer whose one tool runs the workflow in `path`. With `share_servers` the
    workflow's own MCP servers stay up across calls for the life of the server process."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from engine.executor import run_workflow
    from engine.mcp.shared import SharedRuntimes
    from engine.spec.loader import load

    workflow = load(path)  # fail now, with located errors, not at the first call
    shared: dict[str, SharedRuntimes] = {}

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[None]:
        async with SharedRuntimes() as pool:
            shared["pool"] = pool
            try:
                yield None
            finally:
                shared.clear()

    server = MCPServer(f"plait-{workflow.name}", lifespan=lifespan if share_servers else None)

    async def run_tool(**inputs: Any) -> dict[str, Any]:
        try:
            result = await run_workflow(load(path), inputs, state_location=state,
                                        mcp_pool=shared.get("pool"))
        except PlaitError as exc:
            raise ToolError(str(exc)) from exc
        if not result.ok:
            message = (result.error or {}).get("message", result.status)
            raise ToolError(f"run {result.run_id} {result.status}: {message}")
        return dict(result.outputs)

    run_tool.__signature__ = _signature(workflow)  # type: ignore[attr-defined]
    run_tool.__name__ = tool_name(workflow.name)
    server.add_tool(run_tool, name=tool_name(workflow.name),
                    description=workflow.spec.description or f"Run the {workflow.name} "
                    "workflow and return its outputs.")
    return server


def bind_problem(host: str, port: int) -> str | None:
    """Why the HTTP server could not listen on host:port (None: it can), checked before the
    server starts so a busy port is one line, not a page of uvicorn logs."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot listen on {host!r}: not a known address ({exc}) (hint: --host)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (hint: --port)"
            return f"cannot listen on {host} port {port}: {exc.strerror} (hint: --host, --port)"
    return None


def serve(path: Path, *, transport: str, host: str, port: int, state: str | None) -> None:
    # over stdio the process serves one client: its workflow's servers can stay up between
    # calls (over HTTP a lifespan is per session, so each call starts its own)
    server = build_server(path, state=state, share_servers=transport == "stdio")
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run(transport, host=host, port=port)
