"""`tool:`, `resource:` and `mcp_prompt:` steps, through the run's MCP runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.executor.handlers import Attempt, Outcome

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.spec.models import AnyStep


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    runtime = await rc.services.mcp()
    tool = getattr(step, "tool", None)
    if tool is not None:
        server, name = tool.split(".", 1)
        arguments = rendered.get("with") or {}

        async def call() -> Any:
            return await runtime.call_tool(server, name, arguments, step_id=step_id)
    elif getattr(step, "resource", None) is not None:
        server = step.resource  # type: ignore[union-attr]

        async def call() -> Any:
            return await runtime.read_resource(server, str(rendered["uri"]))
    else:
        server, name = step.mcp_prompt.split(".", 1)  # type: ignore[union-attr]
        arguments = {k: str(v) for k, v in (rendered.get("with") or {}).items()}

        async def call() -> Any:
            return await runtime.get_prompt(server, name, arguments)

    result = await attempt(call)
    if tool is not None:
        return Outcome(output=result.value, audit=[{
            "tool": tool, "decision": "allowed", "duration_s": round(result.duration_s, 6),
            "is_error": result.is_error}])
    return Outcome(output=result)
