"""Draw the step graph as Mermaid, Graphviz DOT or JSON. Pure: returns text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx

from engine.graph._build import critical_path, layers

#: fill / stroke colours for the statuses the executor reports
_STATUS_COLOURS: dict[str, tuple[str, str]] = {
    "pending": ("#f5f5f5", "#9e9e9e"),
    "queued": ("#f5f5f5", "#9e9e9e"),
    "running": ("#e3f2fd", "#1e88e5"),
    "retrying": ("#fff8e1", "#f9a825"),
    "succeeded": ("#e8f5e9", "#43a047"),
    "cached": ("#e8f5e9", "#43a047"),
    "failed": ("#ffebee", "#e53935"),
    "skipped": ("#eeeeee", "#757575"),
    "cancelled": ("#fbe9e7", "#6d4c41"),
}
_OTHER = ("#ffffff", "#000000")


def _status_class(status: str) -> str:
    return "st_" + (re.sub(r"[^A-Za-z0-9_]", "_", status) or "unknown")


def _mermaid_text(text: str) -> str:
    """Escape text for a quoted Mermaid label (entity codes, so nothing breaks the syntax)."""
    out = text.replace("#", "#35;").replace("\\", "#92;")
    for char, code in (('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("&", "#amp;"),
                       ("|", "#124;"), ("`", "#96;")):
        out = out.replace(char, code)
    return out.replace("\n", " ")


def _ordered(graph: nx.DiGraph) -> list[str]:
    return sorted(graph.nodes)


def render_mermaid(graph: nx.DiGraph, kinds: Mapping[str, str] | None = None,
                   statuses: Mapping[str, str] | None = None) -> str:
    """A Mermaid ``flowchart``; node ids are n0, n1, ... and labels carry the real ids."""
    kinds = kinds or {}
    statuses = statuses or {}
    ids = {node: f"n{i}" for i, node in enumerate(_ordered(graph))}
    lines = ["flowchart TD"]
    for node, short in ids.items():
        label = _mermaid_text(node)
        if node in kinds:
            label += f"<br/><small>{_mermaid_text(kinds[node])}</small>"
        lines.append(f'    {short}["{label}"]')
    for src, dst in sorted(graph.edges):
        lines.append(f"    {ids[src]} --> {ids[dst]}")
    used = sorted({statuses[n] for n in ids if n in statuses})
    for status in used:
        fill, stroke = _STATUS_COLOURS.get(status, _OTHER)
        lines.append(f"    classDef {_status_class(status)} fill:{fill},stroke:{stroke}")
    for status in used:
        members = ",".join(ids[n] for n in ids if statuses.get(n) == status)
        lines.append(f"    class {members} {_status_class(status)}")
    return "\n".join(lines) + "\n"


def _dot_escape(text: str) -> str:
    """Text for inside a DOT double-quoted string: backslashes and quotes escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return escaped.replace("\n", " ").replace("\r", " ")


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


def render_dot(graph: nx.DiGraph, kinds: Mapping[str, str] | None = None,
               statuses: Mapping[str, str] | None = None) -> str:
    """A Graphviz ``digraph``, one node per step, labelled ``id`` and ``kind``."""
    kinds = kinds or {}
    statuses = statuses or {}
    lines = ["digraph plait {", "    rankdir=TB;",
             '    node [shape=box, style="rounded", fontname="Helvetica"];']
    for node in _ordered(graph):
        kind = "\\n" + _dot_escape(kinds[node]) if node in kinds else ""
        attrs = [f'label="{_dot_escape(node)}{kind}"']
        if node in statuses:
            fill, stroke = _STATUS_COLOURS.get(statuses[node], _OTHER)
            attrs += ['style="rounded,filled"', f'fillcolor="{fill}"', f'color="{stroke}"',
                      f"tooltip={_dot_quote(statuses[node])}"]
        lines.append(f"    {_dot_quote(node)} [{', '.join(attrs)}];")
    for src, dst in sorted(graph.edges):
        lines.append(f"    {_dot_quote(src)} -> {_dot_quote(dst)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_json(graph: nx.DiGraph, kinds: Mapping[str, str] | None = None) -> str:
    """Nodes (id, kind, layer), edges (from, to, fields), layers and the critical path.

    For a graph with a cycle, layers and the critical path are empty and layer is null.
    """
    kinds = kinds or {}
    import networkx as nx

    is_dag = nx.is_directed_acyclic_graph(graph)
    grouped = layers(graph) if is_dag else []
    layer_of = {node: i for i, group in enumerate(grouped) for node in group}
    data: dict[str, Any] = {
        "nodes": [{"id": n, "kind": kinds.get(n), "layer": layer_of.get(n)}
                  for n in _ordered(graph)],
        "edges": [{"from": s, "to": d, "fields": list(graph.edges[s, d].get("fields", ()))}
                  for s, d in sorted(graph.edges)],
        "layers": grouped,
        "critical_path": critical_path(graph) if is_dag else [],
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
