"""`plait runs report RUN_ID --html out.html`: one self-contained HTML file (inline CSS, JS and
SVG; nothing loaded from the network) showing a recorded run: the DAG coloured by status, a
timeline of the steps, and every step's inputs, outputs, errors, tokens and cost.

Everything taken from the record is untrusted (step outputs come from models and tools) and
is HTML-escaped; the page's scripts only read ids from data attributes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from html import escape
from typing import Any

from engine.jsontext import escape_surrogates
from runners.words import count

COLOURS = {"succeeded": "#2e9d4f", "restored": "#5b8def", "failed": "#d64541",
           "skipped": "#9aa0a6", "cancelled": "#e3a008", "running": "#7e57c2",
           "not recorded": "#c7ccd1"}
_NODE_W, _NODE_H, _GAP_X, _GAP_Y = 150, 34, 60, 14
_ROW_H, _LABEL_W, _CHART_W = 22, 180, 760


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _anchor(step_id: str) -> str:
    return "step-" + "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}" for c in step_id)


def _graph(run: Any, steps: Sequence[Any]) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Layers and edges from the workflow text kept in the record (else one layer)."""
    ids = [s.step_id for s in steps]
    source = run.meta.get("source") if isinstance(run.meta, dict) else None
    if isinstance(source, str):
        try:
            from engine.graph import layers
            from engine.spec.loader import load_text

            workflow = load_text(source, run.workflow_path or "<record>")
            graph = workflow.graph
            # every step of the workflow: a run killed (or still running) has records of
            # the steps that finished only, and the others are shown as not recorded
            plan = layers(graph)
            placed = {s for layer in plan for s in layer}
            return ([*plan, *([extra] if (extra := [s for s in ids if s not in placed])
                               else [])], list(graph.edges))
        except Exception:  # an old or edited record: show the steps without edges
            pass
    return [ids], []


def step_order(run: Any, steps: Sequence[Any]) -> list[str]:
    """Every step of the run's workflow (from the text kept in the record) in graph order,
    then any recorded step the workflow text does not name."""
    return [sid for layer in _graph(run, steps)[0] for sid in layer]


