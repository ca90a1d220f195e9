"""The plait pytest plugin (entry point ``pytest11: plait``).

    def test_fallback(plait_run, snapshot):
        result = plait_run("fallback.yaml")          # offline, from the recorded cassette
        assert result.ok
        assert result.outputs == snapshot            # syrupy

``plait_run(path, inputs=None, cassette=None, **options)`` loads the workflow (``path``
relative to the test file), runs it under replay from ``cassette`` (a directory relative to
the workflow file; by default the cassette of the workflow's first `tests:` case with the
same inputs, defaults filled in, else ``cassettes/<test name>``) with its run records in a
temp dir, and returns the RunResult. A call missing from the cassette fails the run
(ReplayMiss) and the result is returned; recorded calls that go unused in a run that
succeeded, or a cassette recorded from another version of the workflow, fail the test.

``pytest --plait-record`` runs live instead and re-records every cassette it uses (once a
session: a later test replays it), but never one of a `tests:` case that runs with other
inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from engine.executor.result import RunResult
    from engine.spec.workflow import Workflow

PlaitRun = Callable[..., "RunResult"]
#: with --plait-record, the cassette files recorded so far in the session: a later test that
#: uses one replays it, else its live run would overwrite the reply an earlier test's snapshot
#: was taken from
_RECORDED = pytest.StashKey[set[Path]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plait", "plait workflows")
    group.addoption("--plait-record", action="store_true", default=False,
                    help="Run plait workflows live and re-record their cassettes.")


def default_cassette(workflow: Workflow, inputs: Mapping[str, Any] | None,
                     test_name: str) -> Path:
    """The cassette of the first `tests:` case run with the same inputs (defaults filled in,
    so no inputs matches a case without `inputs:`), else ``cassettes/<test name>``."""
    wanted = _full_inputs(workflow, inputs)
    for case in workflow.spec.tests:
        if case.cassette and _full_inputs(workflow, case.inputs) == wanted:
            return workflow.base_dir / case.cassette
    return workflow.base_dir / "cassettes" / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)


def other_case(workflow: Workflow, directory: Path,
               inputs: Mapping[str, Any] | None) -> str | None:
    """The name of a `tests:` case whose cassette is in ``directory`` but which runs with
    other inputs: re-recording there would overwrite that case's cassette."""
    wanted = _full_inputs(workflow, inputs)
    for case in workflow.spec.tests:
        if (case.cassette and (workflow.base_dir / case.cassette).resolve() == directory.resolve()
                and _full_inputs(workflow, case.inputs) != wanted):
            return case.name
    return None


def _full_inputs(workflow: Workflow, inputs: Mapping[str, Any] | None) -> dict[str, Any]:
    from engine.errors import PlaitError
    from engine.executor.inputs import resolve_inputs

    try:
        return resolve_inputs(workflow.spec.inputs, dict(inputs or {}))
    except PlaitError:  # the run will say what is wrong with them
        return dict(inputs or {})


@pytest.fixture
def plait_run(request: pytest.FixtureRequest, tmp_path: Path) -> PlaitRun:
    """Run a workflow offline from its cassette (or re-record it with --plait-record)."""
    record = bool(request.config.getoption("plait_record"))
    here = Path(str(request.path)).parent
    runs = 0

    def run(path: str | Path, inputs: Mapping[str, Any] | None = None,
            cassette: str | Path | None = None, **options: Any) -> RunResult:
        nonlocal runs
        import anyio

        from engine.cassettes import CassetteError, CassetteNotSaved, collect_reports
        from engine.cassettes.format import cassette_path
        from engine.executor import run_workflow
        from engine.spec.loader import load

        workflow = load(here / path)
        directory = (workflow.base_dir / cassette) if cassette is not None else \
            default_cassette(workflow, inputs, request.node.name)
        if record and (case := other_case(workflow, directory, inputs)) is not None:
            pytest.fail(f"--plait-record would overwrite the cassette in {directory} of case "
                        f"{case!r} of {workflow.path}, which runs with other inputs; pass "
                        "this test a cassette= directory of its own", pytrace=False)
        runs += 1
        options.setdefault("state_location", tmp_path / f"plait-runs-{runs}.db")
        recorded = request.config.stash.setdefault(_RECORDED, set())
        tape = cassette_path(directory.resolve(), workflow.name)
        live = record and tape not in recorded
        options["record_dir" if live else "replay_dir"] = directory
        failure = None  # failed outside the `except`: pytest would print the error twice
        with collect_reports() as reports:
            try:
                result: RunResult = anyio.run(_run, run_workflow, workflow,
                                              dict(inputs or {}), options)
            except CassetteNotSaved as exc:
                failure = str(exc)
            except CassetteError as exc:
                failure = f"{exc.message}; record it with `pytest --plait-record`"
        if live and tape.is_file():
            recorded.add(tape)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
        for report in reports:
            if report.spec_mismatch:
                pytest.fail(f"{report.spec_mismatch}; re-record with pytest --plait-record",
                            pytrace=False)
            if report.unused and result.ok:  # a failed run (a miss) is the test's to judge
                pytest.fail(f"cassette {report.path}: {len(report.unused)} recorded "
                            f"interaction(s) were not used: {'; '.join(report.unused[:5])}",
                            pytrace=False)
        return result

    return run


async def _run(run_workflow: Any, workflow: Any, inputs: dict[str, Any],
               options: dict[str, Any]) -> Any:
    return await run_workflow(workflow, inputs, **options)
