"""`plait mcp ...`: inspect and call the MCP servers of a workflow, import Claude configs.

    plait mcp tools FILE [SERVER]
    plait mcp call FILE SERVER.TOOL --args JSON
    plait mcp import claude_desktop_config.json
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import anyio
import click
import yaml

from engine.errors import (
    ConfigError,
    MissingDependencyError,
    PlaitError,
    PolicyViolation,
    SpecError,
    ToolError,
    UnknownToolError,
)
from engine.spec.models import MCPServerSpec
from runners.cli.report import dump_json
from runners.cli.stdout import write_stdout
from runners.gh_text import inert

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _services(path: Path) -> Any:
    """The run services of a checked workflow file, with its secrets loaded: what renders its
    servers' settings (with the input defaults, secrets and environment) and starts them
    under their policies."""
    from engine.executor.context import RunOptions
    from engine.executor.inputs import resolve_inputs
    from engine.executor.services import Services
    from engine.spec.loader import load

    try:
        workflow = load(path)
        inputs = resolve_inputs(workflow.spec.inputs, {})
    except SpecError as exc:
        _fail(exc.format(), EXIT_USAGE)
    except PlaitError as exc:
        _fail(f"{path}: {exc}", EXIT_USAGE)
    services = Services(workflow, RunOptions(), inputs)
    try:
        services.load_secrets()
    except PlaitError as exc:
        _fail(f"{path}: {exc}", EXIT_USAGE)
    if not workflow.spec.mcp_servers:
        _fail(f"{path}: declares no `mcp_servers`", EXIT_USAGE)
    return services


def _runtime(path: Path) -> Any:
    """The servers as a run starts them: each in the sandbox of its policy, its tool calls'
    arguments checked against that policy, its stderr (quoted in errors) masked."""
    services = _services(path)
    try:
        return services.mcp_runtime()
    except PlaitError as exc:
        _fail(f"{path}: {exc}", EXIT_USAGE)


def _run(coro_fn: Any, *args: Any) -> Any:
    try:
        return anyio.run(coro_fn, *args)
    except SpecError as exc:
        _fail(exc.format(), EXIT_USAGE)
    except (UnknownToolError, PolicyViolation) as exc:  # not there, or refused: nothing ran
        _fail(str(exc), EXIT_USAGE)
    except PlaitError as exc:
        _fail(str(exc), EXIT_FAILED)


@click.group(name="mcp")
def group() -> None:
    """Inspect and call the MCP servers of a workflow."""


@group.command("tools")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("server", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def tools_cmd(file: Path, server: str | None, as_json: bool) -> None:
    """List the tools of every server of FILE (or of SERVER only)."""

    failures: list[str] = []

    async def main() -> list[Any]:
        out: list[Any] = []
        async with _runtime(file) as mcp:
            if server is not None:
                return list(await mcp.list_tools(server))
            for name in mcp.manager.names():  # one broken server does not hide the others
                try:
                    out.extend(await mcp.list_tools(name))
                except PlaitError as exc:
                    failures.append(str(exc))
        return out

    tools = _run(main)
    for failure in failures:
        click.echo(f"error: {failure}", err=True)
    if as_json:
        dump_json([{"name": t.qualified_name, "description": t.description,
                    "category": t.category, "tags": list(t.tags),
                    "input_schema": t.input_schema} for t in tools])
        sys.exit(EXIT_FAILED if failures else EXIT_OK)
    if failures and not tools:  # no empty table above the errors
        sys.exit(EXIT_FAILED)
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from engine.state.render import printable

    table = Table("name", "description", box=None, show_edge=False)
    for tool in tools:  # the server's text, shown as it is: no rich markup, no escape codes
        first = (tool.description or "").strip().split("\n")[0]
        table.add_row(Text(printable(tool.qualified_name)), Text(printable(first)))
    console = Console(soft_wrap=False)
    with console.capture() as drawn:
        console.print(table)
    # nor, in a GitHub Actions log, workflow commands (`::error::`, `##[add-mask]`)
    write_stdout(inert(drawn.get()))
    if failures:
        sys.exit(EXIT_FAILED)


@group.command("call")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("tool")
@click.option("--args", "args_json", default="{}", help="The arguments as a JSON object.")
def call_cmd(file: Path, tool: str, args_json: str) -> None:
    """Call SERVER.TOOL of FILE and print its result (exit 1 when the tool fails)."""
    try:
        arguments = json.loads(args_json)
    except ValueError as exc:
        _fail(f"--args is not valid JSON: {exc}", EXIT_USAGE)
    if not isinstance(arguments, dict):
        _fail("--args must be a JSON object, e.g. '{\"path\": \"a.txt\"}'", EXIT_USAGE)
    if "." not in tool:
        _fail(f"'{tool}' is not SERVER.TOOL (e.g. files.read_file)", EXIT_USAGE)

    async def main() -> Any:
        async with _runtime(file) as mcp:
            misfit = await _arguments_misfit(mcp, tool, arguments)
            return misfit if misfit is not None else await mcp.call(tool, arguments)

    result = _run(main)
    if isinstance(result, ToolError):  # the call was never made: a usage error
        _fail(str(result), EXIT_USAGE)
    value = result.value
    if not isinstance(value, str):
        dump_json(value)
        return
    if sys.stdout.isatty():  # the server's text: its escape codes shown, not obeyed
        from engine.state.render import printable

        value = printable(value)
    write_stdout(inert(value) + "\n")


async def _arguments_misfit(mcp: Any, qualified: str,
                            arguments: dict[str, Any]) -> ToolError | None:
    """The error when `arguments` do not fit the tool's input schema (checked before any
    call, so the server never sees them), else None. An unknown or filtered-out tool raises
    UnknownToolError here, as the call itself would."""
    server, _, name = qualified.partition(".")
    await mcp.list_tools(server)
    info = await mcp.registry.get(server, name)
    try:
        mcp.registry.validate_arguments(info, arguments)
    except ToolError as exc:
        return exc
    return None


@group.command("serve")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--transport", type=click.Choice(["stdio", "streamable-http", "sse"]),
              default="stdio", show_default=True,
              help="How clients connect: over stdin/stdout, or HTTP on --host and --port.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on for HTTP transports.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port for HTTP transports (0: any free port, said on stderr).")
@click.option("--state", metavar="PATH",
              help="Run record database for the runs (default: PLAIT_STATE_URL, else "
                   ".plait/runs.db next to FILE).")
def serve_cmd(file: Path, transport: str, host: str, port: int, state: str | None) -> None:
    """Serve the workflow in FILE as an MCP server: one tool, named after the workflow, that
    takes its inputs and returns its outputs."""
    from engine.mcp.runtime import require_sdk
    from runners.mcp_serve import bind_problem, serve

    try:  # serving is the SDK's work: without it, say which extra (not a traceback)
        require_sdk()
    except MissingDependencyError as exc:
        _fail(str(exc), EXIT_USAGE)
    problem = bind_problem(host, port) if transport != "stdio" else None
    if problem:
        _fail(problem, EXIT_USAGE)
    try:
        stopped_by = serve(file, transport=transport, host=host, port=port, state=state)
    except SpecError as exc:
        _fail(exc.format(), EXIT_USAGE)
    except ConfigError as exc:  # a declared secret not set: every call would fail on it
        _fail(str(exc), EXIT_USAGE)
    if stopped_by:  # its runs in flight were interrupted (recorded so, resumable)
        sys.exit(130)


@group.command("import")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--keep-values", is_flag=True,
              help="Copy env values and credential-like header values as they are "
                   "(default: turn them into ${{ secrets.NAME }} references).")
def import_cmd(config: Path, keep_values: bool) -> None:
    """Print plait `mcp_servers:` YAML from a Claude Desktop config's `mcpServers`."""
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{config}: not a readable JSON file: {exc}", EXIT_USAGE)
    block: Any = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not block:
        _fail(f"{config}: has no `mcpServers` object", EXIT_USAGE)
    try:
        servers, secrets = convert_claude(block, keep_values=keep_values)
    except ToolError as exc:
        _fail(f"{config}: {exc}", EXIT_USAGE)
    doc: dict[str, Any] = {}
    if secrets:
        doc["secrets"] = sorted(secrets)
    doc["mcp_servers"] = servers
    if secrets:
        click.echo("# env and credential header values were not copied: export them before "
                   "`plait run`")
        for secret, source in sorted(secrets.items()):
            if secret != source:
                click.echo(f"#   {secret}: " + (source if " " in source else
                                                 f"the value of env var {source}"))
    click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip())


