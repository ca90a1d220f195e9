"""A loaded, checked workflow: the models, the compiled expressions and the graph."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.expr import Compiled
from engine.spec.models import STEP_KINDS, AnyStep, WorkflowSpec, step_kind
from engine.spec.yaml_source import Source

if TYPE_CHECKING:
    import networkx as nx

    from engine.executor.result import RunResult


@dataclass
class Workflow:
    spec: WorkflowSpec
    path: Path
    base_dir: Path
    source: Source
    spec_hash: str
    #: step id -> field -> step ids it references
    deps: dict[str, dict[str, set[str]]]
    #: step id -> field -> compiled expression (only fields that were given)
    steps: dict[str, dict[str, Compiled]]
    outputs: dict[str, Compiled]
    providers: dict[str, Compiled]
    servers: dict[str, Compiled]
    _kinds: dict[str, str] = field(default_factory=dict, repr=False)
    #: step id -> StepPlan (engine.executor.step): what running the step needs, worked out
    #: once per workflow (every run of it, and its sub-workflow runs, share them)
    plans: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _graph: nx.DiGraph | None = field(default=None, repr=False)
    _edges: tuple[dict[str, list[str]], dict[str, list[str]]] | None = field(default=None,
                                                                              repr=False)
    _counts: dict[str, int] | None = field(default=None, repr=False, compare=False)
    _kind_set: frozenset[str] | None = field(default=None, repr=False, compare=False)

    @property
    def edges(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(predecessors, successors) of every step, as plain lists: what the scheduler
        walks. Cheaper to build than the networkx graph, which runs never need."""
        if self._edges is None:  # the loader hands over the check's; else work them out
            from engine.graph import check_edges

            self._edges = check_edges(self.deps)[0]
        return self._edges

    @property
    def dependency_counts(self) -> dict[str, int]:
        """Step id -> how many steps it depends on, in step order (worked out once: every
        run starts from a copy)."""
        if self._counts is None:
            self._counts = {sid: len(p) for sid, p in self.edges[0].items()}
        return self._counts

    @property
    def width(self) -> int:
        """The most steps that can be ready at once: the widest layer of the DAG."""
        succs = self.edges[1]
        remaining = dict(self.dependency_counts)
        layer = [sid for sid, n in remaining.items() if n == 0]
        widest = 0
        while layer:
            widest = max(widest, len(layer))
            following = []
            for sid in layer:
                for succ in succs[sid]:
                    remaining[succ] -= 1
                    if remaining[succ] == 0:
                        following.append(succ)
            layer = following
        return widest

    @property
    def graph(self) -> nx.DiGraph:
        """The step DAG (networkx), built on first use: `plait validate` never needs it."""
        if self._graph is None:
            from engine.graph import build

            self._graph, _ = build(self.deps)
        return self._graph

    @property
    def name(self) -> str:
        return self.spec.name

    def step(self, step_id: str) -> AnyStep:
        return self.spec.steps[step_id]

    def kind(self, step_id: str) -> str:
        return self._kind_map()[step_id]

    def kinds(self) -> dict[str, str]:
        """Step id -> kind, in step order (a copy)."""
        known = self._kind_map()
        return {sid: known[sid] for sid in self.spec.steps}

    def has_kind(self, kind: str) -> bool:
        """Is any step of this kind (`llm`, `run`, ...)?"""
        if self._kind_set is None:
            self._kind_set = frozenset(self._kind_map().values())
        return kind in self._kind_set

    def _kind_map(self) -> dict[str, str]:
        """The loader's step kinds, or worked out from the spec (a Workflow built by hand)."""
        if not self._kinds:
            self._kinds = {sid: step_kind(s) or "?" for sid, s in self.spec.steps.items()}
        return self._kinds

    async def run(self, inputs: Mapping[str, Any] | None = None, **options: Any) -> RunResult:
        """Run the workflow (see engine.executor.run_workflow for the options)."""
        from engine.executor import run_workflow

        return await run_workflow(self, inputs or {}, **options)


__all__ = ("STEP_KINDS", "Workflow")
