"""Plain-text renderings of run records for the CLI (`plait runs list`, `plait runs show`).

Pure functions: records in, a string out, no colour codes, so they work in a pipe or a log.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engine.state.records import RunRecord, StepRecord

_MAX_VALUE = 400
#: C0 and C1 control characters but newline and tab: from untrusted step output, a terminal
#: would obey them (set the title, clear the screen, write the clipboard, `\r` overwrite);
#: and lone surrogates (JSON's "\ud800" in a reply decodes to one), which no output can encode
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return "\\r" if code == 13 else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character but newline and tab shown as an escape (`\\x1b`,
    `\\r`), and every lone surrogate (`\\ud800`): safe to print on a terminal."""
    return _CONTROL.sub(_escaped, text)


def shown_status(run: RunRecord) -> str:
    """`running` only while the run's process lives: a killed run says so."""
    from engine.state.resume import owner_alive

    if run.status == "running" and run.meta.get("owner") and not owner_alive(run.meta):
        return "died"
    return run.status


def format_runs_table(runs: Sequence[RunRecord]) -> str:
    """One line per run: id, status, workflow, start time, duration, cost, and for a
    sub-workflow's run the run and step that called it (`CALLED BY`, empty for the others)."""
    if not runs:
        return "no runs recorded yet\n"
    header = ("RUN ID", "STATUS", "WORKFLOW", "STARTED (UTC)", "DURATION", "COST", "CALLED BY")
    rows = [header] + [
        (r.run_id, shown_status(r), r.workflow_name, _when(r.started_at),
         _duration(r.started_at, r.finished_at), _cost(r.cost), caller(r))
        for r in runs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    return printable("\n".join(lines) + "\n")


def caller(run: RunRecord) -> str:
    """Who started a sub-workflow's run: `PARENT_RUN_ID step STEP` (`STEP[ITEM]` for a foreach
    item; the parent run id alone for a record that does not name the step); "" for a
    top-level run."""
    if not run.parent_run_id:
        return ""
    where = run.called_by
    if where is None:
        return run.parent_run_id
    step = str(where[0]) + ("" if where[1] is None else f"[{where[1]}]")
    return f"{run.parent_run_id} step {step}"


def format_run(run: RunRecord, steps: Sequence[StepRecord], *, locate: str = "",
               unrecorded: Sequence[str] = (),
               finished_items: Mapping[str, int] | None = None,
               children: Sequence[RunRecord] = ()) -> str:
    """A run and each of its steps: status, timings, attempts, errors, usage, cost, audit.
    `locate` follows the run id in the `plait resume` hint (e.g. `` --state PATH``);
    `children` are the runs of its sub-workflow steps. `unrecorded` names the workflow's
    steps that have no record (a killed run's unfinished steps); `finished_items` counts the
    finished items of unfinished foreach steps."""
    finished_items = finished_items or {}
    resumable = run.status != "succeeded"  # a succeeded run is not resumed
    status = shown_status(run)
    if status == "died":
        status += (f" (its process is gone; continue it with "
                   f"`plait resume {run.run_id}{locate}`)")
    out = [
        f"run {run.run_id}  {status}",
        f"  workflow   {run.workflow_name}  ({run.workflow_path})",
        f"  spec       {run.spec_hash}",
        f"  started    {_when(run.started_at)}",
        f"  duration   {_duration(run.started_at, run.finished_at)}",
    ]
    if run.resumed_from:
        out.append(f"  resumed    from {run.resumed_from}")
    if run.parent_run_id:
        out.append(f"  parent     {run.parent_run_id}")
    out += [_child_line(child) for child in children]
    if run.inputs:
        out.append(f"  inputs     {_value(run.inputs)}")
    out.append(f"  usage      {_usage(run.usage)}  cost {_cost(run.cost)}")
    meta = {k: v for k, v in run.meta.items() if k != "source"}  # the workflow text
    if meta:
        out.append(f"  meta       {_value(meta)}")
    if run.error:
        out.append(f"  error      {_error(run.error)}")
    if run.outputs is not None:
        out.append(f"  outputs    {_value(run.outputs)}")
    out.append("")
    total = f" recorded of {len(steps) + len(unrecorded)}" if unrecorded else ""
    out.append(f"steps ({len(steps)}{total})")
    for step in steps:
        out.extend(_step_lines(step))
        if step.step_id in finished_items:
            out.append(_items_line(finished_items[step.step_id], resumable))
    if unrecorded:
        out.append(f"  not recorded: {', '.join(unrecorded)} (not finished when the run was "
                   "last recorded)")
        out.extend(f"  {sid}: {_items_line(finished_items[sid], resumable).strip()}"
                   for sid in unrecorded if sid in finished_items)
    return printable("\n".join(out) + "\n")


def child_entry(child: RunRecord) -> dict[str, Any]:
    """A sub-workflow's run as its parent's listing shows it: which step (foreach item)
    started it (unknown for runs recorded before runs noted it), its id and status."""
    step, item = child.called_by or (None, None)
    return {"run_id": child.run_id, "step": step, "item": item, "workflow": child.workflow_name,
            "status": shown_status(child)}


def _child_line(child: RunRecord) -> str:
    entry = child_entry(child)
    where = entry["step"] or "?"
    if entry["item"] is not None:
        where += f"[{entry['item']}]"
    return f"  sub-run    {where}: {child.run_id}  {entry['status']}  ({child.workflow_name})"


def _step_lines(step: StepRecord) -> list[str]:
    attempts = f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}"
    items = f", {step.items} items" if step.items is not None else ""
    lines = [f"  {step.step_id}  {step.status}  "
             f"{_duration(step.started_at, step.finished_at)}  {attempts}{items}"]
    if step.usage or step.cost:
        lines.append(f"      usage   {_usage(step.usage)}  cost {_cost(step.cost)}")
    if step.error:
        lines.append(f"      error   {_error(step.error)}")
    for event in step.events:
        if isinstance(event, dict) and event.get("event") == "tools" and \
                isinstance(event.get("calls"), list):
            # an agent step's calls, one a line (a foreach item's say which item)
            lines.extend(_tool_lines(event["calls"], event.get("item")))
        else:
            lines.append(f"      event   {_value(event)}")
    for entry in step.audit:
        lines.append(f"      audit   {_value(entry)}")
    return lines


