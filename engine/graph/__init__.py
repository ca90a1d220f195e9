"""The step graph: build it from step references, check it, order it, draw it. Pure, no I/O."""

from __future__ import annotations

from engine.graph._build import (
    GraphProblem,
    build,
    check,
    critical_path,
    layers,
    topological_order,
)
from engine.graph._render import render_dot, render_json, render_mermaid

__all__ = (
    "GraphProblem",
    "build",
    "check",
    "critical_path",
    "layers",
    "render_dot",
    "render_json",
    "render_mermaid",
    "topological_order",
)
