"""`plait providers check FILE`: are the workflow's providers usable here?"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import click

from engine.errors import PlaitError
from runners.cli.report import dump_json, print_error


@click.group()
def providers() -> None:
    """Check the LLM providers of a workflow."""


@providers.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--live", is_flag=True,
              help="Also call each provider's health check (makes one request each).")
@click.option("--json", "as_json", is_flag=True)
def check(file: Path, live: bool, as_json: bool) -> None:
    """Keys, options and fallbacks of every provider in FILE; with --live, a health check."""
    from engine.executor.context import RunOptions
    from engine.executor.inputs import resolve_inputs
    from engine.executor.services import Services
    from engine.spec.loader import load

    try:
        workflow = load(file)
        services = Services(workflow, RunOptions(), resolve_inputs(workflow.spec.inputs, {}))
        services.load_secrets()
        registry = services.providers()
        registry.check()
    except PlaitError as exc:
        print_error(exc)
        sys.exit(2)
    health = anyio.run(registry.health_check_all) if live else {}
    specs = {name: registry.spec(name) for name in workflow.spec.providers}
    rows = [{"name": name, "kind": spec.kind, "model": spec.model,
             "fallback": list(spec.fallback), "healthy": health.get(name)}
            for name, spec in specs.items()]
    if as_json:
        dump_json(rows)
    else:
        for row in rows:
            state = "" if row["healthy"] is None else (
                " healthy" if row["healthy"] else " UNHEALTHY")
            fallback = f" -> {', '.join(row['fallback'])}" if row["fallback"] else ""
            click.echo(f"{row['name']}: {row['kind']} {row['model'] or ''}{fallback}: ok{state}")
    if live and not all(health.values()):
        sys.exit(1)
