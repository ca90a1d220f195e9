"""The `tests:` of workflow files: run each case offline from its cassette, compare the outputs
with a stored snapshot, check the case's assertions. Used by `plait test` and the pytest
plugin.

Snapshots are JSON files next to the workflow: ``__plait_snapshots__/<file stem>.<case>.json``
holding ``{"outputs": ...}`` (keys sorted, two-space indent, a final newline). Not in
``__snapshots__``: syrupy owns that directory next to a pytest file and deletes files it does
not know there on ``--snapshot-update``. A snapshot still in ``__snapshots__`` (plait before
this change) is read from there, and ``--update-snapshots`` moves it.
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, PlaitError
from runners.words import count

if TYPE_CHECKING:
    from engine.executor.result import RunResult
    from engine.spec.models import AssertionSpec, TestCaseSpec
    from engine.spec.workflow import Workflow

SNAPSHOT_DIR = "__plait_snapshots__"
#: where snapshots were kept before (shared with syrupy): still read, moved on update
LEGACY_SNAPSHOT_DIR = "__snapshots__"
WORKFLOW_SUFFIXES = (".yaml", ".yml")


@dataclass
class CaseResult:
    workflow: str
    file: Path
    case: str
    status: str = "passed"  # passed | failed | error | updated
    problems: list[str] = field(default_factory=list)
    duration: float = 0.0
    result: RunResult | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "updated")

    def fail(self, text: str, status: str = "failed") -> None:
        self.problems.append(text)
        if self.status != "error":
            self.status = status


def tally(results: Iterable[CaseResult]) -> str:
    """How the cases went, as `plait test` and its job summary say it: "3 passed, 1 failed",
    then ", 1 error" when a case could not run or be checked (a missing or corrupt cassette):
    an error is not counted as a failure."""
    outcomes = [r.status for r in results]
    passed = sum(1 for s in outcomes if s in ("passed", "updated"))
    errors = outcomes.count("error")
    failed = len(outcomes) - passed - errors
    return f"{passed} passed, {failed} failed" + (f", {count(errors, 'error')}" if errors else "")


def find_workflows(paths: Iterable[Path]) -> list[Path]:
    """Workflow files among ``paths`` (files as given; directories searched recursively for
    YAML files with a top-level ``version:`` and ``steps:``), skipping cassettes, each once."""
    found: dict[Path, Path] = {}  # by resolved path: a file named twice runs once
    for path in paths:
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                if (candidate.suffix in WORKFLOW_SUFFIXES and candidate.is_file()
                        and not candidate.name.endswith(".cassette.yaml")
                        and _looks_like_workflow(candidate)):
                    found.setdefault(candidate.resolve(), candidate)
        else:
            found.setdefault(path.resolve(), path)
    return list(found.values())


def _looks_like_workflow(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return bool(re.search(r"^version:", text, re.M) and re.search(r"^steps:", text, re.M))


def snapshot_clash(workflow_file: Path) -> Path | None:
    """Another workflow file beside this one with the same stem (`wf.yaml` and `wf.yml`):
    their snapshots would have the same names and overwrite each other."""
    for suffix in sorted(WORKFLOW_SUFFIXES):
        other = workflow_file.with_suffix(suffix)
        if other.name != workflow_file.name and other.is_file() and _looks_like_workflow(other):
            return other
    return None


def snapshot_path(workflow_file: Path, case: str, *, folder: str = SNAPSHOT_DIR) -> Path:
    return workflow_file.parent / folder / f"{workflow_file.stem}.{case}.json"


def snapshot_text(outputs: Any) -> str:
    return json.dumps({"outputs": outputs}, indent=2, sort_keys=True, ensure_ascii=False,
                      default=str) + "\n"


def cassette_dir(workflow: Workflow, case: TestCaseSpec) -> Path | None:
    return (workflow.base_dir / case.cassette) if case.cassette else None


def cassette_file(workflow: Workflow, case: TestCaseSpec) -> Path | None:
    """The cassette file the case replays (or records), resolved: cases that share one
    have the same path."""
    from engine.cassettes.format import cassette_path

    directory = cassette_dir(workflow, case)
    return None if directory is None else cassette_path(directory.resolve(), workflow.name)


# ---------------------------------------------------------------- running one case


#: provider kinds that answer without a network: a case without a cassette may use them
_OFFLINE_KINDS = frozenset({"echo", "replay"})


def _live_parts(workflow: Workflow) -> list[str]:
    """What a run of `workflow` would reach over the network: its providers other than the
    offline kinds and its MCP servers given by URL (stdio servers are local processes)."""
    spec = workflow.spec
    return [*(f"provider {name!r} ({p.kind})" for name, p in spec.providers.items()
              if p.kind not in _OFFLINE_KINDS),
            *(f"MCP server {name!r} (by URL)" for name, s in spec.mcp_servers.items()
              if s.url)]


async def run_case(workflow: Workflow, case: TestCaseSpec, *, update: bool = False,
                   record: bool = False,
                   run_options: dict[str, Any] | None = None) -> CaseResult:
    """Run one case offline (or, with ``record``, live while re-recording its cassette).
    `run_options` are more RunOptions fields for the run (the tracer of `plait test`)."""
    import time

    from engine.cassettes import CassetteNotSaved, collect_reports
    from engine.executor import run_workflow

    out = CaseResult(workflow.name, workflow.path, case.name)
    started = time.perf_counter()
    cassette = cassette_dir(workflow, case)
    live = _live_parts(workflow) if cassette is None and not record else []
    if live:  # `plait test` is offline: no CI key is spent on a case by mistake
        out.fail(f"the case has no cassette, and the workflow would call {', '.join(live)} "
                 "live: add `cassette: DIR` to the case and record it with "
                 "`plait test --record` (live once, offline from then on)", "error")
        return out
    options: dict[str, Any] = dict(run_options or {})
    if cassette is not None:
        options["record_dir" if record else "replay_dir"] = cassette
    with tempfile.TemporaryDirectory(prefix="plait-test-") as state, \
            collect_reports() as reports:
        try:
            result = await run_workflow(workflow, case.inputs, listeners=[],
                                        state_location=Path(state) / "runs.db", **options)
        except CassetteNotSaved as exc:  # the run ended: check it, the case is an error
            result = exc.result
            out.fail(str(exc), "error")
        except PlaitError as exc:
            out.fail(f"the run could not start: {exc}", "error")
            out.duration = time.perf_counter() - started
            return out
    out.result = result
    out.duration = time.perf_counter() - started
    _check_run(out, result, reports)
    if out.status == "error" or result.status != "succeeded":
        return out  # a failed run has no outputs worth comparing (nor a snapshot to write)
    if case.snapshot:
        _check_snapshot(out, workflow.path, case.name, result.outputs, update)
    for index, spec in enumerate(case.assert_):
        problem = check_assertion(spec, result)
        if problem is not None:
            out.fail(f"assert[{index}]: {problem}")
    return out


def _check_run(out: CaseResult, result: RunResult, reports: list[Any]) -> None:
    if result.status != "succeeded":
        for sid, step in result.steps.items():
            if step.status == "failed" and step.error:
                out.fail(f"step {sid} failed: {step.error.get('message')}")
        if result.error and not out.problems:
            out.fail(f"run {result.status}: {result.error.get('message')}")
        if not out.problems:
            out.fail(f"run {result.status}")
    for report in reports:
        if report.spec_mismatch:
            out.fail(f"{report.spec_mismatch}; re-record it with `plait test --record`",
                     "error")
        if report.mode == "replay" and report.unused:
            listed = "; ".join(report.unused[:5])
            more = f" (and {len(report.unused) - 5} more)" if len(report.unused) > 5 else ""
            out.fail(f"cassette {report.path}: {len(report.unused)} recorded interaction(s) "
                     f"were not used: {listed}{more}")


def _check_snapshot(out: CaseResult, workflow_file: Path, case: str, outputs: Any,
                    update: bool) -> None:
    path = snapshot_path(workflow_file, case)
    legacy = snapshot_path(workflow_file, case, folder=LEGACY_SNAPSHOT_DIR)
    actual = snapshot_text(outputs)
    if _snapshot_dir_is_a_file(path):
        out.fail(str(_not_a_directory(path)), "error")
        return
    try:
        stored = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        stored = _read_legacy(legacy)
        if stored is not None:
            path = legacy
    except OSError as exc:
        out.fail(f"cannot read snapshot {path}: {exc.strerror or exc}", "error")
        return
    if stored == actual and not (update and path == legacy):
        return
    if update:
        try:
            write_snapshot(snapshot_path(workflow_file, case), actual)
        except ConfigError as exc:
            out.fail(str(exc), "error")
            return
        if path == legacy:  # moved out of syrupy's directory
            legacy.unlink(missing_ok=True)
        out.status = "updated" if out.status == "passed" else out.status
        return
    if stored is None:
        out.fail(f"no snapshot at {path}; create it with `plait test --update-snapshots`")
        return
    out.fail("outputs differ from the snapshot (update it with `plait test "
             "--update-snapshots` if the change is intended):\n"
             + "\n".join(_snapshot_diff(stored, actual, path.name)))


def _snapshot_diff(stored: str, actual: str, name: str) -> list[str]:
    """The diff of a snapshot and this run's, each multi-line output string split into its
    lines (engine.cassettes.diff); of the texts as they are when the stored one is no JSON or
    differs only in its layout."""
    from engine.cassettes.diff import unified

    names = f"{name} (stored)", f"{name} (this run)"
    try:
        lines = unified(json.loads(stored), json.loads(actual), *names, indent=2)
    except ValueError:
        lines = []
    else:
        if not lines:
            return [f"{name} holds these outputs, but not in the layout plait writes (keys "
                    "sorted, two-space indent, a final newline)"]
    return lines or list(difflib.unified_diff(stored.splitlines(), actual.splitlines(),
                                              *names, lineterm=""))


def stale_snapshots(workflow: Workflow) -> list[tuple[Path, str]]:
    """Snapshots of this workflow file that no case uses (the case was renamed, deleted, or
    set to `snapshot: false`), each with why. ``<stem>.<case>.json``: a case name has no dot,
    so a file of another workflow file in the directory (``<stem>.v2.<case>.json``) is
    never taken for one of this file's."""
    import glob

    stem = workflow.path.stem
    cases = {c.name: c for c in workflow.spec.tests}
    found = []
    for path in sorted((workflow.path.parent / SNAPSHOT_DIR).glob(f"{glob.escape(stem)}.*.json")):
        owner, _, case = path.name.removesuffix(".json").rpartition(".")
        if owner != stem or (case in cases and cases[case].snapshot):
            continue
        why = (f"case {case!r} of {workflow.path} has `snapshot: false`" if case in cases
               else f"no case {case!r} in {workflow.path}")
        found.append((path, why))
    return found


