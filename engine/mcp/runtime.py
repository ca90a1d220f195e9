"""MCPRuntime: the MCP side of one run (servers, pool, registry, executor) behind one object.

    async with MCPRuntime(spec.mcp_servers, base_dir=workflow_dir) as mcp:
        result = await mcp.call_tool("files", "read_file", {"path": "a.txt"})
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.errors import MissingDependencyError, ToolError, UnknownToolError
from engine.mcp._names import unknown_server
from engine.mcp._settings import MCPSettings
from engine.mcp.executor import RequestValidator, ToolExecutor, Validator
from engine.mcp.manager import MCPServerManager
from engine.mcp.pool import MCPConnectionManager
from engine.mcp.registry import ToolInfo, ToolRegistry
from engine.mcp.results import ToolResult
from engine.sandbox.base import Runner
from engine.secrets import Redactor
from engine.spec.models import MCPServerSpec, PolicySpec

#: spec given to in-process servers that have no entry in `servers`
IN_PROCESS_SPEC = MCPServerSpec(command="in-process")


def require_sdk() -> None:
    """Refuse, naming the extra to install, when the `mcp` SDK is missing: checked before a
    run starts, so its steps do not each fail with a bare "No module named 'mcp'" and a hint
    to run the server by hand (the server is fine; the client is what is missing)."""
    try:
        import mcp  # noqa: F401
        import mcp_types  # noqa: F401
    except ImportError:
        raise MissingDependencyError("mcp", "mcp") from None


@dataclass(frozen=True)
class ToolDefinition:
    """A tool as an agent step offers it to a model."""

    name: str
    description: str
    input_schema: dict[str, Any]


class MCPRuntime:
    """Per-run facade used by the executor and the CLI."""

    def __init__(self, servers: Mapping[str, MCPServerSpec], *, base_dir: Path,
                 runner_for: Callable[[str, MCPServerSpec], Runner | None] | None = None,
                 validator: Validator | None = None,
                 request_validator: RequestValidator | None = None,
                 policies: Mapping[str, PolicySpec] | None = None,
                 default_policy: str | None = None,
                 in_process: Mapping[str, Any] | None = None,
                 settings: MCPSettings | None = None,
                 redactor: Redactor | None = None) -> None:
        self.specs = dict(servers)
        self._policies = dict(policies or {})
        self._default_policy = default_policy
        self.manager = MCPServerManager(base_dir=base_dir, runner_for=runner_for,
                                        settings=settings, redactor=redactor)
        for name, spec in self.specs.items():
            self.manager.register(name, spec, target=(in_process or {}).get(name))
        for name, target in (in_process or {}).items():
            if name not in self.specs:
                self.manager.register(name, IN_PROCESS_SPEC, target=target)
        self.pool = MCPConnectionManager(self.manager)
        self.registry = ToolRegistry(self.pool, policy_level=self.policy_level)
        self.manager.set_list_changed(self.registry.invalidate)
        self.executor = ToolExecutor(self.registry, validator=validator,
                                     request_validator=request_validator)

    def policy_level(self, server: str) -> str:
        name = self.manager.spec(server).policy or self._default_policy
        if name and name in self._policies:
            return self._policies[name].level
        return os.environ.get("SECURITY_DEFAULT_LEVEL", "medium")

    async def __aenter__(self) -> MCPRuntime:
        await self.manager.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.manager.__aexit__(exc_type, exc, tb)

    def _known(self, server: str) -> None:
        if server not in self.manager.names():
            raise unknown_server(server, self.manager.names())

    async def call_tool(self, server: str, tool: str, arguments: Mapping[str, Any] | None = None,
                        *, timeout: float | None = None, step_id: str | None = None,
                        check: Validator | None = None) -> ToolResult:
        """`check`: the call's own policy check, on top of the server's (a step's
        `policy:`); see ToolExecutor.call."""
        self._known(server)
        return await self.executor.call(server, tool, arguments, timeout=timeout,
                                        step_id=step_id, check=check)

    async def call(self, qualified: str, arguments: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> ToolResult:
        """Call by `server.tool` name."""
        server, _, tool = qualified.partition(".")
        if not tool:
            raise ToolError(f"'{qualified}' is not a `server.tool` name",
                            hint="write it as server.tool, e.g. files.read_file")
        return await self.call_tool(server, tool, arguments, **kwargs)

    async def list_tools(self, server: str | None = None) -> list[ToolInfo]:
        names = [server] if server is not None else self.manager.names()
        for name in names:
            self._known(name)
            await self.registry.ensure(name)
        return self.registry.list(server=server)

    async def read_resource(self, server: str, uri: str, *, step_id: str | None = None,
                            check: RequestValidator | None = None) -> list[dict[str, Any]]:
        self._known(server)
        return await self.executor.read_resource(server, uri, step_id=step_id, check=check)

    async def get_prompt(self, server: str, name: str,
                         arguments: Mapping[str, str] | None = None, *,
                         step_id: str | None = None,
                         check: RequestValidator | None = None) -> dict[str, Any]:
        self._known(server)
        return await self.executor.get_prompt(server, name, arguments, step_id=step_id,
                                              check=check)

    async def tool_definitions(self, patterns: list[str]) -> list[ToolDefinition]:
        """Expand `server.tool` / `server.*` patterns into the tools an agent may call."""
        out: dict[str, ToolDefinition] = {}
        for pattern in patterns:
            server, _, tool_glob = pattern.partition(".")
            if not tool_glob:
                raise ToolError(f"tool pattern '{pattern}' is not `server.tool` or `server.*`",
                                hint="e.g. files.* or files.read_file")
            self._known(server)
            tools = await self.registry.ensure(server)
            matched = [t for name, t in tools.items() if fnmatch.fnmatchcase(name, tool_glob)]
            if not matched and not any(c in tool_glob for c in "*?["):
                await self.registry.get(server, tool_glob)  # raises with a did-you-mean
            if not matched:  # a typo in a glob must not leave the model without its tools
                raise UnknownToolError(
                    f"tool pattern '{pattern}' matches no tool of MCP server '{server}'",
                    hint=f"its tools: {', '.join(sorted(tools)) or 'none'} (a tool hidden "
                         "by `tools.allow`/`tools.deny` is not matched)", server=server)
            for info in matched:
                await self.registry.get(server, info.name)  # refuses flagged tools if strict
                out[info.qualified_name] = ToolDefinition(
                    name=info.qualified_name, description=info.description,
                    input_schema=info.input_schema)
        return list(out.values())

    def stats(self) -> dict[str, Any]:
        return {"servers": {k: v.to_dict() for k, v in self.pool.stats().items()},
                "tools": self.executor.stats(),
                "flagged": dict(self.registry.flagged)}
