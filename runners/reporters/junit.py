"""JUnit XML, the report every CI understands: one testcase per step of a run (or per case
of `plait test`, which builds its own JUnitCase list and calls :func:`write_junit`)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree as ET

from engine.atomic import atomic_write

Outcome = Literal["passed", "failed", "error", "skipped"]
#: characters XML 1.0 cannot hold, even escaped (and lone surrogates: an undecodable byte of
#: an argument or a file name, which would be written as an invalid `&#56575;`)
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MAX_OUT = 64_000


@dataclass(frozen=True, slots=True)
class JUnitCase:
    """One <testcase>. `message` is the short failure/skip reason, `details` its body."""

    name: str
    classname: str
    outcome: Outcome = "passed"
    time: float = 0.0
    message: str = ""
    details: str = ""
    stdout: str = ""
    file: str | None = None
    line: int | None = None


def _clean(text: str) -> str:
    text = _INVALID_XML.sub("\N{REPLACEMENT CHARACTER}", text)
    return text if len(text) <= MAX_OUT else text[:MAX_OUT] + "\n... (truncated)"


def junit_xml(cases: Sequence[JUnitCase], suite: str) -> bytes:
    """The report as UTF-8 bytes: one <testsuite> inside <testsuites>."""
    counts = {o: sum(1 for c in cases if c.outcome == o) for o in ("failed", "error", "skipped")}
    total = sum(c.time for c in cases)
    suite = _clean(suite)
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)),
                      failures=str(counts["failed"]), errors=str(counts["error"]),
                      skipped=str(counts["skipped"]), time=f"{total:.3f}")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                       failures=str(counts["failed"]), errors=str(counts["error"]),
                       skipped=str(counts["skipped"]), time=f"{total:.3f}")
    for case in cases:
        attrs = {"name": _clean(case.name), "classname": _clean(case.classname),
                 "time": f"{case.time:.3f}"}
        if case.file:
            attrs["file"] = _clean(case.file)
        if case.line:
            attrs["line"] = str(case.line)
        tc = ET.SubElement(ts, "testcase", attrs)
        if case.outcome in ("failed", "error"):
            tag = "failure" if case.outcome == "failed" else "error"
            el = ET.SubElement(tc, tag, message=_clean(case.message)[:1000], type=tag)
            el.text = _clean(case.details or case.message)
        elif case.outcome == "skipped":
            ET.SubElement(tc, "skipped", message=_clean(case.message)[:1000])
        if case.stdout:
            ET.SubElement(tc, "system-out").text = _clean(case.stdout)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write_junit(cases: Sequence[JUnitCase], path: Path, *, suite: str = "plait") -> None:
    """Write the report atomically (temp file + fsync + rename)."""
    atomic_write(Path(path), junit_xml(cases, suite))


_OUTCOMES: dict[str, Outcome] = {"succeeded": "passed", "restored": "passed",
                                 "failed": "failed", "skipped": "skipped",
                                 "cancelled": "skipped"}


def cases_from_run(result: Any, workflow: Any = None) -> list[JUnitCase]:
    """One case per step of a RunResult (classname = the workflow's name)."""
    cases = []
    for sid, step in result.steps.items():
        file, line = _where(workflow, sid)
        error = step.error or {}
        message = str(error.get("message") or step.reason or "")
        details = json.dumps(error, indent=2, ensure_ascii=False, default=str) if error else ""
        cases.append(JUnitCase(
            name=sid, classname=result.workflow, outcome=_OUTCOMES.get(step.status, "error"),
            time=step.duration, message=message if step.status != "succeeded" else "",
            details=details, stdout=output_summary(step), file=file, line=line))
    error = run_error(result)
    if error is not None:  # the run failed, but no failed step says why (e.g. an output)
        file, line = _where_run_error(workflow, error)
        cases.append(JUnitCase(
            name="(run)", classname=result.workflow, outcome="failed",
            message=str(error.get("message") or "failed"),
            details=json.dumps(error, indent=2, ensure_ascii=False, default=str),
            file=file, line=line))
    return cases


def problems(error: BaseException) -> list[str]:
    """Every problem an error names, one a line: a workflow file's each as `plait validate`
    says it, else the error's text."""
    issues = getattr(error, "issues", None)
    return [issue.format() for issue in issues] if issues else [str(error)]


def refused_case(error: BaseException, file: Path, classname: str | None = None) -> JUnitCase:
    """The one case of a run refused before any step ran: `(workflow file)` for an invalid
    one, at its first problem's line, else `(run refused)` (bad inputs, a missing secret), so
    CI shows why nothing ran."""
    issues = getattr(error, "issues", None)
    name = "(workflow file)" if issues else "(run refused)"
    where = issues[0].location if issues else None
    lines = problems(error)
    return JUnitCase(name=name, classname=classname or file.stem, outcome="error",
                     message=lines[0][:200], details="\n".join(lines),
                     file=_relative(str(where.file if where and where.file else file)),
                     line=(where.line or None) if where else None)


def run_error(result: Any) -> dict[str, Any] | None:
    """The error of a failed run that no failed step accounts for (an output that could not
    be evaluated, a run-level failure), else None."""
    if not result.error or any(s.status == "failed" for s in result.steps.values()):
        return None
    return dict(result.error)


def _where_run_error(workflow: Any, error: dict[str, Any]) -> tuple[str | None, int | None]:
    """Where the run's error is: the output it names, else the workflow file."""
    if workflow is None:
        return None, None
    output = error.get("output")
    path: tuple[str, ...] = ("outputs", str(output)) if output else ()
    try:
        loc = workflow.source.location(path, key=True) if path else None
    except Exception:
        loc = None
    if loc is None:
        return _relative(str(workflow.path)), None
    return _relative(str(loc.file)), (loc.line or None)


def output_summary(step: Any, limit: int = 2000) -> str:
    """A short text of a step's result: status, attempts, usage, cost and its output."""
    head = f"status: {step.status}, attempts: {step.attempts}"
    if step.usage:
        head += ", tokens: " + ", ".join(f"{k}={v}" for k, v in step.usage.items() if v)
    if step.cost:
        head += f", cost: ${step.cost:.6f}"
    if step.output is None:
        return head
    text = step.output if isinstance(step.output, str) else json.dumps(
        step.output, ensure_ascii=False, default=str, indent=2)
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return f"{head}\noutput:\n{text}"


def _where(workflow: Any, sid: str) -> tuple[str | None, int | None]:
    """The file and line of step `sid` in the workflow file."""
    if workflow is None:
        return None, None
    try:
        loc = workflow.source.location(("steps", sid), key=True)
    except Exception:
        return None, None
    return _relative(str(loc.file)), (loc.line or None)


def _relative(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return path