def _read_legacy(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def write_snapshot(path: Path, text: str) -> None:
    """Write a snapshot atomically; a ConfigError that says how to fix an unwritable dir."""
    from engine.atomic import atomic_write

    if _snapshot_dir_is_a_file(path):
        raise _not_a_directory(path)
    try:
        atomic_write(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write snapshot {path}: {exc.strerror or exc}",
                          hint=f"make {path.parent} writable (or run without "
                               "--update-snapshots)") from None


def _snapshot_dir_is_a_file(path: Path) -> bool:
    return path.parent.exists() and not path.parent.is_dir()


def _not_a_directory(path: Path) -> ConfigError:
    return ConfigError(f"cannot use snapshot {path}: {path.parent} is a file, not a directory",
                       hint=f"remove or rename the file {path.parent}: snapshots are kept in a "
                            f"directory of that name")


# ---------------------------------------------------------------- assertions


def check_assertion(spec: AssertionSpec, result: RunResult) -> str | None:
    """None when the assertion holds, else what is wrong."""
    if spec.output is not None and spec.output not in result.outputs:
        return f"the workflow has no output {spec.output!r} (outputs: " \
               f"{', '.join(sorted(result.outputs)) or 'none'})"
    value = result.outputs[spec.output] if spec.output is not None else result.outputs
    label = f"output {spec.output!r}" if spec.output is not None else "the outputs"
    for problem in _value_checks(spec, value, label):
        if problem is not None:
            return problem
    if spec.max_cost is not None and result.cost > spec.max_cost:
        return f"the run cost ${result.cost:.6f}, more than max_cost ${spec.max_cost}"
    if spec.max_steps is not None:
        ran = sum(1 for s in result.steps.values() if s.status in ("succeeded", "failed"))
        if ran > spec.max_steps:
            return f"{ran} steps ran, more than max_steps {spec.max_steps}"
    return None


def _value_checks(spec: AssertionSpec, value: Any, label: str) -> Iterator[str | None]:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           sort_keys=True, default=str)
    if "equals" in spec.model_fields_set and not json_equal(value, spec.equals):
        yield f"{label} is {_short(value)}, expected {_short(spec.equals)}"
    if spec.contains is not None and spec.contains not in text:
        yield f"{label} does not contain {spec.contains!r}: {_short(value)}"
    if spec.matches is not None:
        try:
            found = re.search(spec.matches, text)
        except re.error as exc:
            yield f"`matches` is not a valid regular expression: {exc}"
            return
        if not found:
            yield f"{label} does not match /{spec.matches}/: {_short(value)}"
    if spec.schema_ is not None:
        yield _schema_problem(spec.schema_, value, label)


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON values: true is not 1 and false is not 0 (Python says they are), a string
    is never a number, numbers compare by value (1 equals 1.0: JSON has one number type),
    lists item by item, objects key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    structured = (dict, list, tuple, int, float)
    if isinstance(a, structured) or isinstance(b, structured):
        return False  # a container or a number against a value of another type
    return bool(a == b)  # strings, null


def _schema_problem(schema: dict[str, Any], value: Any, label: str) -> str | None:
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{label} does not match the schema{f' at {where}' if where else ''}: " \
               f"{exc.message}"
    except jsonschema.SchemaError as exc:
        return f"the assertion's schema is invalid: {exc.message}"
    return None


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------- loading


def load_workflow(path: Path) -> Workflow:
    from engine.spec.loader import load

    return load(path)


__all__ = ("CaseResult", "check_assertion", "find_workflows", "json_equal", "load_workflow",
           "run_case", "snapshot_path", "snapshot_text", "stale_snapshots", "write_snapshot")
