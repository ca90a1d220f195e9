"""ToolRegistry: the tools of every server, discovered, filtered, described and checked.

Names are namespaced `server.tool`. `tools.allow`/`tools.deny` globs of the server's spec
decide what is exposed; `tool_metadata` adds category, tags, rate limit and timeout. Listings
are paginated and refreshed when a server says its list changed (or restarts). A tool whose
description or input schema changes between two listings in one run is flagged: a possible
rug pull, refused outright when the server's policy level is high or critical.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.errors import PolicyViolation, ToolError, UnknownToolError
from engine.mcp._names import unknown_tool
from engine.mcp.pool import MCPConnectionManager
from engine.spec.models import MCPServerSpec
from engine.spec.tool_filters import hidden_by as filter_hidden_by

log = logging.getLogger("plait.mcp")
MAX_PAGES = 100
STRICT_LEVELS = ("high", "critical")


@dataclass(frozen=True)
class ToolInfo:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: dict[str, Any] = field(default_factory=dict)
    category: str | None = None
    tags: tuple[str, ...] = ()
    rate_limit: int | None = None
    timeout: float | None = None
    fingerprint: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.server}.{self.name}"

    @property
    def read_only(self) -> bool:
        """Safe to run twice: the server marks it read-only or idempotent."""
        return bool(self.annotations.get("readOnlyHint") or
                    self.annotations.get("idempotentHint"))


def _fingerprint(description: str, schema: Mapping[str, Any]) -> str:
    blob = json.dumps({"d": description, "s": schema}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def exposed(spec: MCPServerSpec, tool: str, server: str | None = None) -> bool:
    """Whether `tool` (of `server`) passes the server's allow/deny globs."""
    return hidden_by(spec, tool, server) is None


def hidden_by(spec: MCPServerSpec, tool: str, server: str | None = None) -> str | None:
    """The filter that hides `tool` (None: it is exposed); see engine.spec.tool_filters."""
    return filter_hidden_by(tool, spec.tools.allow, spec.tools.deny, server=server)