def _tool_lines(calls: list[Any], item: Any = None) -> list[str]:
    """``tool    turn 1  files__read_file {"path": "a.md"} -> ok: the text...`` (``tool
    item 2  turn 1  ...`` for a foreach item's)"""
    where = f"item {item}  " if item is not None else ""
    lines = []
    for call in calls:
        if not isinstance(call, dict):
            lines.append(f"      tool    {_value(call)}")
            continue
        arguments = _value(call.get("arguments", {}))
        if len(arguments) > 200:
            arguments = arguments[:197] + "..."
        output = " ".join(str(call.get("output", "")).split())
        if len(output) > 160:
            output = output[:157] + "..."
        status = "error" if call.get("is_error") else "ok"
        lines.append(f"      tool    {where}turn {call.get('turn', '?')}  "
                     f"{call.get('name', '?')} "
                     f"{arguments} -> {status}: {output}")
    return lines


def _items_line(count: int, resumable: bool) -> str:
    """The finished items of a foreach step that did not succeed; a resume reuses them, but
    only a run that did not succeed can be resumed (under continue_on_error it did)."""
    return (f"      items   {count} finished item{'s' if count != 1 else ''} recorded"
            + (" (a resume reuses them)" if resumable else ""))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    moment = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: float | None, end: float | None) -> str:
    if start is None:
        return "not started"
    if end is None:
        return "unfinished"
    seconds = max(0.0, end - start)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _cost(cost: float) -> str:
    return f"${cost:.4f}" if cost else "-"


def _usage(usage: dict[str, Any]) -> str:
    if not usage:
        return "-"
    return ", ".join(f"{k}={v}" for k, v in sorted(usage.items()))


def _error(error: dict[str, Any]) -> str:
    kind = error.get("type") or error.get("kind") or "error"
    text = f"{kind}: {error.get('message', '')}".rstrip(": ")
    extras = {k: v for k, v in error.items() if k not in ("type", "kind", "message")}
    if extras:
        text += f"  {_value(extras)}"
    return text


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 3] + "..."
    return text