def _name(raw: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", raw)
    return name if re.match(r"^[A-Za-z_]", name) else f"s_{name}"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: header names whose values are credentials
_SECRET_HEADER = re.compile(r"authorization|token|key|secret|password|cookie|credential|auth",
                            re.IGNORECASE)
_AUTH_SCHEME = re.compile(r"^(Bearer|Basic|Token|Bot)\s+\S", re.IGNORECASE)


def _secret_name(raw: str, taken: dict[str, str], source: str | None = None) -> str:
    """A `secrets:` name for ``raw`` (``my-token`` -> ``MY_TOKEN``), distinct from the names
    in ``taken`` (name -> what it stands for: ``source``, by default the env var ``raw``)."""
    source = source or raw
    base = raw if _IDENTIFIER.match(raw) else re.sub(r"\W", "_", raw).upper()
    if not re.match(r"^[A-Za-z_]", base):
        base = f"_{base}"
    name, n = base, 2
    while name in taken and taken[name] != source:
        name, n = f"{base}_{n}", n + 1
    taken[name] = source
    return name


def _headers(server: str, headers: Mapping[str, Any], keep_values: bool,
             taken: dict[str, str]) -> dict[str, str]:
    """Header values that look like credentials become secrets (the scheme, e.g. `Bearer`,
    stays in the value)."""
    out: dict[str, str] = {}
    for key, raw in headers.items():
        value = str(raw)
        if keep_values or not _SECRET_HEADER.search(str(key)) or "${{" in value:
            out[str(key)] = value
            continue
        scheme = _AUTH_SCHEME.match(value)
        prefix = value[:scheme.end() - 1] if scheme else ""
        after = f" after {prefix.strip()!r}" if prefix else ""
        name = _secret_name(f"{server}_{key}".upper().replace("-", "_"), taken,
                            f"the {key} header of server {server}{after}")
        out[str(key)] = f"{prefix}${{{{ secrets.{name} }}}}"
    return out


def convert_claude(block: Mapping[str, Any], *, keep_values: bool = False
                   ) -> tuple[dict[str, Any], dict[str, str]]:
    """plait `mcp_servers` entries (validated) and the secrets they use, from Claude's
    `mcpServers`: secret name -> the env var or server_header it stands for."""
    from pydantic import ValidationError

    out: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for raw_name, entry in block.items():
        if not isinstance(entry, dict):
            raise ToolError(f"mcpServers.{raw_name} is not an object")
        name = _name(str(raw_name))
        server: dict[str, Any] = {}
        kind = str(entry.get("type") or entry.get("transport") or "")
        if entry.get("url"):
            server["url"] = entry["url"]
            if kind == "sse":
                server["transport"] = "sse"
            if entry.get("headers"):
                server["headers"] = _headers(name, entry["headers"], keep_values, secrets)
        else:
            server["command"] = entry.get("command")
            if entry.get("args"):
                server["args"] = [str(a) for a in entry["args"]]
            env = entry.get("env") or {}
            if env:
                server["env"] = {k: str(v) if keep_values else
                                 f"${{{{ secrets.{_secret_name(k, secrets)} }}}}"
                                 for k, v in env.items()}
            if entry.get("cwd"):
                server["cwd"] = entry["cwd"]
        try:
            MCPServerSpec.model_validate(server)
        except ValidationError as exc:
            raise ToolError(f"mcpServers.{raw_name}: {exc.errors()[0]['msg']}") from None
        out[name] = server
    return out, secrets
