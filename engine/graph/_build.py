"""Build the step graph and find what is wrong with it; order it for the executor."""

from __future__ import annotations

import difflib
import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx


@dataclass(frozen=True)
class GraphProblem:
    """One thing wrong with the dependencies between steps."""

    code: str  # 'cycle' | 'self_dependency' | 'unknown_step'
    step: str | None
    field: str | None
    message: str
    hint: str | None = None
    related: tuple[str, ...] = ()


def _did_you_mean(name: str, known: Iterable[str]) -> str | None:
    near = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {near[0]!r}?" if near else None


def build(
    deps: Mapping[str, Mapping[str, Iterable[str]]],
) -> tuple[nx.DiGraph, list[GraphProblem]]:
    """The dependency graph of ``deps[step][field] = referenced step ids``.

    Edges go from a dependency to its dependant and carry ``fields``: the sorted tuple of
    the dependant's fields that refer to it. Unknown ids and self references get no edge;
    they, and every cycle, are returned as problems (all of them, in a stable order).
    """
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(sorted(deps))
    problems: list[GraphProblem] = []
    fields_of: dict[tuple[str, str], set[str]] = {}
    for step in sorted(deps):
        for field_name in sorted(deps[step]):
            for ref in sorted(set(deps[step][field_name])):
                if ref == step:
                    problems.append(GraphProblem(
                        "self_dependency", step, field_name,
                        f"step {step!r} refers to itself in {field_name!r}",
                        "a step cannot use its own output; remove the reference or move "
                        "that part into another step", (step,)))
                elif ref not in deps:
                    hint = _did_you_mean(ref, deps)
                    problems.append(GraphProblem(
                        "unknown_step", step, field_name,
                        f"step {step!r} refers to unknown step {ref!r} in {field_name!r}",
                        hint or "check the step ids under 'steps'", (ref,)))
                else:
                    fields_of.setdefault((ref, step), set()).add(field_name)
    graph.add_edges_from((src, dst, {"fields": tuple(sorted(names))})
                         for (src, dst), names in sorted(fields_of.items()))
    problems.extend(_cycle_problems(graph))
    return graph, problems


def _shortest_cycle(graph: nx.DiGraph, start: str, members: set[str]) -> list[str]:
    """The shortest cycle through ``start`` inside one strongly connected component."""
    parent: dict[str, str] = {}
    queue: deque[str] = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for succ in sorted(graph.successors(node)):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if succ in members and succ not in seen:
                seen.add(succ)
                parent[succ] = node
                queue.append(succ)
    return [start, start]  # unreachable for a real component


def _cycle_problems(graph: nx.DiGraph) -> list[GraphProblem]:
    """One problem per strongly connected component (each a cycle, or several tangled)."""
    problems = []
    components = [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    for members in sorted(components, key=min):
        start = min(members)
        cycle = _shortest_cycle(graph, start, members)
        last, first = cycle[-2], cycle[0]
        fields = graph.edges[last, first]["fields"]
        others = sorted(members - set(cycle))
        extra = f" (steps {', '.join(others)} are caught in it too)" if others else ""
        problems.append(GraphProblem(
            "cycle", first, ", ".join(fields),
            f"dependency cycle: {' -> '.join(cycle)}{extra}",
            f"break it, e.g. remove the reference to {last!r} from step {first!r} "
            f"({', '.join(fields)})", tuple(sorted(members))))
    return problems


def _require_dag(graph: nx.DiGraph) -> None:
    if not nx.is_directed_acyclic_graph(graph):
        raise ValueError("the step graph has a cycle; check the problems build() returned "
                         "before ordering it")


def topological_order(graph: nx.DiGraph) -> list[str]:
    """Steps in dependency order; among steps ready at once, lexicographic."""
    _require_dag(graph)
    indegree = {node: graph.in_degree(node) for node in graph}
    ready = [node for node, count in indegree.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for succ in graph.successors(node):
            indegree[succ] -= 1
            if indegree[succ] == 0:
                heapq.heappush(ready, succ)
    return order


def layers(graph: nx.DiGraph) -> list[list[str]]:
    """Steps grouped by depth: every step of a layer only needs steps of earlier layers."""
    _require_dag(graph)
    return [sorted(generation) for generation in nx.topological_generations(graph)]


def critical_path(graph: nx.DiGraph, weight: Mapping[str, float] | None = None) -> list[str]:
    """The chain of dependent steps with the largest total weight (default 1 per step).

    Ties are broken towards the lexicographically smaller step, so the answer is stable.
    """
    order = topological_order(graph)
    if not order:
        return []
    cost: dict[str, float] = {}
    best_pred: dict[str, str | None] = {}
    for node in order:
        preds = sorted(graph.predecessors(node))
        pred = max(preds, key=lambda p: (cost[p], _neg(p)), default=None)
        own = 1.0 if weight is None else float(weight.get(node, 0.0))
        cost[node] = own + (cost[pred] if pred is not None else 0.0)
        best_pred[node] = pred
    end: str | None = max(order, key=lambda n: (cost[n], _neg(n)))
    path: list[str] = []
    while end is not None:
        path.append(end)
        end = best_pred[end]
    return path[::-1]


def _neg(name: str) -> tuple[int, ...]:
    """A key that sorts names in reverse, so ``max`` prefers the smaller name on ties."""
    return (*(-ord(char) for char in name), 1)
