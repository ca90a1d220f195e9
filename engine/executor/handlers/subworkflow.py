"""`workflow:` steps: run another workflow file with its own inputs; its outputs become this
step's output. Recursion is refused."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import StepError
from engine.spec.subworkflows import MAX_DEPTH  # validate refuses the same depth

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.executor.handlers import Attempt, Outcome
    from engine.executor.run import RunControl
    from engine.spec.models import AnyStep

__all__ = ("MAX_DEPTH", "handle")


async def handle(rc: RunContext, step_id: str, step: AnyStep, rendered: dict[str, Any],
                 attempt: Attempt) -> Outcome:
    from engine.executor.handlers import Outcome
    from engine.executor.run import run_workflow
    from engine.spec.loader import load

    target = (rc.workflow.base_dir / str(getattr(step, "workflow", ""))).resolve()
    stack = (*rc.options.stack, str(rc.workflow.path.resolve()))
    if str(target) in stack:
        chain = " -> ".join([*stack, str(target)])
        raise StepError(f"sub-workflow recursion: {chain}", step=step_id,
                        hint="a workflow cannot call itself, directly or through others")
    if len(stack) >= MAX_DEPTH:
        top = Path(stack[0]).parent
        chain = " -> ".join(Path(os.path.relpath(f, top)).as_posix() for f in (*stack, str(target)))
        raise StepError(f"sub-workflows nested deeper than {MAX_DEPTH} levels: {chain}",
                        step=step_id, hint="call fewer levels deep: let a workflow call the "
                        "files below its child itself")
    child = load(target)
    store = rc.writer.store
    options = replace(rc.options, stack=stack, parent_run_id=rc.run_id, resume=None,
                      # recorded beside its parent's run, not in a database beside its file
                      state_location=rc.options.state_location or (
                          store.path if store is not None else None),
                      run_id=None, services=None, from_text=frozenset(), listeners=[],
                      inherited_secrets=(*rc.options.inherited_secrets,
                                         *rc.services.secrets.values()))

    async def once() -> Any:
        result = await _interruptible(lambda control: run_workflow(
            child, rendered.get("with") or {}, control=control, **_fields(options)))
        if not result.ok:  # raised here, inside the attempt: `retry.on: [step]` reruns it
            error = result.error or {}
            where = f" in step {error['step']}" if error.get("step") else ""
            raise StepError(f"sub-workflow {child.name} {result.status}{where}: "
                            f"{error.get('message', result.status)}", step=step_id,
                            hint=error.get("hint"), run=result.run_id)
        return result

    result = await attempt(once)
    return Outcome(output=result.outputs, usage=result.usage, cost=result.cost)


async def _interruptible(run: Callable[[RunControl], Awaitable[Any]]) -> Any:
    """Run the child so that cancelling this step (Ctrl-C, a failure elsewhere, a timeout)
    interrupts it, like a run of its own: its record ends `interrupted`, not left `running`."""
    from engine.executor.run import RunControl

    control = RunControl()
    outcome: list[Any] = []
    finished = anyio.Event()

    async def child() -> None:
        with anyio.CancelScope(shield=True):  # it stops itself when interrupted
            try:
                outcome.append(await run(control))
            except Exception as exc:
                outcome.append(exc)
            finally:
                finished.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(child)
        try:
            await finished.wait()
        except anyio.get_cancelled_exc_class():
            control.interrupt()
            raise
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


def _fields(options: Any) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(options, f.name) for f in fields(options)}
