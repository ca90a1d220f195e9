"""`plait batch FILE --inputs rows.jsonl`: one run per row, results as JSONL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import click

from engine.errors import PlaitError
from runners.cli.report import print_error


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--inputs", "rows_file", required=True, type=click.Path(path_type=Path),
              help="JSONL: one JSON object of inputs per line.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="Where the runs execute.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="Runs at once (local executor).")
@click.option("--output", type=click.Path(path_type=Path),
              help="Write the results JSONL here instead of stdout.")
@click.option("--state", "state_location", metavar="PATH", help="Run record database.")
def batch(file: Path, rows_file: Path, executor: str, concurrency: int, output: Path | None,
          state_location: str | None) -> None:
    """Run FILE once per row of a JSONL file; print one JSON result per row, in row order.
    Exit 1 if any run did not succeed."""
    from runners.batch import read_rows, run_local, run_ray

    options: dict[str, Any] = {"state_location": state_location}
    try:
        from engine.spec.loader import load

        load(file)  # a bad workflow is reported once, before any row runs
        rows = read_rows(rows_file)
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    sink = output.open("w", encoding="utf-8") if output else sys.stdout
    failed = 0
    try:
        if executor == "ray":
            results = list(run_ray(file, rows, options=options))
        else:
            results = anyio.run(lambda: run_local(file, rows, concurrency=concurrency,
                                                  options=options))
        for result in results:
            failed += result["status"] != "succeeded"
            sink.write(json.dumps(result, ensure_ascii=False, default=str) + "\n")
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    finally:
        if output:
            sink.close()
    click.echo(f"{len(rows) - failed} of {len(rows)} runs succeeded", err=True)
    sys.exit(1 if failed else 0)
