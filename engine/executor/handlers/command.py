"""`run:` steps: a command under the step's policy and sandbox."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.executor.handlers import Attempt, Outcome
from engine.jsontext import as_text

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.policy import Policy
    from engine.sandbox.base import Runner
    from engine.spec.models import AnyStep


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    from engine.commands import run_command

    services = rc.services
    name = step.policy or rc.workflow.spec.defaults.policy
    policy = services.policy(name)
    runner = services.runner(name)
    base = rc.workflow.base_dir
    run = _words(rendered["run"])
    cwd = Path(as_text(rendered["cwd"])) if rendered.get("cwd") else base
    if not cwd.is_absolute():
        cwd = base / cwd
    env = {str(k): as_text(v) for k, v in (rendered.get("env") or {}).items()}
    stdin = rendered.get("stdin")
    #: one entry per command run (or refused), every attempt's
    audits: list[dict[str, Any]] = []

    async def once() -> Any:
        began = time.monotonic()
        try:
            return await run_command(run, policy=policy, runner=runner, env=env,
                                     cwd=cwd, stdin=None if stdin is None else as_text(stdin),
                                     timeout=policy.max_execution_time, step_id=step_id)
        except Exception as exc:
            audit = getattr(exc, "audit", None)
            if audit is not None:
                audits.append(asdict(audit))
            raise
        except anyio.get_cancelled_exc_class():
            # cut off from outside: when by the step's timeout, this entry reaches the record
            # (the command ran, and the runner killed it); when the run stopped, it does not
            audits.append(_cut_off(policy, runner, step_id, time.monotonic() - began))
            raise

    try:
        outcome = await attempt(once)
    except Exception as exc:
        # the failed step's record lists the commands of all its attempts, not the last one's
        exc.audit = list(audits)  # type: ignore[attr-defined]
        raise
    audits.append(asdict(outcome.audit))
    result = outcome.result
    output = {"stdout": result.stdout, "stderr": result.stderr, "exit_code": result.exit_code,
              "files_written": result.files_written, "truncated": result.truncated}
    return Outcome(output=output, audit=audits)


def _cut_off(policy: Policy, runner: Runner, step_id: str, duration: float) -> dict[str, Any]:
    """The audit entry of a command the step's timeout cut off (its exit code and memory use
    are unknown: it was killed, not waited for)."""
    from engine.commands import AuditRecord

    return asdict(AuditRecord(policy=policy.name, level=policy.level, runner=runner.name,
                              decision="allowed", duration_s=duration,
                              weaker=bool(getattr(runner, "weaker", False)), step_id=step_id,
                              killed_by="timeout"))


def _words(run: Any) -> str | list[str]:
    """The command as rendered, in text: a whole `${{ }}` keeps its value's type, so
    `[head, -n, "${{ inputs.n }}"]` holds the integer 3, which no process can be given."""
    return [as_text(word) for word in run] if isinstance(run, list) else as_text(run)
