"""Everything one run shares: the workflow, the expression context, the event listeners, the
record writer and the services (providers, MCP, sandboxes) that steps use."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.executor.events import Event
from engine.executor.records import RecordWriter
from engine.secrets import secret_named

if TYPE_CHECKING:
    from engine.errors import ExpressionError, Location
    from engine.executor.services import Services
    from engine.spec.workflow import Workflow
    from engine.state import RunStore

Listener = Callable[[Event], None]


def public_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The `env` expressions see: the environment minus anything named like a secret
    (declare those under `secrets:` and use `secrets.NAME`)."""
    return {k: v for k, v in environ.items() if not secret_named(k)}


@dataclass
class RunOptions:
    """How to run a workflow. Every field has a sane default."""

    store: RunStore | None = None
    state_location: str | Path | None = None
    record_state: bool = True
    concurrency: int | None = None
    keep_going: bool = False
    resume: str | None = None
    run_id: str | None = None
    allow_weaker_sandbox: bool = False
    listeners: list[Listener] = field(default_factory=list)
    environ: Mapping[str, str] | None = None
    record_dir: Path | None = None
    replay_dir: Path | None = None
    replay_missing: str = "fail"
    parent_run_id: str | None = None
    #: the parent's step (and foreach item) that runs this sub-workflow: a resume of the
    #: parent finds the run it left unfinished by them
    parent_step: str | None = None
    parent_item: int | None = None
    #: resolved paths of the workflows above this one (sub-workflow recursion guard)
    stack: tuple[str, ...] = ()
    from_text: frozenset[str] = frozenset()
    #: stream every LLM step's output as StepChunk events (`plait run --stream`)
    stream: bool = False
    #: MCP runtimes shared by the runs of one process (engine.mcp.shared.SharedRuntimes)
    mcp_pool: Any = None
    services: Services | None = None
    #: an engine.tracing.RunTracer (spans and metrics); shared with sub-workflows
    tracer: Any = None
    #: record prompts, replies and tool arguments/results on spans (off by default)
    trace_content: bool = False
    #: secret values of the runs above this one (a sub-workflow redacts its parent's secrets)
    inherited_secrets: tuple[str, ...] = ()


@dataclass
class RunContext:
    workflow: Workflow
    run_id: str
    inputs: dict[str, Any]
    options: RunOptions
    writer: RecordWriter
    services: Services
    secrets: dict[str, str]
    started_at: float = field(default_factory=time.time)
    #: steps.<id> as expressions see it: output, status, usage, error
    steps_view: dict[str, dict[str, Any]] = field(default_factory=dict)
    expr_context: dict[str, Any] = field(default_factory=dict)
    #: step id -> StepPlan (engine.executor.step): the workflow's, see Workflow.plans
    plans: dict[str, Any] = field(init=False)
    #: step id -> its attempt counter (engine.executor.step), while the step runs
    running: dict[str, Any] = field(default_factory=dict)
    #: a resume's finished items of unfinished foreach steps: step id -> index -> ItemRecord
    restored_items: dict[str, dict[int, Any]] = field(default_factory=dict)
    #: a resume's sub-workflow runs left unfinished, by (step id, foreach item index); read
    #: from the record when a sub-workflow step first asks (engine.executor.handlers)
    left_children: dict[tuple[str, int | None], Any] | None = None
    #: anyone listening to events: when nobody is, events are not even built
    listening: bool = False
    #: a cassette records or replays this run's calls: each step sets `current_step` (the
    #: cassette files an interaction under its step); nothing else reads it
    names_steps: bool = field(init=False)

    def __post_init__(self) -> None:
        self.plans = self.workflow.plans
        self.names_steps = self.services.cassette is not None or any(
            p.kind == "replay" for p in self.workflow.spec.providers.values())
        run_id, started_at = self.run_id, self.started_at
        cassette = self.services.cassette
        if cassette is not None and self.options.parent_run_id is None:  # not a child's
            run_id, started_at = cassette.run_view(run_id, started_at)
        self.expr_context = {
            "inputs": self.inputs,
            "steps": self.steps_view,
            # the services' copy of the run's environment (options.environ or os.environ)
            "env": public_env(self.services.environ),
            "secrets": self.secrets,
            "run": {"id": run_id, "started_at": started_at,
                    "workflow": self.workflow.name},
        }
        self._listeners = list(self.options.listeners)
        if self.options.tracer is not None:
            self._listeners.append(self.options.tracer.listener(self.services.redactor.redact))
        self.listening = bool(self._listeners)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)


def failed_at(workflow: Workflow, path: tuple[str | int, ...],
              exc: ExpressionError) -> tuple[Location, str]:
    """Where in the workflow file the expression that raised `exc` is (its ``${{``, when
    one expression failed), rendering the value at `path`; and that value's field as
    `field.key[0]`, the field named by the path's last part."""
    full = (*path, *exc.subpath)
    source = workflow.source
    where = source.location(full) if exc.offset is None \
        else source.location_in_string(full, exc.offset)
    return where, str(path[-1]) + subpath_text(exc.subpath)


def subpath_text(subpath: tuple[str | int, ...]) -> str:
    """The keys and indexes below a field as a message writes them: `.key[0]`."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in subpath)
