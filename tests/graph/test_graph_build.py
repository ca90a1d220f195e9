"""Building the step graph: edges, problems, orders, layers, critical path."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest

import engine.graph
from engine.expr import compile_value
from engine.graph import GraphProblem, build, critical_path, layers, topological_order

DIGEST = {
    "ls": {},
    "read": {"foreach": ["ls"]},
    "summary": {"prompt": ["read"]},
    "investigate": {"if": ["summary"]},
    "archive": {"needs": ["summary"]},
}


def test_public_surface_is_locked() -> None:
    assert engine.graph.__all__ == (
        "Edges", "GraphProblem", "build", "check", "check_edges", "critical_path", "layers",
        "render_dot", "render_json", "render_mermaid", "topological_order")


def test_the_loader_keeps_the_edges_the_check_found() -> None:
    """The executor walks the lists the load-time check built: the same as working them out
    from the references again, in step order, each list sorted."""
    import dataclasses

    from engine.spec.loader import load_text

    text = ("version: 1\nname: e\nsteps:\n  z:\n    run: echo z\n"
            "  b:\n    run: \"echo ${{ steps.z.output }} ${{ steps.a.status }}\"\n"
            "    needs: [z]\n  a:\n    run: echo a\n    needs: [z]\n")
    wf = load_text(text, "e.yaml")
    assert wf._edges is not None  # from the check, not worked out at run time
    again = dataclasses.replace(wf, _edges=None).edges
    assert wf.edges == again
    preds, succs = wf.edges
    assert list(preds) == ["z", "b", "a"]
    assert preds == {"z": [], "b": ["a", "z"], "a": ["z"]}
    assert succs == {"z": ["a", "b"], "b": [], "a": ["b"]}
    (_preds, _succs), problems = engine.graph.check_edges(wf.deps)
    assert problems == []


def test_check_finds_what_build_finds_without_networkx() -> None:
    """check() is the validate path: same problems, and networkx is never imported."""
    import subprocess
    import sys

    deps = {"a": {"needs": ["c"]}, "b": {"prompt": ["a", "zz"]}, "c": {"if": ["b", "c"]}}
    assert engine.graph.check(deps) == engine.graph.build(deps)[1]
    code = ("import sys; from engine.graph import check; "
            "p = check({'a': {'needs': ['b']}, 'b': {'needs': ['a']}}); "
            "print(len(p), 'networkx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["1", "False"]


def test_edges_go_from_dependency_to_dependant_with_fields() -> None:
    graph, problems = build({"a": {}, "b": {"needs": ["a"], "prompt": ["a"]},
                             "c": {"with": ["b", "a"], "needs": []}})
    assert problems == []
    assert set(graph.nodes) == {"a", "b", "c"}
    assert sorted(graph.edges) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert graph.edges["a", "b"]["fields"] == ("needs", "prompt")
    assert graph.edges["a", "c"]["fields"] == ("with",)


def test_duplicate_references_make_one_edge() -> None:
    graph, problems = build({"a": {}, "b": {"needs": ["a", "a"], "with": ("a",)}})
    assert problems == [] and list(graph.edges) == [("a", "b")]
    assert graph.edges["a", "b"]["fields"] == ("needs", "with")


def test_unknown_step_with_did_you_mean() -> None:
    _graph, problems = build({"summary": {}, "x": {"needs": ["sumary", "zzz"]}})
    assert [p.code for p in problems] == ["unknown_step", "unknown_step"]
    typo, other = problems
    assert typo.step == "x" and typo.field == "needs" and typo.related == ("sumary",)
    assert "'sumary'" in typo.message and typo.hint == "did you mean 'summary'?"
    assert other.hint is not None and "did you mean" not in other.hint


def test_self_dependency_is_reported_not_drawn() -> None:
    graph, problems = build({"a": {"prompt": ["a"]}})
    assert problems == [GraphProblem(
        "self_dependency", "a", "prompt", "step 'a' refers to itself in 'prompt'",
        problems[0].hint, ("a",))]
    assert problems[0].hint
    assert list(graph.edges) == []


def test_cycle_message_prints_the_path() -> None:
    _graph, problems = build({"a": {"needs": ["c"]}, "b": {"prompt": ["a"]},
                              "c": {"with": ["b"]}, "ok": {"needs": ["a"]}})
    (cycle,) = problems
    assert cycle.code == "cycle"
    assert "a -> b -> c -> a" in cycle.message
    assert cycle.step == "a" and cycle.field == "needs"
    assert cycle.related == ("a", "b", "c")
    assert cycle.hint is not None and "'c'" in cycle.hint


def test_each_distinct_cycle_reported_once() -> None:
    deps = {"a": {"needs": ["b"]}, "b": {"needs": ["a"]},
            "x": {"needs": ["z"]}, "y": {"needs": ["x"]}, "z": {"needs": ["y"]},
            "free": {"needs": ["a", "x"]}}
    _graph, problems = build(deps)
    assert [p.message for p in problems] == ["dependency cycle: a -> b -> a",
                                             "dependency cycle: x -> y -> z -> x"]


def test_tangled_cycles_are_each_reported() -> None:
    # a -> b -> a and a -> b -> c -> a share the edge a -> b
    deps = {"a": {"needs": ["b", "c"]}, "b": {"needs": ["a"]}, "c": {"needs": ["b"]}}
    problems = build(deps)[1]
    assert [p.message for p in problems] == ["dependency cycle: a -> b -> a",
                                             "dependency cycle: a -> b -> c -> a"]
    assert problems[1].related == ("a", "b", "c")


def test_long_cycle_message_is_elided() -> None:
    names = [f"s{i:03d}" for i in range(100)]
    deps = {n: {"needs": [names[i - 1]]} for i, n in enumerate(names)}  # s000 needs s099
    (problem,) = build(deps)[1]
    assert problem.message.startswith("dependency cycle: s000 -> s001 -> ")
    assert "... (85 more) ->" in problem.message
    assert problem.message.endswith("-> s099 -> s000")
    assert len(problem.related) == 100


def test_removing_the_reported_edges_breaks_every_cycle() -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(40):
        names = [f"n{i}" for i in range(12)]
        deps = {n: {"needs": rng.sample(names, 2)} for n in names}
        graph, problems = build(deps)
        cycles = [p for p in problems if p.code == "cycle"]
        if not cycles or len(cycles) > 50:
            continue
        checked += 1
        broken = graph.copy()
        for problem in cycles:
            path = problem.message.removeprefix("dependency cycle: ").split(" -> ")
            assert path[0] == path[-1] == problem.step
            assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(path))
            assert problem.hint is not None and f"reference to {path[-2]!r}" in problem.hint
            broken.remove_edge(path[-2], path[-1])
        assert nx.is_directed_acyclic_graph(broken)
        assert len({p.message for p in cycles}) == len(cycles)
    assert checked > 10


def test_many_cycles_are_capped_with_a_summary() -> None:
    deps: dict[str, dict[str, list[str]]] = {}
    for i in range(80):  # 80 separate two-step cycles
        deps[f"p{i:02d}"] = {"needs": [f"q{i:02d}"]}
        deps[f"q{i:02d}"] = {"needs": [f"p{i:02d}"]}
    problems = build(deps)[1]
    assert len(problems) == 51
    assert all(p.code == "cycle" for p in problems)
    assert problems[-1].message.startswith("30 more dependency cycles, among 60 steps: ")
    assert len(problems[-1].message) < 200


def test_all_problem_kinds_reported_together() -> None:
    deps = {"a": {"needs": ["a", "nope"]}, "b": {"needs": ["c"]}, "c": {"needs": ["b"]}}
    codes = sorted(p.code for p in build(deps)[1])
    assert codes == ["cycle", "self_dependency", "unknown_step"]


def test_topological_order_is_deterministic_and_lexicographic() -> None:
    graph, _ = build({"z": {}, "a": {}, "m": {"needs": ["z"]}, "b": {"needs": ["z"]}})
    assert topological_order(graph) == ["a", "z", "b", "m"]


def test_topological_order_respects_every_edge_on_random_dags() -> None:
    rng = random.Random(7)
    for _ in range(20):
        names = [f"s{i}" for i in range(60)]
        deps = {n: {"needs": [m for m in names[:i] if rng.random() < 0.08]}
                for i, n in enumerate(names)}
        graph, problems = build(deps)
        assert problems == []
        order = topological_order(graph)
        position = {n: i for i, n in enumerate(order)}
        assert sorted(order) == sorted(names)
        assert all(position[s] < position[d] for s, d in graph.edges)
        assert order == list(nx.lexicographical_topological_sort(graph))


def test_layers() -> None:
    graph, _ = build(DIGEST)
    assert layers(graph) == [["ls"], ["read"], ["summary"], ["archive", "investigate"]]


def test_ordering_a_cyclic_graph_raises_clearly() -> None:
    graph, _ = build({"a": {"needs": ["b"]}, "b": {"needs": ["a"]}})
    for func in (topological_order, layers, critical_path):
        with pytest.raises(ValueError, match="cycle"):
            func(graph)


def test_critical_path_unweighted_and_weighted() -> None:
    deps = {"start": {}, "fast": {"needs": ["start"]}, "slow1": {"needs": ["start"]},
            "slow2": {"needs": ["slow1"]}, "end": {"needs": ["fast", "slow2"]}}
    graph, _ = build(deps)
    assert critical_path(graph) == ["start", "slow1", "slow2", "end"]
    weights = {"start": 1, "fast": 100, "slow1": 1, "slow2": 1, "end": 1}
    assert critical_path(graph, weights) == ["start", "fast", "end"]


def test_critical_path_ties_prefer_smaller_names() -> None:
    graph, _ = build({"b": {}, "a": {}, "c": {"needs": ["a", "b"]}})
    assert critical_path(graph) == ["a", "c"]
    assert critical_path(build({})[0]) == []


def test_deps_from_compiled_expressions() -> None:
    """The loader's path: step refs read from expressions feed build()."""
    steps = {
        "ls": {"with": {"path": "."}},
        "read": {"foreach": "${{ steps.ls.output.entries }}", "with": {"p": "${{ item }}"}},
        "summary": {"prompt": "Summarise ${{ steps.read.output | tojson }}"},
        "report": {"prompt": "${{ steps.summary.output }} ${{ steps['sumary'].status }}"},
    }
    deps = {sid: {f: compile_value(v).refs for f, v in fields.items()}
            for sid, fields in steps.items()}
    graph, problems = build(deps)
    assert sorted(graph.edges) == [("ls", "read"), ("read", "summary"), ("summary", "report")]
    (problem,) = problems
    assert problem.code == "unknown_step" and problem.field == "prompt"
    assert problem.hint == "did you mean 'summary'?"


def test_the_loader_keeps_the_kinds_the_checks_found() -> None:
    import dataclasses

    from engine.spec.loader import load_text

    wf = load_text("version: 1\nname: k\nproviders:\n  m: {kind: echo}\nsteps:\n"
                   "  a: {run: ls}\n  b: {llm: m, prompt: hi}\n", "k.yaml")
    assert wf._kinds == {"a": "run", "b": "llm"}
    assert dataclasses.replace(wf, _kinds={}).kinds() == wf.kinds()
