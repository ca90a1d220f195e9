"""Build the step graph and find what is wrong with it; order it for the executor."""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


@dataclass
class _Adjacency:
    """The dependency edges as plain dicts: enough to find every problem without networkx,
    whose import alone costs more than `plait validate` may take."""

    nodes: list[str]
    edges: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    succ: dict[str, list[str]] = field(default_factory=dict)
    pred: dict[str, list[str]] = field(default_factory=dict)

    def successors(self, node: str) -> list[str]:
        return self.succ.get(node, [])


def build(
    deps: Mapping[str, Mapping[str, Iterable[str]]],
) -> tuple[nx.DiGraph, list[GraphProblem]]:
    """The dependency graph of ``deps[step][field] = referenced step ids``.

    Edges go from a dependency to its dependant and carry ``fields``: the sorted tuple of
    the dependant's fields that refer to it. Unknown ids and self references get no edge;
    they, and every cycle, are returned as problems (all of them, in a stable order).
    """
    import networkx as nx

    adjacency, problems = _check(deps)
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(adjacency.nodes)
    graph.add_edges_from((src, dst, data) for (src, dst), data in adjacency.edges.items())
    return graph, problems


#: (predecessors, successors) of every step, each list sorted: what the executor walks
Edges = tuple[dict[str, list[str]], dict[str, list[str]]]


def check(deps: Mapping[str, Mapping[str, Iterable[str]]]) -> list[GraphProblem]:
    """Every problem `build` would report, without building (or importing) networkx."""
    return _check(deps)[1]


def check_edges(deps: Mapping[str, Mapping[str, Iterable[str]]],
                ) -> tuple[Edges, list[GraphProblem]]:
    """`check`, and the plain edge lists it found on the way (the loader keeps them, so a
    run does not work them out again)."""
    graph, problems = _check(deps)
    preds = {node: graph.pred.get(node, []) for node in deps}
    succs = {node: graph.succ.get(node, []) for node in deps}
    return (preds, succs), problems


def _check(deps: Mapping[str, Mapping[str, Iterable[str]]],
           ) -> tuple[_Adjacency, list[GraphProblem]]:
    graph = _Adjacency(sorted(deps))
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
    for (src, dst), names in sorted(fields_of.items()):
        graph.edges[src, dst] = {"fields": tuple(sorted(names))}
        graph.succ.setdefault(src, []).append(dst)
        graph.pred.setdefault(dst, []).append(src)
    problems.extend(_cycle_problems(graph))
    return graph, problems


#: at most this many cycles are reported; a graph with more is reported as such
MAX_CYCLES = 50
#: a cycle longer than this is shown with its middle elided
_SHOWN = 16


def _show_cycle(cycle: list[str]) -> str:
    if len(cycle) <= _SHOWN:
        return " -> ".join(cycle)
    head, tail = cycle[: _SHOWN // 2], cycle[-_SHOWN // 2:]
    return f"{' -> '.join(head)} -> ... ({len(cycle) - _SHOWN} more) -> {' -> '.join(tail)}"


def _cycle_problem(graph: _Adjacency, loop: list[str]) -> GraphProblem:
    """``loop`` lists the cycle's steps once each, in edge order, ending with the step whose
    back edge closes it: the edge the hint suggests removing."""
    cycle = [*loop, loop[0]]
    last, first = cycle[-2], cycle[0]
    fields = graph.edges[last, first]["fields"]
    return GraphProblem(
        "cycle", first, ", ".join(fields), f"dependency cycle: {_show_cycle(cycle)}",
        f"break it, e.g. remove the reference to {last!r} from step {first!r} "
        f"({', '.join(fields)})", tuple(sorted(loop)))


def _back_edge_cycles(graph: _Adjacency, component: dict[str, int]) -> list[list[str]]:
    """One cycle per back edge of a depth-first search (deterministic: sorted order).

    Every cycle contains at least one back edge, and each back edge closes a different
    cycle, so removing the reported edges leaves no cycle at all. One pass: O(V + E).
    """
    def succs(node: str) -> list[str]:
        return sorted(s for s in graph.successors(node) if component.get(s) == component[node])

    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(component):
        if root in state:
            continue
        path, index, state[root] = [root], {root: 0}, 1
        stack = [(root, iter(succs(root)))]
        while stack:
            node, pending = stack[-1]
            for succ in pending:
                if state.get(succ) == 1:
                    cycles.append(path[index[succ]:])
                elif succ not in state:
                    state[succ], index[succ] = 1, len(path)
                    path.append(succ)
                    stack.append((succ, iter(succs(succ))))
                    break
            else:
                stack.pop()
                path.pop()
                del index[node]
                state[node] = 2
    return cycles


def _strongly_connected(graph: _Adjacency) -> list[list[str]]:
    """Tarjan's algorithm, iterative (a 5,000-step chain must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in graph.nodes:
        if root in index:
            continue
        work = [(root, iter(graph.successors(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, succs = work[-1]
            for succ in succs:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph.successors(succ))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    members = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        members.append(member)
                        if member == node:
                            break
                    components.append(members)
    return components


def _cycle_problems(graph: _Adjacency) -> list[GraphProblem]:
    """Each distinct cycle once (up to MAX_CYCLES, then one summary)."""
    component = {node: i for i, members in enumerate(_strongly_connected(graph))
                 if len(members) > 1 for node in members}
    if not component:
        return []
    cycles = _back_edge_cycles(graph, component)
    problems = [_cycle_problem(graph, loop) for loop in cycles[:MAX_CYCLES]]
    if len(cycles) > MAX_CYCLES:
        rest = sorted({node for loop in cycles[MAX_CYCLES:] for node in loop})
        problems.append(GraphProblem(
            "cycle", rest[0], None,
            f"{len(cycles) - MAX_CYCLES} more dependency cycles, among {len(rest)} steps: "
            f"{', '.join(rest[:10])}{', ...' if len(rest) > 10 else ''}",
            "break the cycles reported above first", tuple(rest)))
    return problems


def _require_dag(graph: nx.DiGraph) -> None:
    import networkx as nx

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
    import networkx as nx

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
