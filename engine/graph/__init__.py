"""The step graph: build it from step references, check it, order it, draw it. Pure, no I/O."""

from __future__ import annotations

from engine.graph._build import (
    Edges,
    GraphProblem,
    build,
    check,
    check_edges,
    critical_path,
    layers,
    topological_order,
)
from engine.graph._render import render_dot, render_json, render_mermaid

__all__ = (
    "Edges",
    "GraphProblem",
    "build",
    "check",
    "check_edges",
    "critical_path",
    "layers",
    "render_dot",
    "render_json",
    "render_mermaid",
    "topological_order",
)
