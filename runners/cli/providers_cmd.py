"""`plait providers check FILE`: are the workflow's providers usable here?"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import anyio
import click

from engine.errors import PlaitError, SpecError
from runners.cli.report import dump_json


@click.group()
def providers() -> None:
    """Check the LLM providers of a workflow."""


@providers.command("check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--live", is_flag=True,
              help="Also call each provider's health check (makes one request each).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the providers as JSON; problems as {\"ok\": false, \"problems\": [...]}.")
def check(file: Path, live: bool, as_json: bool) -> None:
    """Keys, SDKs, options and fallbacks of every provider in FILE; with --live, a health
    check."""
    from engine.executor.context import RunOptions
    from engine.executor.inputs import resolve_inputs
    from engine.executor.services import Services
    from engine.spec.loader import load

    try:
        workflow = load(file)
        services = Services(workflow, RunOptions(), resolve_inputs(workflow.spec.inputs, {}))
        services.load_secrets()
        registry = services.providers()
        problems = registry.problems()
    except SpecError as exc:
        problems = [issue.format() for issue in exc.issues]
    except PlaitError as exc:
        problems = [str(exc)]
    if problems:
        _refuse(problems, as_json)
    health = anyio.run(registry.health_check_all) if live else {}
    specs = {name: registry.spec(name) for name in workflow.spec.providers}
    rows = [{"name": name, "kind": spec.kind, "model": spec.model,
             "fallback": list(spec.fallback), "healthy": health.get(name),
             **({"error": registry.health_error(name)} if health.get(name) is False else {})}
            for name, spec in specs.items()]
    if as_json:
        dump_json(rows)
    else:
        for row in rows:
            state = "" if row["healthy"] is None else (
                " healthy" if row["healthy"] else f" UNHEALTHY: {row['error']}")
            fallback = f" -> {', '.join(row['fallback'])}" if row["fallback"] else ""
            model = f" {row['model']}" if row["model"] else ""
            click.echo(f"{row['name']}: {row['kind']}{model}{fallback}: ok{state}")
    if live and not all(health.values()):
        sys.exit(1)


def _refuse(problems: list[str], as_json: bool) -> NoReturn:
    """Exit 2 with every problem: one per line on stderr, or as JSON on stdout."""
    if as_json:
        dump_json({"ok": False, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
    sys.exit(2)
