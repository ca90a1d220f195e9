"""What a server offers, to explain a resource read or prompt get it refused.

Servers answer a bad request tersely: the SDK's own MCPServer says "Internal server error"
for a prompt that does not exist, a missing argument and an unknown one alike. When a read
or a get fails, plait lists the server's prompts (resources and resource templates) and
says what is wrong and what there is instead. Only on failure: a request that works costs no
listing. A server that cannot list them (or not in time) gets no such hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from engine.mcp._names import suggest

#: pages of a listing read at most, and names shown at most in a hint
PAGES = 5
SHOWN = 20
#: how long the listings behind one hint may take at most (then no hint): an error is
#: not held up long by a server that is slow to list
WAIT_S = 5.0


async def _listed(client: Any, method: str, field: str) -> list[Any] | None:
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(PAGES):
        try:
            page = await getattr(client, method)(cursor=cursor, cache_mode="bypass")
        except Exception:  # no such capability, or a broken listing: no hint
            return None
        items.extend(getattr(page, field, None) or [])
        cursor = getattr(page, "next_cursor", None)
        if not cursor:
            break
    return items


def _shown(names: list[str]) -> str:
    more = f", ... ({len(names) - SHOWN} more)" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more if names else "none"


async def prompt_problem(client: Any, server: str, name: str, given: Mapping[str, Any],
                         limit: float) -> tuple[str, str] | None:
    """(what is wrong, how to fix it) for a prompt get the server refused, or None when its
    prompt listing does not tell (in `limit` seconds, at most WAIT_S)."""
    prompts = None
    with anyio.move_on_after(min(limit, WAIT_S)):
        prompts = await _listed(client, "list_prompts", "prompts")
    if prompts is None:
        return None
    known = {p.name: p for p in prompts}
    prompt = known.get(name)
    if prompt is None:
        hint = suggest(name, sorted(known)) or ""
        return (f"MCP server '{server}' has no prompt '{name}'",
                f"{hint + ' ' if hint else ''}its prompts: {_shown(sorted(known))}")
    declared = list(prompt.arguments or [])
    wanted = [a.name for a in declared if a.required and a.name not in given]
    unknown = sorted(k for k in given if k not in {a.name for a in declared})
    args = ", ".join(f"{a.name}{' (required)' if a.required else ''}" for a in declared)
    fix = f"its arguments: {args}" if declared else "it takes no arguments"
    problems = []
    if wanted:
        problems.append(f"missing required argument{'s' * (len(wanted) > 1)} "
                        f"{', '.join(wanted)}")
    if unknown:
        problems.append(f"unknown argument{'s' * (len(unknown) > 1)} {', '.join(unknown)}")
    if problems:
        return (f"MCP server '{server}': prompt '{name}': {'; '.join(problems)}",
                f"fix the step's `with:`; {fix}")
    return None


async def resource_hint(client: Any, limit: float) -> str | None:
    """What the server lists as resources and resource templates, for a read it refused
    (None when it lists neither in `limit` seconds, at most WAIT_S)."""
    resources = templates = None
    with anyio.move_on_after(min(limit, WAIT_S)) as scope:
        resources = await _listed(client, "list_resources", "resources")
        templates = await _listed(client, "list_resource_templates", "resource_templates")
    if scope.cancelled_caught or (resources is None and templates is None):
        return None
    parts = [f"its resources: {_shown(sorted(str(r.uri) for r in resources or []))}"]
    if templates:
        parts.append(f"resource templates: {_shown(sorted(t.uri_template for t in templates))}")
    return "check `uri:`; " + "; ".join(parts)
