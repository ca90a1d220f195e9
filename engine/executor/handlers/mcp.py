"""`tool:`, `resource:` and `mcp_prompt:` steps, through the run's MCP runtime. A request must
pass its server's policy and the step's own `policy:`, if it has one. Every request is
audited: one entry per request made (or refused), every attempt's, the failed step's too."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from engine.executor.agent_tools import mcp_audit, tool_audit
from engine.executor.handlers import Attempt, Outcome
from engine.jsontext import as_text

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
        check_tool = rc.services.step_tool_check(step.policy)

        async def call_tool() -> Any:
            return await runtime.call_tool(server, name, arguments, step_id=step_id,
                                           check=check_tool)

        return await _audited(call_tool, attempt, lambda **how: tool_audit(tool, **how),
                              value=lambda result: result.value)
    check = rc.services.step_request_check(step.policy)
    if getattr(step, "resource", None) is not None:
        server = step.resource  # type: ignore[union-attr]
        uri = str(rendered["uri"])
        subject: dict[str, Any] = {"resource": uri, "server": server}

        async def call() -> Any:
            return await runtime.read_resource(server, uri, step_id=step_id, check=check)
    else:
        qualified = step.mcp_prompt  # type: ignore[union-attr]
        server, name = qualified.split(".", 1)
        given = {k: as_text(v) for k, v in (rendered.get("with") or {}).items()}
        # a prompt's arguments say what was asked (a tool's are left out: they are its input)
        subject = {"prompt": qualified, "server": server, "arguments": given}

        async def call() -> Any:
            return await runtime.get_prompt(server, name, given, step_id=step_id,
                                            check=check)

    return await _audited(call, attempt,
                          lambda result=None, **how: mcp_audit(subject, **how))


async def _audited(call: Callable[[], Awaitable[Any]], attempt: Attempt,
                   entry: Callable[..., dict[str, Any]],
                   value: Callable[[Any], Any] = lambda result: result) -> Outcome:
    """`call` under the step's retries, one audit entry per request made (or refused):
    ``entry(result=..., error=..., cut_off=...)`` makes it; `value` is the step's output."""
    audits: list[dict[str, Any]] = []

    async def audited() -> Any:
        try:
            result = await call()
        except Exception as exc:
            audits.append(entry(error=exc))
            raise
        except anyio.get_cancelled_exc_class():
            # cut off from outside: when by the step's timeout, this entry reaches the
            # record; when the run stopped, it does not
            audits.append(entry(cut_off=True))
            raise
        audits.append(entry(result=result))
        return result

    try:
        result = await attempt(audited)
    except Exception as exc:
        # the failed step's record lists the requests of all its attempts, not the last one's
        exc.audit = list(audits)  # type: ignore[attr-defined]
        raise
    return Outcome(output=value(result), audit=audits)
