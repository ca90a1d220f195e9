"""`run:` steps: a command under the step's policy and sandbox."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.executor.handlers import Attempt, Outcome

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.spec.models import AnyStep


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    from engine.commands import run_command

    services = rc.services
    name = step.policy or rc.workflow.spec.defaults.policy
    policy = services.policy(name)
    runner = services.runner(name)
    base = rc.workflow.base_dir
    cwd = Path(rendered["cwd"]) if rendered.get("cwd") else base
    if not cwd.is_absolute():
        cwd = base / cwd
    env = {str(k): str(v) for k, v in (rendered.get("env") or {}).items()}
    stdin = rendered.get("stdin")
    audits: list[dict[str, Any]] = []

    async def once() -> Any:
        try:
            return await run_command(rendered["run"], policy=policy, runner=runner, env=env,
                                     cwd=cwd, stdin=None if stdin is None else str(stdin),
                                     timeout=policy.max_execution_time, step_id=step_id)
        except Exception as exc:
            audit = getattr(exc, "audit", None)
            if audit is not None:
                audits.append(asdict(audit))
            raise

    outcome = await attempt(once)
    audits.append(asdict(outcome.audit))
    result = outcome.result
    output = {"stdout": result.stdout, "stderr": result.stderr, "exit_code": result.exit_code,
              "files_written": result.files_written, "truncated": result.truncated}
    return Outcome(output=output, audit=audits)