def dag_svg(run: Any, steps: Sequence[Any],
            graph: tuple[list[list[str]], list[tuple[str, str]]] | None = None) -> str:
    plan, edges = graph or _graph(run, steps)
    status = {s.step_id: s.status for s in steps}
    pos: dict[str, tuple[int, int]] = {}
    for col, layer in enumerate(plan):
        for row, sid in enumerate(layer):
            pos[sid] = (10 + col * (_NODE_W + _GAP_X), 36 + row * (_NODE_H + _GAP_Y))
    width = 20 + max(len(plan), 1) * (_NODE_W + _GAP_X)
    height = 46 + max((len(layer) for layer in plan), default=1) * (_NODE_H + _GAP_Y)
    out = [f'<svg id="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="workflow graph">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#888"/></marker>'
           '</defs>']
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        sx, sy, ex, ey = x1 + _NODE_W, y1 + _NODE_H // 2, x2, y2 + _NODE_H // 2
        mid = (sx + ex) // 2
        if ex - sx > _GAP_X and sy == ey:  # skips a layer: arc over the nodes between
            lift = sy - _NODE_H // 2 - 8
            d = f"M{sx - 20},{y1} C{sx},{lift - 20} {ex + 20},{lift - 20} {ex + 20},{y2}"
            out.append(f'<path class="edge" d="{d}" fill="none" stroke="#888" '
                       'marker-end="url(#arrow)"/>')
            continue
        out.append(f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" '
                   'fill="none" stroke="#888" marker-end="url(#arrow)"/>')
    for sid, (x, y) in pos.items():
        st = status.get(sid, "not recorded")
        label = sid if len(sid) <= 18 else sid[:17] + "…"
        out.append(f'<g class="node" data-step="{_e(_anchor(sid))}" tabindex="0">'
                   f'<title>{_e(sid)}: {_e(st)}</title>'
                   f'<rect x="{x}" y="{y}" width="{_NODE_W}" height="{_NODE_H}" rx="6" '
                   f'fill="{COLOURS.get(st, "#c7ccd1")}"/>'
                   f'<text x="{x + _NODE_W // 2}" y="{y + _NODE_H // 2 + 4}" '
                   f'text-anchor="middle" data-fit="{_NODE_W - 12}">{_e(label)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def timeline_svg(run: Any, steps: Sequence[Any]) -> str:
    """A Gantt chart: one bar per step from started_at to finished_at."""
    timed = sorted((s for s in steps if s.started_at is not None),
                   key=lambda s: (s.started_at, s.step_id))
    start = run.started_at
    ends = [s.finished_at for s in timed if s.finished_at] + [run.finished_at or start]
    span = max(max(ends) - start, 1e-6)
    height = 30 + len(timed) * _ROW_H
    width = _LABEL_W + _CHART_W + 20
    out = [f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           'aria-label="timeline">']
    for i in range(5):
        x = _LABEL_W + i * _CHART_W / 4
        # the first label starts at its line, the last ends at it (inside the chart)
        anchor = ("start", "middle", "middle", "middle", "end")[i]
        out.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#eee"/>'
                   f'<text x="{x:.1f}" y="{height - 4}" class="tick" '
                   f'text-anchor="{anchor}">{span * i / 4:.2f}s</text>')
    for row, step in enumerate(timed):
        y = 6 + row * _ROW_H
        x0 = _LABEL_W + (step.started_at - start) / span * _CHART_W
        end = step.finished_at if step.finished_at is not None else run.finished_at or start
        w = max((end - step.started_at) / span * _CHART_W, 2)
        attempts = f" · {step.attempts} attempts" if step.attempts > 1 else ""
        out.append(f'<g class="bar" data-step="{_e(_anchor(step.step_id))}">'
                   f'<title>{_e(step.step_id)}: {_e(step.status)}, '
                   f'{end - step.started_at:.3f}s{_e(attempts)}</title>'
                   f'<text x="{_LABEL_W - 6}" y="{y + 13}" text-anchor="end" '
                   f'data-fit="{_LABEL_W - 12}">{_e(step.step_id[:24])}</text>'
                   f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{_ROW_H - 6}" rx="3" '
                   f'fill="{COLOURS.get(step.status, "#c7ccd1")}"/>')
        if step.attempts > 1:  # attempts are recorded as a count: marked, not timed
            out.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 13}" class="tick">'
                       f'×{step.attempts}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _pre(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False,
                                                           default=str)
    return f"<pre>{_e(text)}</pre>"


