"""read -> parse (with positions) -> validate (models) -> check (references, expressions, graph).

Every problem on the way becomes a located :class:`~engine.errors.SpecIssue`; all of them are
raised together as one :class:`~engine.errors.SpecError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import ValidationError

from engine.errors import Location, SpecError, SpecIssue
from engine.spec.checks import Checker
from engine.spec.locate import issues_from_validation
from engine.spec.models import WorkflowSpec
from engine.spec.subworkflows import SubWorkflows
from engine.spec.workflow import Workflow
from engine.spec.yaml_source import Source, parse, read


def load(path: str | Path) -> Workflow:
    """Load and fully check a workflow file (and the sub-workflow files it calls). Raises
    SpecError listing every problem."""
    file = Path(path)
    return _load_source(read(file), file)


def load_source(src: Source, file: Path, subs: SubWorkflows) -> Workflow:
    """Check a file read by `subs` (a sub-workflow file met while checking another): the
    files it calls in turn are checked with what `subs` already knows."""
    return _load_source(src, file, subs)


def load_text(text: str, path: str | Path = "<string>") -> Workflow:
    """Like :func:`load`, for a workflow held in a string (`path` names it in errors and is
    the base for relative paths)."""
    return _load_source(parse(text, str(path)), Path(path))


def _load_source(src: Source, file: Path, subs: SubWorkflows | None = None) -> Workflow:
    if src.issues or src.data is None:
        raise SpecError(src.issues)
    issues: list[SpecIssue] = []
    spec: WorkflowSpec | None = None
    if not isinstance(src.data, dict):
        raise SpecError([SpecIssue("a workflow file must be a mapping (key: value)",
                                   Location(src.path, 1, 1), hint="start with `version: 1`")])
    try:
        spec = WorkflowSpec.model_validate(src.data)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, src))
    base_dir = file.resolve().parent if file.name != "<string>" else Path.cwd()
    checked = Checker(src, base_dir, subs or SubWorkflows())
    result = checked.run()
    issues.extend(checked.issues)
    if issues or spec is None:
        # this file's issues first, then those of the sub-workflows it calls, file by file
        issues.sort(key=lambda i: (i.location.file != src.path, i.location.file,
                                   i.location.line, i.location.column))
        raise SpecError(_dedupe(issues))
    return Workflow(
        spec=spec, path=file, base_dir=base_dir, source=src,
        spec_hash=hashlib.sha256(src.text.encode()).hexdigest(),
        deps=result.deps, steps=result.steps, outputs=result.outputs,
        providers=result.providers, servers=result.servers, _edges=result.edges,
        _kinds=result.kinds,
    )


def _dedupe(issues: list[SpecIssue]) -> list[SpecIssue]:
    seen: set[tuple[str, int, int, str]] = set()
    out = []
    for issue in issues:
        key = (issue.location.file, issue.location.line, issue.location.column, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out
