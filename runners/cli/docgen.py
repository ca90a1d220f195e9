"""docs/cli.md, generated from the commands' own --help (a test keeps the file in sync)."""

from __future__ import annotations

import click

from runners.cli.main import cli


def _help(command: click.Command, path: list[str],
          parent: click.Context | None = None) -> list[str]:
    # each context under its parent, with the command's own settings, as `plait ... --help`
    # makes them: the help option is then `-h, --help`, as the commands really take it
    with click.Context(command, info_name=path[-1], parent=parent, terminal_width=100,
                       **command.context_settings) as ctx:
        text = command.get_help(ctx)
        out = [f"## `{' '.join(path)}`", "", "```", text, "```", ""]
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is not None:
                    out += _help(sub, [*path, name], ctx)
    return out


def cli_reference() -> str:
    lines = ["# CLI reference", "",
             "Generated from `plait --help` by `python -m runners.cli.docgen`; a test fails when "
             "it drifts.", "", "Exit codes: 0 ok, 1 the run failed (a step failed, its record "
             "could not be written after it started, or a `--record` cassette could not be "
             "saved when it ended; or its result could not be written to stdout), 2 invalid "
             "spec, inputs or usage (nothing ran), "
             "130 interrupted.", ""]
    return "\n".join(lines + _help(cli, ["plait"])).rstrip() + "\n"


if __name__ == "__main__":
    print(cli_reference(), end="")
