"""Run one workflow once per row of a JSONL file: each row is a run's inputs, each result a
line of JSONL (in row order), every run recorded like any other.

`local` runs the rows in this process with bounded concurrency. `ray` hands each row to a Ray
task (the `ray` package must be installed; a local Ray runtime is started if none is
running), so a batch can use a cluster.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import InputError, MissingDependencyError, PlaitError
from engine.jsontext import DuplicateKey, loads_strict

if TYPE_CHECKING:
    from engine.executor import RunControl


@dataclass(frozen=True)
class Row:
    line: int
    inputs: dict[str, Any]


def read_rows(path: Path) -> list[Row]:
    """Every row, or an InputError naming the first bad line (nothing runs then)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}",
                         hint="check the path; `--inputs -` reads the rows from stdin") from None
    return parse_rows(data, str(path))


def parse_rows(data: bytes, name: str) -> list[Row]:
    """The rows of JSONL text (`name` says where it came from in errors: a path, or
    `<stdin>`); an InputError names the first bad line by its number."""
    rows = []
    if data.startswith(codecs.BOM_UTF8):  # a byte-order mark, as some Windows editors write
        data = data[len(codecs.BOM_UTF8):]
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{name}:{number}: not UTF-8 text (byte {exc.start + 1})",
                             hint="save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            value = loads_strict(line)
        except ValueError as exc:
            if isinstance(exc, DuplicateKey):
                raise InputError(f"{name}:{number}: {exc}",
                                 hint="give each input once in a row") from None
            raise InputError(f"{name}:{number}: not JSON: {exc}",
                             hint="each line must be a whole JSON object (JSON Lines); for "
                             "one run with a JSON file use plait run FILE --inputs FILE.json"
                             ) from None
        except RecursionError:
            raise InputError(f"{name}:{number}: nested too deeply to read",
                             hint="pass values with fewer levels of nesting") from None
        if not isinstance(value, dict):
            raise InputError(f"{name}:{number}: each line must be a JSON object of inputs")
        rows.append(Row(number, value))
    return rows


class BatchControl:
    """Stops a local batch from outside (Ctrl-C): its runs in flight are interrupted (recorded
    `interrupted`, resumable) and rows not yet started are not run."""

    def __init__(self) -> None:
        self.interrupted = False
        self._runs: set[RunControl] = set()

    def interrupt(self) -> None:
        self.interrupted = True
        for control in list(self._runs):
            control.interrupt()


def not_started(row: Row) -> dict[str, Any]:
    """The result of a row the batch was interrupted before."""
    return {"line": row.line, "run_id": None, "status": "interrupted", "outputs": None,
            "error": {"type": "Interrupted", "kind": "interrupted",
                      "message": "the batch was interrupted before this row started"},
            "cost": 0.0}


def summary(row: Row, result: Any = None, error: BaseException | None = None) -> dict[str, Any]:
    if error is not None:  # the run never started (bad inputs): the same fields, empty
        detail = error.to_dict() if isinstance(error, PlaitError) else {"message": str(error)}
        if isinstance(error, InputError) and error.context.get("missing"):  # not `-i`: the row
            names = error.context["missing"].split(", ")
            example = ", ".join(f"{json.dumps(n)}: ..." for n in names)
            detail["hint"] = (f"add {'it' if len(names) == 1 else 'them'} to the row's JSON "
                              f"object, e.g. {{{example}}}")
        return {"line": row.line, "run_id": None, "status": "error", "outputs": None,
                "error": detail, "cost": 0.0}
    return {"line": row.line, "run_id": result.run_id, "status": result.status,
            "outputs": result.outputs, "error": result.error, "cost": result.cost}


async def run_local(path: Path, rows: list[Row], *, concurrency: int,
                    options: dict[str, Any],
                    control: BatchControl | None = None,
                    on_result: Callable[[dict[str, Any]], None] | None = None,
                    ) -> list[dict[str, Any]]:
    """Every row's result, in row order. With `on_result`, it is given each one as soon as
    it and every row before it are done (so a long batch shows its progress in order) and
    none is kept (the list returned is empty): a batch of a million rows does not hold a
    million results once they are written."""
    from engine.executor import RunControl, run_workflow
    from engine.mcp.shared import SharedRuntimes
    from engine.spec.loader import load

    workflow = load(path)
    results: list[dict[str, Any] | None] = [None] * len(rows)
    pool = SharedRuntimes()  # MCP servers start once for the whole batch, not once per row
    batch = control or BatchControl()
    given = 0  # results[:given] went to on_result

    def done(index: int, result: dict[str, Any]) -> None:
        nonlocal given
        results[index] = result
        while on_result is not None and given < len(results):
            ready = results[given]
            if ready is None:
                break
            on_result(ready)
            results[given] = None
            given += 1

    async def one(index: int, row: Row) -> None:
        if batch.interrupted:
            done(index, not_started(row))
            return
        run = RunControl()
        batch._runs.add(run)
        try:
            result = await run_workflow(workflow, row.inputs, mcp_pool=pool, control=run,
                                        **options)
            outcome = summary(row, result)
        except Exception as exc:
            outcome = summary(row, error=exc)
        finally:
            batch._runs.discard(run)
        done(index, outcome)

    # `concurrency` workers take the rows in order: a task per row, all started at once,
    # held a task (and a limiter waiter) per row, over a GB for 200,000 rows
    todo = iter(enumerate(rows))

    async def worker() -> None:
        for index, row in todo:
            await one(index, row)

    async with pool, anyio.create_task_group() as tg:
        for _ in range(min(concurrency, len(rows))):
            tg.start_soon(worker)
    return [r for r in results if r is not None]


def run_ray(path: Path, rows: list[Row], *, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        raise MissingDependencyError("ray", "ray") from None

    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)

    @ray.remote  # type: ignore[untyped-decorator]
    def one(workflow_path: str, row: Row) -> dict[str, Any]:
        from engine.executor import run_workflow
        from engine.spec.loader import load

        try:
            result = anyio.run(lambda: run_workflow(load(workflow_path), row.inputs, **options))
        except Exception as exc:
            return summary(row, error=exc)
        return summary(row, result)

    futures = [one.remote(str(path.resolve()), row) for row in rows]
    yield from ray.get(futures)