def _step_section(step: Any) -> str:
    usage = step.usage or {}
    duration = (step.finished_at - step.started_at) if step.started_at and step.finished_at \
        else None
    facts = [("status", step.status), ("attempts", step.attempts),
             ("duration", f"{duration:.3f} s" if duration is not None else "–"),
             ("tokens in/out", f"{usage.get('input_tokens', 0)} / "
                               f"{usage.get('output_tokens', 0)}"),
             ("cost", f"${step.cost:.6f}")]
    if step.items is not None:
        facts.append(("items", step.items))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    parts = [f'<section class="step" id="{_e(_anchor(step.step_id))}">',
             f'<h3><span class="dot" style="background:{COLOURS.get(step.status, "#ccc")}">'
             f'</span>{_e(step.step_id)}</h3><table class="facts">{rows}</table>']
    for title, value, open_ in (("Error", step.error, True), ("Inputs", step.rendered_input,
                                False), ("Output", step.output, False),
                                ("Events", step.events, False), ("Audit", step.audit, False)):
        if value:
            parts.append(f"<details{' open' if open_ else ''}><summary>{title}</summary>"
                         f"{_pre(value)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _unrecorded_section(step_id: str) -> str:
    colour = COLOURS["not recorded"]
    return (f'<section class="step" id="{_e(_anchor(step_id))}"><h3><span class="dot" '
            f'style="background:{colour}"></span>{_e(step_id)}</h3><p class="meta">no record '
            "of this step: it had not finished when the run was last recorded</p></section>")


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.meta{color:#555} .scroll{overflow:auto;border:1px solid #ddd;background:#fff;padding:8px}
svg text{font:12px system-ui,sans-serif} .node text{fill:#fff;font-weight:600}
.node{cursor:pointer} .node:focus rect,.node:hover rect{stroke:#222;stroke-width:2}
.tick{fill:#777;font-size:11px} .bar{cursor:pointer}
.step{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 14px;margin:10px 0}
.step.hl{outline:3px solid #5b8def} .step h3{margin:4px 0;font-size:15px}
.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:8px}
.facts th{text-align:left;padding-right:14px;color:#555;font-weight:500}
pre{background:#f4f4f4;padding:8px;overflow:auto;max-height:400px;white-space:pre-wrap}
.legend span{display:inline-block;margin-right:14px}
"""
_JS = """
// a label wider than its place (a long step id in wide letters) is cut to fit, with an
// ellipsis; the whole id is in the element's title
document.querySelectorAll('text[data-fit]').forEach(function (text) {
  var room = Number(text.getAttribute('data-fit')), label = text.textContent;
  while (label.length > 1 && text.getComputedTextLength() > room) {
    label = label.replace(/…$/, '').slice(0, -1);
    text.textContent = label + '…';
  }
});
document.documentElement.setAttribute('data-ready', 'yes');
document.querySelectorAll('[data-step]').forEach(function (el) {
  el.addEventListener('click', function () {
    var target = document.getElementById(el.getAttribute('data-step'));
    if (!target) { return; }
    document.querySelectorAll('.step.hl').forEach(function (s) { s.classList.remove('hl'); });
    target.classList.add('hl');
    target.scrollIntoView({behavior: 'smooth', block: 'start'});
  });
});
"""


def render_html(run: Any, steps: Sequence[Any]) -> str:
    """The report of one run record and its step records."""
    from engine.state.render import shown_status

    graph = _graph(run, steps)
    order = [sid for layer in graph[0] for sid in layer]
    by_id = {s.step_id: s for s in steps}
    status = shown_status(run)
    usage = run.usage or {}
    duration = (f"{run.finished_at - run.started_at:.2f} s" if run.finished_at else
                "unfinished" if status == "died" else "running")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(run.started_at))
    legend = "".join(f'<span><span class="dot" style="background:{c}"></span>{_e(s)}</span>'
                     for s, c in COLOURS.items())
    error = f"<h2>Error</h2>{_pre(run.error)}" if run.error else ""
    # a lone surrogate in the record (JSON's "\ud800" in a reply) has no UTF-8 form: shown as
    # that escape, so the page can be written
    return escape_surrogates("".join([
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>plait run {_e(run.run_id)} · {_e(run.workflow_name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(run.workflow_name)}: {_e(status)}</h1>",
        f'<div class="meta">run <code>{_e(run.run_id)}</code> · started {_e(started)} · '
        f"{_e(duration)} · {count(len(order), 'step')} · "
        f"tokens {_e(usage.get('input_tokens', 0))} in / "  # numbers, but read from a file
        f"{_e(usage.get('output_tokens', 0))} out · ${run.cost:.6f}</div>",
        error,
        f'<h2>Graph</h2><div class="legend">{legend}</div>',
        f'<div class="scroll">{dag_svg(run, steps, graph)}</div>',
        f'<h2>Timeline</h2><div class="scroll">{timeline_svg(run, steps)}</div>',
        "<h2>Inputs and outputs of the run</h2>",
        f"<details><summary>Inputs</summary>{_pre(run.inputs)}</details>",
        f"<details open><summary>Outputs</summary>{_pre(run.outputs)}</details>",
        "<h2>Steps</h2>",
        *(_step_section(by_id[s]) if s in by_id else _unrecorded_section(s) for s in order),
        f"<script>{_JS}</script></body></html>\n"]))
