"""`plait mcp serve FILE`: a workflow as an MCP server. One tool, named after the workflow,
takes the workflow's inputs (typed, with their defaults and descriptions) and returns its
outputs; every call is a full, recorded run."""

from __future__ import annotations

import inspect
import keyword
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import anyio.abc
from pydantic import Field

from engine.errors import PlaitError
from engine.jsontext import shown
from runners.stop_signals import Terminal, first_stop_signal, stop_signals

_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool,
                          "object": dict[str, Any], "array": list[Any]}


def tool_name(workflow_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", workflow_name)[:64]


def _parameter_names(names: list[str]) -> dict[str, str]:
    """Input name -> the Python parameter that carries it. An input whose name is no plain
    identifier (`max-items`, `class`, `_private`), or a name pydantic keeps for itself
    (`model_config`, `copy`), gets a stand-in, the input's name kept as the
    argument's alias, so the client still sees and sends `max-items`."""
    from pydantic import BaseModel

    taken = set(names)
    out: dict[str, str] = {}
    for index, name in enumerate(names):
        plain = (name.isidentifier() and not keyword.iskeyword(name)
                 and not name.startswith(("_", "model_")) and not hasattr(BaseModel, name))
        safe = name if plain else f"input_{index}"
        while not plain and safe in taken:
            safe += "_"
        taken.add(safe)
        out[name] = safe
    return out


def _signature(workflow: Any) -> inspect.Signature:
    params = []
    inputs = workflow.spec.inputs
    for name, safe in _parameter_names(list(inputs)).items():
        spec = inputs[name]
        kind: Any = _TYPES[spec.type]
        if spec.enum:
            kind = Literal[tuple(spec.enum)]
        default = inspect.Parameter.empty if spec.is_required else spec.default
        if default is None:  # optional, no default: null is "not given", as on the CLI
            kind = kind | None
        field = Field(description=spec.description or name, title=name,
                      alias=None if safe == name else name)
        params.append(inspect.Parameter(safe, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=Annotated[kind, field]))
    return inspect.Signature(params, return_annotation=dict[str, Any])


def _checked_by_plait(tool: Any) -> Any:
    """`tool` with the schema it advertises saying that only the workflow's inputs are
    arguments (`additionalProperties: false`), but whose arguments reach the tool function as
    the client sent them: plait checks them there (`check_arguments`), in the words of every
    other input error, instead of pydantic converting them (`"2"` into 2) or refusing them in
    its own words (`Input should be a valid integer`, `Extra inputs are not permitted`)."""
    from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
    from pydantic import ConfigDict

    class Unconverted(FuncMetadata):
        def validate_arguments(self, arguments_to_validate: dict[str, Any]) -> dict[str, Any]:
            return dict(arguments_to_validate)

    loose = tool.fn_metadata.arg_model
    strict: Any = type(loose.__name__, (loose,), {
        "__module__": __name__,
        "model_config": ConfigDict(extra="forbid", arbitrary_types_allowed=True)})
    meta = tool.fn_metadata
    return tool.model_copy(update={
        "parameters": strict.model_json_schema(by_alias=True),
        "fn_metadata": Unconverted(arg_model=loose, output_schema=meta.output_schema,
                                   output_model=meta.output_model,
                                   wrap_output=meta.wrap_output)})


def check_arguments(workflow: Any, arguments: dict[str, Any]) -> None:
    """Refuse arguments that are not the workflow's inputs as a run would (the checks and
    words of engine.executor.inputs: JSON type names, values as JSON), with hints for a
    client rather than for the command line. Raises InputError."""
    from engine.errors import InputError
    from engine.executor.inputs import resolve_inputs

    try:
        resolve_inputs(workflow.spec.inputs, arguments)
    except InputError as exc:
        missing = exc.context.get("missing")
        if not missing:
            raise
        names = [name.strip() for name in str(missing).split(",")]
        inputs = workflow.spec.inputs
        example = ", ".join(f"{shown(n)}: {_EXAMPLES[inputs[n].type]}" for n in names)
        raise InputError(exc.message, missing=missing,
                         hint=f"give {'them' if len(names) > 1 else 'it'} in the call's "
                              f"arguments, e.g. {{{example}}} (the tool's input schema "
                              "lists its arguments)") from None


_EXAMPLES = {"string": '"..."', "integer": "3", "number": "2.5", "boolean": "true",
             "object": "{}", "array": "[]"}


def failure_text(result: Any) -> str:
    """What a client is told about a run that did not succeed: its id, the step that failed
    and that step's error (with its hint), e.g. `run ID failed: step fetch: ...`."""
    error = result.error or {}
    step = f"step {error['step']}: " if error.get("step") else ""
    hint = f" (hint: {error['hint']})" if error.get("hint") else ""
    return (f"run {result.run_id} {result.status}: {step}"
            f"{error.get('message', 'no error recorded')}{hint}")


class Activity:
    """What a served workflow has under way: runs in flight, and whether the MCP servers its
    runs share are up (their clean-up is done when neither is)."""

    def __init__(self) -> None:
        self.runs = 0
        self.pool_open = False

    @property
    def busy(self) -> bool:
        return self.runs > 0 or self.pool_open


def build_server(path: Path, *, state: str | None = None, share_servers: bool = False,
                 activity: Activity | None = None) -> Any:
    """An MCPServer whose one tool runs the workflow in `path`. With `share_servers` the
    workflow's own MCP servers stay up across calls for the life of the server process.
    `activity` is kept up to date with what the server has under way."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.mcpserver.tools import Tool

    from engine.executor import run_workflow
    from engine.mcp.shared import SharedRuntimes
    from engine.secrets import load_secrets
    from engine.spec.loader import load

    workflow = load(path)  # fail now, with located errors, not at the first call
    # as does a declared secret that is not set: every call would fail on it
    load_secrets(workflow.spec.secrets, dotenv_path=workflow.base_dir / ".env")
    shared: dict[str, SharedRuntimes] = {}
    now = activity or Activity()

    @asynccontextmanager
    async def lifespan(_server: Any) -> AsyncIterator[None]:
        now.pool_open = True
        try:
            async with SharedRuntimes() as pool:
                shared["pool"] = pool
                try:
                    yield None
                finally:
                    shared.clear()
        finally:
            now.pool_open = False

    async def run_tool(**inputs: Any) -> dict[str, Any]:
        try:
            check_arguments(workflow, inputs)  # nothing runs, nothing is recorded
        except PlaitError as exc:
            raise ToolError(str(exc)) from exc
        now.runs += 1
        try:
            # the workflow loaded at start, whose inputs the tool's schema advertises and
            # check_arguments checked: a file edited since is not half taken up (its new
            # inputs refusing the arguments the client was told to send)
            result = await run_workflow(workflow, inputs, state_location=state,
                                        mcp_pool=shared.get("pool"))
        except PlaitError as exc:
            raise ToolError(str(exc)) from exc
        finally:
            now.runs -= 1
        if not result.ok:
            raise ToolError(failure_text(result))
        return dict(result.outputs)

    run_tool.__signature__ = _signature(workflow)  # type: ignore[attr-defined]
    run_tool.__name__ = tool_name(workflow.name)
    tool = _checked_by_plait(Tool.from_function(
        run_tool, name=tool_name(workflow.name),
        description=workflow.spec.description or f"Run the {workflow.name} workflow and "
        "return its outputs."))
    return MCPServer(f"plait-{workflow.name}", tools=[tool],
                     lifespan=lifespan if share_servers else None)


def bind_problem(host: str, port: int) -> str | None:
    """Why the HTTP server could not listen on host:port (None: it can), checked before the
    server starts so a busy port is one line, not a page of uvicorn logs."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot listen on {host!r}: not a known address ({exc}) (hint: --host)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use (hint: --port)"
            return f"cannot listen on {host} port {port}: {exc.strerror} (hint: --host, --port)"
    return None


def exposure_warning(host: str) -> str | None:
    """The warning for an HTTP server listening beyond this machine (None for a loopback
    address): the endpoint has no authentication, so anyone who can reach the port can run
    the workflow, with its providers' keys and its commands."""
    import ipaddress

    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return None
    except ValueError:
        pass  # a name: where it points is not known here
    return (f"plait mcp serve: warning: listening on {host}, beyond this machine: the endpoint "
            "has no authentication, so anyone who can reach it can run the workflow (with "
            "its keys and commands); the default --host 127.0.0.1 serves this machine only")


#: how long a stopped server waits for its runs and MCP servers to wind down
STOP_GRACE = 15.0


def serve(path: Path, *, transport: str, host: str, port: int, state: str | None) -> str | None:
    """Serve until the client goes (stdio) or a signal stops the server: the name of that
    signal (SIGINT, SIGTERM), said on stderr, else None. Either way the runs in flight are
    cancelled first, so their records end `interrupted` (resumable), not left `running`."""
    # over stdio the process serves one client: its workflow's servers can stay up between
    # calls (over HTTP a lifespan is per session, so each call starts its own)
    activity = Activity()
    server = build_server(path, state=state, share_servers=transport == "stdio",
                          activity=activity)
    if transport == "stdio":
        stopped = anyio.run(_stdio_until_signal, server, activity)
    else:
        exposed = exposure_warning(host)
        if exposed is not None:
            print(exposed, file=sys.stderr, flush=True)
        stopped = _http_until_signal(server, transport, host, port)
    if stopped:
        print(f"plait mcp serve: stopped by {stopped}", file=sys.stderr, flush=True)
    return stopped


def _http_until_signal(server: Any, transport: str, host: str, port: int) -> str | None:
    stopped: list[str] = []
    terminal = Terminal()

    def interrupt(signum: int, _frame: object) -> None:
        stopped.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    def hang_up(signum: int, frame: Any) -> None:
        # uvicorn takes no SIGHUP: stop as on SIGTERM, through whoever handles that now
        # (uvicorn, serving; else `interrupt`), not killed with the runs left `running`
        terminal.stopped_by(signum)  # its shutdown lines must not fail on a closed terminal
        stopped.append(signal.Signals(signum).name)
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler):
            handler(signal.SIGTERM, frame)

    # uvicorn shuts down gracefully on SIGINT/SIGTERM (cancelling the runs in flight), then
    # raises the signal again: into this handler, not the default one that would kill the
    # process with no word (exit 143); a signal during start-up lands here too
    previous = {sig: signal.signal(sig, interrupt if sig != getattr(signal, "SIGHUP", None)
                                   else hang_up) for sig in stop_signals()}
    try:
        server.run(transport, host=host, port=port)
    except KeyboardInterrupt:
        stopped.append("SIGINT")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stopped[0] if stopped else None


async def _stdio_until_signal(server: Any, activity: Activity) -> str | None:
    stopped: list[str] = []
    serving = anyio.CancelScope()
    async with anyio.create_task_group() as tg:

        async def watch(*, task_status: anyio.abc.TaskStatus[None]) -> None:
            stopped.append(await first_stop_signal(task_status=task_status))
            serving.cancel()
            with anyio.move_on_after(STOP_GRACE):  # the runs' records closed, servers stopped
                while activity.busy:
                    await anyio.sleep(0.05)
            # the SDK reads stdin in a thread that only returns when the client writes or
            # closes it (a terminal may never): what had to be cleaned up is, so exit now
            print(f"plait mcp serve: stopped by {stopped[0]}", file=sys.stderr, flush=True)
            os._exit(130)

        await tg.start(watch)
        with serving:
            await server.run_stdio_async()
        tg.cancel_scope.cancel()
    return stopped[0] if stopped else None
