"""GitHub Actions: `::error file=..,line=..::` annotations for failed steps and a Markdown job
summary appended to $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.state.render import printable
from runners.reporters.junit import _relative, _where, _where_run_error, run_error
from runners.words import count

_ICONS = {"succeeded": "✅", "restored": "♻️", "failed": "❌", "skipped": "⏭️",
          "cancelled": "⛔"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def error_annotations(result: Any, workflow: Any = None) -> list[str]:
    """One `::error` line per failed step, at the step's line in the workflow file; one for
    the run when it failed with no failed step (at the output it names, if any)."""
    lines = []
    for sid, step in result.steps.items():
        if step.status == "failed":
            message = str((step.error or {}).get("message") or step.reason or "failed")
            lines.append(_annotation(_where(workflow, sid), f"plait: step {sid} failed",
                                     message))
    error = run_error(result)
    if error is not None:
        lines.append(_annotation(_where_run_error(workflow, error),
                                 f"plait: run {result.workflow} failed",
                                 str(error.get("message") or "failed")))
    return lines


def refused_annotation(error: BaseException, file: Any) -> str:
    """The `::error` of a run refused before its first step for a reason other than its
    workflow file (those are annotated at each problem): bad inputs, a missing secret."""
    return _annotation((_relative(str(file)), None), "plait: run refused", str(error))


def _annotation(where: tuple[str | None, int | None], title: str, message: str) -> str:
    file, line = where
    file = workspace_path(file) if file else file
    props = [f"file={escape_property(file)}"] if file else []
    if file and line:
        props.append(f"line={line}")
    props.append(f"title={escape_property(title)}")
    # the message is untrusted (a command's stderr): its control characters shown, not obeyed
    # where the log is a terminal (a job run locally by act, GITHUB_ACTIONS=true by hand)
    return f"::error {','.join(props)}::{escape_data(printable(message))}"


def workspace_path(file: str) -> str:
    """`file` as GitHub places annotations: from the root of the checkout ($GITHUB_WORKSPACE),
    not from the directory plait runs in (a job step's `working-directory`)."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return file
    try:
        return Path(file).resolve().relative_to(Path(workspace).resolve()).as_posix()
    except (OSError, ValueError):  # outside the checkout: as it is
        return file


def _cell(text: str) -> str:
    """Text for one table cell or list item: one line (a carriage return ends a line in
    Markdown too), pipes and backslashes escaped, no HTML."""
    text = " ".join(text.splitlines())
    return (text.replace("\\", "\\\\").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;"))


#: what Markdown reads as markup inside a line: a link or image (`[text](url)`, `![](url)`: an
#: image is fetched when the summary is viewed), emphasis, a code span, an entity (`&lt;`)
_MARKUP = re.compile(r"[\\`*_\[\]()!#&~|]")


def _plain(text: str) -> str:
    """Untrusted text (an error, a command's stderr) for one line of a job summary, shown as it
    is: every character Markdown could read as markup backslash-escaped, no HTML."""
    text = _MARKUP.sub(lambda m: "\\" + m[0], " ".join(text.splitlines()))
    return text.replace("<", "&lt;").replace(">", "&gt;")


#: the most lines (and characters) of a multi-line error or diff shown in a job summary
_BLOCK_LINES, _BLOCK_CHARS = 60, 6000


def _item(label: str, text: str) -> list[str]:
    """A list item of a job summary: ``- label: first line``, and the lines after it (a
    snapshot diff, a replay miss's diff, a command's stderr) as they are, in a code block
    under it, so a diff reads as one. The code block's fence is longer than any run of
    backticks in the text, and every line is indented into the item: nothing in the text
    can end the block or the list early, and nothing in it is rendered (no HTML, no links or
    images)."""
    first, *rest = text.splitlines() or [""]
    out = [f"- {label}: {_plain(first[:500])}"]
    while rest and not rest[-1].strip():
        rest.pop()
    if not rest:
        return out
    shown = rest[:_BLOCK_LINES]
    body = "\n".join(shown)[:_BLOCK_CHARS].splitlines()
    if len(body) < len(rest):
        body.append(f"... ({len(rest) - len(body)} more lines)")
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", "\n".join(body))),
                                 default=0))
    info = "diff" if any(line.startswith("@@ ") for line in body) else ""
    return [*out, "", f"  {fence}{info}", *(f"  {line}" for line in body), f"  {fence}", ""]


