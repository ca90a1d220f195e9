"""`plait validate`, `plait graph`, `plait schema`: nothing here runs a step."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import SpecError
from runners.cli.report import dump_json, print_spec_error
from runners.words import count


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def validate(files: tuple[Path, ...], as_json: bool) -> None:
    """Check workflow FILES, and the sub-workflow files their `workflow:` steps call, and
    print every problem as file:line:col: message. Nothing is run."""
    from engine.spec.loader import load

    results = []
    failed = False
    for file in files:
        try:
            wf = load(file)
        except SpecError as exc:
            failed = True
            results.append({"file": str(file), "valid": False,
                            "errors": [i.to_dict() for i in exc.issues]})
            if not as_json:
                print_spec_error(exc)
            continue
        results.append({"file": str(file), "valid": True, "steps": len(wf.spec.steps)})
        if not as_json:
            click.echo(f"{file}: ok ({count(len(wf.spec.steps), 'step')})")
    if as_json:
        dump_json(results if len(results) > 1 else results[0])
    if failed:
        sys.exit(2)


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot", "json"]),
              default="mermaid", show_default=True)
def graph(file: Path, fmt: str) -> None:
    """Draw the step graph of FILE (nothing is run): an edge for every `needs:` and every
    `steps.X` a step's fields refer to.

    mermaid and dot print a flowchart (render dot with `dot -Tsvg`). json prints `nodes` (id,
    kind, layer), `edges` (from, to, and `fields`: the step's fields that make the edge,
    `needs` included), `layers` (steps that can run at the same time, in order) and
    `critical_path` (the longest chain of dependent steps). A `workflow:` step is one node;
    run `plait graph` on its file to see inside it. Exit 2 when FILE is invalid.
    """
    from engine.graph import render_dot, render_json, render_mermaid
    from engine.spec.loader import load

    try:
        wf = load(file)
    except SpecError as exc:
        print_spec_error(exc)
        sys.exit(2)
    render = {"mermaid": render_mermaid, "dot": render_dot, "json": render_json}[fmt]
    click.echo(render(wf.graph, kinds=wf.kinds()), nl=False)


@click.command()
def schema() -> None:
    """Print the JSON Schema (Draft 2020-12) of workflow files."""
    from engine.spec.schema import workflow_schema_text

    click.echo(workflow_schema_text(), nl=False)
