"""`plait`: a thin command line over the engine. Subcommands live in their own modules and are
imported only when used, so `plait validate` stays fast."""

from __future__ import annotations

import errno
import importlib
import importlib.util
import sys
from typing import Any

import click

from runners.cli.stdout import StdoutError, give_up_stdout, mark_stdout_errors, stdout_error

#: name -> "module:attribute" of subcommands defined elsewhere
_LAZY = {
    "validate": "runners.cli.spec_cmds:validate",
    "graph": "runners.cli.spec_cmds:graph",
    "schema": "runners.cli.spec_cmds:schema",
    "run": "runners.cli.run_cmd:run",
    "resume": "runners.cli.run_cmd:resume",
    "runs": "runners.cli.runs_cmd:runs",
    "mcp": "runners.cli.mcp:group",
    "schedule": "runners.cli.schedule:command",
    "providers": "runners.cli.providers_cmd:providers",
    "test": "runners.cli.test_cmd:test",
    "batch": "runners.cli.batch_cmd:batch",
}

_HELP = {
    "validate": "Check workflow files; print every error as file:line:col.",
    "graph": "Draw a workflow's step graph (mermaid, dot or json).",
    "schema": "Print the JSON Schema of workflow files.",
    "run": "Run a workflow.",
    "resume": "Resume an interrupted or failed run.",
    "runs": "List and inspect recorded runs.",
    "mcp": "List and call MCP tools; import Claude Desktop config.",
    "schedule": "Run workflows on their `on.schedule` cron triggers.",
    "providers": "Check the LLM providers of a workflow.",
    "test": "Run the test cases of workflows offline against snapshots.",
    "batch": "Run a workflow once per row of a JSONL file.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in _LAZY if _available(name))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _LAZY.get(cmd_name)
        if target is None or not _available(cmd_name):
            return None
        module, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        """Ctrl-C in any command exits 130 (click's own handling says "Aborted!", exit 1)."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            raise click.exceptions.Exit(130) from None
        except StdoutError as exc:  # stdout on a full disk, or closed: not a traceback
            give_up_stdout()
            if exc.errno != errno.EPIPE:  # `| head`: the reader had what it wanted
                click.echo(f"error: cannot write to stdout: {stdout_error(exc)}", err=True)
            raise click.exceptions.Exit(1) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _available(name: str) -> bool:
    module = _LAZY[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("plait")
    except PackageNotFoundError:
        return "0+unknown"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"plait {_version()}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="Show the version and exit.")
def cli() -> None:
    """plait: declarative LLM and MCP workflows.

    Exit codes: 0 ok, 1 the run failed (or its --record cassette could not be saved, or
    stdout could not be written), 2 invalid spec, inputs or usage (nothing ran), 130
    interrupted.
    """


def main(argv: list[str] | None = None) -> Any:
    mark_stdout_errors()
    try:
        return cli.main(args=argv, prog_name="plait", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interrupted outside a run
        sys.exit(130)


if __name__ == "__main__":
    main()