def summary_markdown(result: Any) -> str:
    """A job summary: the run's status and a table of its steps."""
    icon = "✅" if result.status == "succeeded" else "❌"
    tokens = sum(v for k, v in result.usage.items() if k in ("input_tokens", "output_tokens"))
    out = [f"### {icon} plait run `{_cell(result.workflow)}`: {result.status}", "",
           f"Run `{result.run_id}` · {count(len(result.steps), 'step')} · {result.duration:.2f} s"
           f" · {tokens} tokens · ${result.cost:.4f}", "",
           "| Step | Status | Duration | Attempts | Tokens (in/out) | Cost |",
           "|---|---|---:|---:|---:|---:|"]
    for sid, step in result.steps.items():
        usage = step.usage or {}
        tok = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}" if usage else ""
        cost = f"${step.cost:.4f}" if step.cost else ""
        status = f"{_ICONS.get(step.status, '')} {step.status}"
        out.append(f"| `{_cell(sid)}` | {status} | {step.duration:.2f} s | {step.attempts} | "
                   f"{tok} | {cost} |")
    failed = [(sid, s) for sid, s in result.steps.items() if s.status == "failed"]
    error = run_error(result)
    if failed or error:
        out += ["", "**Errors**", ""]
        for sid, step in failed:
            message = str((step.error or {}).get("message") or step.reason or "failed")
            out += _item(f"`{_cell(sid)}`", message)
        if error:
            out += _item("run", str(error.get("message") or "failed"))
    return "\n".join(out) + "\n\n"


def append_summary(result: Any, environ: Mapping[str, str] | None = None, *,
                   markdown: str | None = None) -> Path | None:
    """Append the summary of a run (or ``markdown``) to $GITHUB_STEP_SUMMARY (if set); the
    path written, else None."""
    target = (os.environ if environ is None else environ).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as out:
        out.write(summary_markdown(result) if markdown is None else markdown)
    return path


# ---------------------------------------------------------------- plait test


_CASE_ICONS = {"passed": "✅", "updated": "🔄", "failed": "❌", "error": "❌"}


def case_annotation(outcome: Any, workflow: Any = None) -> str:
    """The `::error` line of a `plait test` case that did not pass, at the case's `- name:`
    line in the workflow file (the file itself when it cannot be loaded)."""
    file, line = _case_where(outcome, workflow)
    message = "\n".join(outcome.problems) or outcome.status
    if len(message) > 4000:
        message = message[:4000] + "... (truncated)"
    return _annotation((file, line), f"plait test: {outcome.workflow}::{outcome.case} "
                                     f"{outcome.status}", message)


def _case_where(outcome: Any, workflow: Any) -> tuple[str | None, int | None]:
    names = [c.name for c in workflow.spec.tests] if workflow is not None else []
    if outcome.case in names:
        try:
            loc = workflow.source.location(("tests", names.index(outcome.case), "name"),
                                           key=True)
            return _relative(str(loc.file)), (loc.line or None)
        except Exception:  # a location is a nicety: the file alone still annotates it
            pass
    return _relative(str(outcome.file)), None


def tests_summary_markdown(results: list[Any]) -> str:
    """A job summary of `plait test`: the counts, a table of the cases and their problems."""
    from runners.workflow_tests import tally

    icon = "✅" if all(r.ok for r in results) else "❌"
    out = [f"### {icon} plait test: {tally(results)}", "",
           "| Workflow | Case | Status | Duration |", "|---|---|---|---:|"]
    for r in results:
        out.append(f"| `{_cell(r.workflow)}` | `{_cell(r.case)}` | "
                   f"{_CASE_ICONS.get(r.status, '')} {r.status} | {r.duration:.2f} s |")
    failed = [r for r in results if not r.ok]
    if failed:
        out += ["", "**Problems**", ""]
        for r in failed:
            for problem in r.problems or [r.status]:
                out += _item(f"`{_cell(r.workflow)}::{_cell(r.case)}`", problem)
    return "\n".join(out) + "\n\n"
