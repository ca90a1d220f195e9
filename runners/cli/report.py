"""How the CLI prints errors: `file:line:col: message` for people, editors and CI; JSON on
request; GitHub annotations when GITHUB_ACTIONS is set."""

from __future__ import annotations

import json
import shlex
from typing import Any

import click

from engine.errors import PlaitError, SpecError, SpecIssue
from engine.jsontext import escape_surrogates, finite
from runners.cli.stdout import write_stdout
from runners.gh_text import in_github_actions, inert, inert_json


def annotate(issue: SpecIssue) -> str:
    from runners.reporters.github import escape_data, escape_property, workspace_path

    loc = issue.location
    props = f"file={escape_property(workspace_path(str(loc.file)))}"
    if loc.line:
        props += f",line={loc.line},col={loc.column}"
    hint = f" ({issue.hint})" if issue.hint else ""
    return f"::error {props}::{escape_data(issue.message + hint)}"


def print_spec_error(error: SpecError) -> None:
    for issue in error.issues:
        click.echo(inert(issue.format()), err=True)
        if in_github_actions():
            click.echo(annotate(issue))


def print_error(error: BaseException) -> None:
    """One error for a person: what, where, how to fix. It may quote what a user, a CI job or
    a file gave (an input's value): under GitHub Actions made inert."""
    if isinstance(error, SpecError):
        print_spec_error(error)
        return
    text = str(error) if isinstance(error, PlaitError) else f"{type(error).__name__}: {error}"
    click.echo(inert(f"error: {text}"), err=True)


def dump_json(data: Any) -> None:
    write_stdout(inert_json(json_text(data)) + "\n")


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """Strict JSON, as jq and JSON.parse read it: a NaN or infinite float (an output of
    `1e308 * 10`, a tool's or model's JSON holding Infinity, which Python reads), which
    Python would write as a bare NaN or Infinity, is written as the string "NaN",
    "Infinity" or "-Infinity" (as trace files write them). A lone surrogate (JSON's "\\ud800"
    in a model's reply decodes to one) is written as that escape: raw, it has no UTF-8 form."""
    try:
        text = json.dumps(data, indent=indent, default=str, ensure_ascii=False,
                          allow_nan=False)
    except ValueError:
        text = json.dumps(finite(data), indent=indent, default=str, ensure_ascii=False)
    return escape_surrogates(text)


def state_option(db_path: str) -> str:
    """What `plait runs show` and `plait resume` need after the run id to find the run record
    database `db_path` when started from this directory: nothing when they find it by
    themselves, else ` --state PATH`."""
    from engine.state.location import resolve_location

    try:
        default = resolve_location(None)
    except PlaitError:
        default = None
    return "" if db_path == default else f" --state {shlex.quote(db_path)}"
