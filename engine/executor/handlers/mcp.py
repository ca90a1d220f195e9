"""`tool:`, `resource:` and `mcp_prompt:` steps, through the run's MCP runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from engine.executor.agent_tools import tool_audit
from engine.executor.handlers import Attempt, Outcome

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.spec.models import AnyStep


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    runtime = await rc.services.mcp()
    tool = getattr(step, "tool", None)
    if tool is not None:
        return await _tool(rc, step_id, tool, rendered.get("with") or {}, attempt)
    if getattr(step, "resource", None) is not None:
        server = step.resource  # type: ignore[union-attr]

        async def call() -> Any:
            return await runtime.read_resource(server, str(rendered["uri"]))
    else:
        server, name = step.mcp_prompt.split(".", 1)  # type: ignore[union-attr]
        arguments = {k: str(v) for k, v in (rendered.get("with") or {}).items()}

        async def call() -> Any:
            return await runtime.get_prompt(server, name, arguments)

    return Outcome(output=await attempt(call))


async def _tool(rc: RunContext, step_id: str, tool: str, arguments: Any,
                attempt: Attempt) -> Outcome:
    """A `tool:` step: one audit entry per call made (or refused), every attempt's."""
    runtime = await rc.services.mcp()
    server, name = tool.split(".", 1)
    audits: list[dict[str, Any]] = []

    async def call() -> Any:
        try:
            result = await runtime.call_tool(server, name, arguments, step_id=step_id)
        except Exception as exc:
            audits.append(tool_audit(tool, error=exc))
            raise
        except anyio.get_cancelled_exc_class():
            # cut off from outside: when by the step's timeout, this entry reaches the
            # record; when the run stopped, it does not
            audits.append(tool_audit(tool, cut_off=True))
            raise
        audits.append(tool_audit(tool, result=result))
        return result

    try:
        result = await attempt(call)
    except Exception as exc:
        # the failed step's record lists the calls of all its attempts, not the last one's
        exc.audit = list(audits)  # type: ignore[attr-defined]
        raise
    return Outcome(output=result.value, audit=audits)