class ToolRegistry:
    """Discovers and describes the tools of the servers behind a connection pool."""

    def __init__(self, pool: MCPConnectionManager, *,
                 policy_level: Callable[[str], str] | None = None) -> None:
        self.pool = pool
        self._policy_level = policy_level or (lambda _server: "medium")
        self._tools: dict[str, dict[str, ToolInfo]] = {}
        self._hidden: dict[str, set[str]] = {}
        self._seen: dict[str, str] = {}
        self._stale: set[str] = set()
        self._locks: dict[str, anyio.Lock] = {}
        self._validators: dict[str, Any] = {}
        #: qualified tool name -> why it was flagged
        self.flagged: dict[str, str] = {}

    # ------------------------------------------------------------ discovery

    def invalidate(self, server: str) -> None:
        """The server's tool list changed: re-list it before the next use."""
        self._stale.add(server)

    async def discover(self, server: str) -> list[ToolInfo]:
        """List the server's tools now (every page), apply filters and metadata."""
        spec = self.pool.manager.spec(server)
        raw = await self._list_all(server)
        tools: dict[str, ToolInfo] = {}
        hidden: set[str] = set()
        for tool in raw:
            if not exposed(spec, tool.name, server):
                hidden.add(tool.name)
                continue
            info = self._info(server, spec, tool)
            self._check_change(info)
            tools[info.name] = info
        self._tools[server] = tools
        self._hidden[server] = hidden
        self._stale.discard(server)
        return list(tools.values())

    async def _list_all(self, server: str) -> list[Any]:
        out: list[Any] = []
        cursor: str | None = None
        async with self.pool.session(server) as client:
            for _ in range(MAX_PAGES):
                try:
                    page = await client.list_tools(cursor=cursor, cache_mode="bypass")
                except Exception:
                    too_large = self.pool.manager.too_large(server, client)
                    if too_large is not None:
                        raise ToolError(f"listing the tools failed: {too_large.message}",
                                        hint=too_large.hint, server=server) from None
                    raise
                out.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return out
        raise ToolError(f"MCP server '{server}' returned more than {MAX_PAGES} pages of tools",
                        hint="the server's pagination never ends; report it upstream",
                        server=server)

    def _info(self, server: str, spec: MCPServerSpec, tool: Any) -> ToolInfo:
        meta = spec.tool_metadata.get(tool.name)
        schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
        annotations = (tool.annotations.model_dump(by_alias=True, exclude_none=True)
                       if tool.annotations is not None else {})
        description = tool.description or ""
        return ToolInfo(
            server=server, name=tool.name, description=description, input_schema=schema,
            annotations=annotations, category=meta.category if meta else None,
            tags=tuple(meta.tags) if meta else (),
            rate_limit=meta.rate_limit if meta else None,
            timeout=meta.timeout if meta else None,
            fingerprint=_fingerprint(description, schema))

    def _check_change(self, info: ToolInfo) -> None:
        name = info.qualified_name
        before = self._seen.setdefault(name, info.fingerprint)
        if before != info.fingerprint and name not in self.flagged:
            self.flagged[name] = ("its description or input schema changed between two "
                                  "listings in this run")
            log.warning("MCP tool %s changed its description or schema during the run "
                        "(possible rug pull)", name)

    async def ensure(self, server: str) -> dict[str, ToolInfo]:
        """The server's tools, listed once and again after a list-changed notification."""
        lock = self._locks.setdefault(server, anyio.Lock())
        async with lock:
            if server not in self._tools or server in self._stale:
                await self.discover(server)
        return self._tools[server]

    async def get(self, server: str, tool: str) -> ToolInfo:
        """The tool, or a ToolError with a "did you mean"; PolicyViolation for a flagged tool
        under a high or critical policy."""
        tools = await self.ensure(server)
        info = tools.get(tool)
        if info is None:
            if tool in self._hidden.get(server, set()):
                spec = self.pool.manager.spec(server)
                by = hidden_by(spec, tool, server) or "`tools.allow`/`tools.deny`"
                fix = ("remove that pattern from `tools.deny`" if by.startswith("`tools.deny")
                       else f"add '{tool}' to `tools.allow`")
                raise UnknownToolError(f"tool '{server}.{tool}' is filtered out by the "
                                       f"server's {by}", hint=fix, server=server, tool=tool)
            raise unknown_tool(server, tool, list(tools))
        reason = self.flagged.get(info.qualified_name)
        level = self._policy_level(server)
        if reason and level in STRICT_LEVELS:
            raise PolicyViolation(
                f"tool '{info.qualified_name}' refused: {reason} (policy level {level})",
                hint="a server that rewrites its tools mid-run may be compromised; check it, "
                     "then start a new run", server=server, tool=tool)
        return info

    # ------------------------------------------------------------ queries

    def list(self, category: str | None = None, server: str | None = None) -> list[ToolInfo]:
        """Tools discovered so far, optionally of one category and/or one server."""
        out: list[ToolInfo] = []
        for name, tools in self._tools.items():
            if server is not None and name != server:
                continue
            out.extend(t for t in tools.values() if category is None or t.category == category)
        return sorted(out, key=lambda t: t.qualified_name)

    def search(self, query: str) -> builtins.list[ToolInfo]:
        """Discovered tools ranked by how well name, description, category and tags match."""
        words = [w for w in query.lower().split() if w]
        scored = []
        for info in self.list():
            score = _score(info, query.lower().strip(), words)
            if score > 0:
                scored.append((-score, info.qualified_name, info))
        return [info for _, _, info in sorted(scored)]

    def validate_arguments(self, info: ToolInfo, arguments: Mapping[str, Any]) -> None:
        """Check arguments against the tool's input schema, before any call."""
        import jsonschema

        validator = self._validators.get(info.fingerprint)
        if validator is None:
            cls = jsonschema.validators.validator_for(info.input_schema)
            try:
                cls.check_schema(info.input_schema)
            except jsonschema.SchemaError as exc:
                raise ToolError(f"tool '{info.qualified_name}' publishes an invalid input "
                                f"schema: {exc.message}", server=info.server,
                                tool=info.name) from None
            validator = cls(info.input_schema)
            self._validators[info.fingerprint] = validator
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(arguments)))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
            raise ToolError(
                f"arguments of '{info.qualified_name}' do not match its input schema at "
                f"{where}: {error.message}",
                hint=f"expected: {json.dumps(info.input_schema.get('properties', {}))[:300]}",
                server=info.server, tool=info.name)


def _score(info: ToolInfo, query: str, words: list[str]) -> int:
    name = info.name.lower()
    qualified = info.qualified_name.lower()
    description = info.description.lower()
    extra = " ".join([info.category or "", *info.tags]).lower()
    score = 0
    if query in (name, qualified):
        score += 100
    elif query and query in qualified:
        score += 40
    for word in words:
        if word in name:
            score += 10
        if word in description:
            score += 3
        if word in extra:
            score += 5
    return score
