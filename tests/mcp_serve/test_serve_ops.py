"""`plait mcp serve` as an operator meets it: odd input names, wrong arguments, a failing run
with a secret in it, and a signal while a call is in flight (a real MCP client over stdio)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.state import RunStore

ROOT = Path(__file__).resolve().parents[2]

ODD_NAMES = """\
version: 1
name: odd
inputs:
  max-items: {type: integer, default: 3, description: how many at most}
  class: {type: string, enum: [a, b]}
  model_name: {type: string, default: m}
  copy: {type: boolean, default: false}
providers:
  local: {kind: echo}
steps:
  say:
    llm: local
    prompt: >-
      ${{ inputs['max-items'] }} ${{ inputs['class'] }} ${{ inputs.model_name }}
      ${{ inputs['copy'] }}
outputs:
  said: ${{ steps.say.output }}
"""

FAILING = """\
version: 1
name: failing
secrets: [OPS_TOKEN]
policies:
  lo: {level: low}
steps:
  boom: {run: "echo token ${{ secrets.OPS_TOKEN }}; exit 3", policy: lo}
"""

SLOW = """\
version: 1
name: slow
policies:
  lo: {level: low}
steps:
  wait: {run: "echo $$ > sleeper.pid; exec sleep 30", policy: lo}
"""

#: starts the server (its stdio inherited), notes its pid, and its exit code when it ends
WRAPPER = """
import pathlib, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
pathlib.Path(sys.argv[1], "server.pid").write_text(str(proc.pid))
pathlib.Path(sys.argv[1], "server.rc").write_text(str(proc.wait()))
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _params(path: Path, *, wrapped: bool = False) -> Any:
    from mcp.client.stdio import StdioServerParameters

    serve = [sys.executable, "-m", "runners.cli.main", "mcp", "serve", str(path)]
    if wrapped:
        serve = [sys.executable, "-c", WRAPPER, str(path.parent), *serve]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPS_TOKEN": "tok-5ecret-value"}
    return StdioServerParameters(command=serve[0], args=serve[1:], env=env, cwd=str(path.parent))


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def _statuses(folder: Path) -> list[str]:
    db = folder / ".plait" / "runs.db"
    if not db.exists():
        return []
    store = RunStore.open(str(db))
    try:
        return [run.status for run in store.list_runs()]
    finally:
        store.close()


@pytest.mark.anyio
async def test_arguments_are_the_inputs_by_name_and_nothing_else(tmp_path: Path) -> None:
    """An input named `max-items` or `class` (no Python identifier) is served under its own
    name; a misspelt argument is refused, not dropped (the run would use the default)."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "odd.yaml"
    path.write_text(ODD_NAMES)
    with anyio.fail_after(30):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            (tool,) = (await client.list_tools()).tools
            schema = tool.input_schema
            assert sorted(schema["properties"]) == ["class", "copy", "max-items", "model_name"]
            assert schema["required"] == ["class"]
            assert schema["additionalProperties"] is False
            assert schema["properties"]["max-items"]["description"] == "how many at most"
            ok = await client.call_tool("odd", {"max-items": 5, "class": "b"})
            assert not ok.is_error, _text(ok)
            assert ok.structured_content == {"said": "echo: 5 b m False"}
            typo = await client.call_tool("odd", {"max_items": 5, "class": "b"})
            assert typo.is_error and _text(typo) == (
                "Error executing tool odd: unknown input 'max_items' (hint: did you mean "
                "'max-items'?)")
            wrong = await client.call_tool("odd", {"class": "c"})
            assert wrong.is_error and _text(wrong) == (
                'Error executing tool odd: input \'class\' must be one of "a", "b"; got "c" '
                "(hint: give one of those values)")
            missing = await client.call_tool("odd", {})
            assert missing.is_error and _text(missing) == (
                "Error executing tool odd: missing required input: class (hint: give it in "
                'the call\'s arguments, e.g. {"class": "..."} (the tool\'s input schema lists '
                "its arguments))")
    assert _statuses(tmp_path) == ["succeeded"]  # refused calls ran nothing


TYPED = """\
version: 1
name: typed
inputs:
  count: {type: integer}
  ratio: {type: number, default: 0.5}
  label: {type: string, default: x}
  flag: {type: boolean, default: false}
  tags: {type: array, default: []}
  extra: {type: object, default: {}}
providers:
  local: {kind: echo}
steps:
  say: {llm: local, prompt: "${{ inputs | tojson }}"}
outputs:
  said: ${{ steps.say.output }}
"""

#: (arguments, the error text after `Error executing tool typed: `): which argument, the
#: JSON type expected, the JSON type and value given, how to fix it. pydantic said
#: `1 validation error for typedArguments ... Input should be a valid integer, unable to
#: parse string as an integer [type=int_parsing, input_value='many', input_type=str]`, and
#: took "2" for 2 (its lax mode) where a run's --inputs refuses it.
WRONG_ARGUMENTS = [
    ({"count": "2"}, "input 'count' must be of type integer, got string \"2\" (hint: write "
     "the integer without quotes, e.g. {\"count\": 3} (a quoted value is a string))"),
    ({"count": 2.5}, "input 'count' must be of type integer, got number 2.5 (hint: give a "
     "whole number, e.g. 3)"),
    ({"count": 1, "ratio": True}, "input 'ratio' must be of type number, got boolean true "
     "(hint: give a number, e.g. 2.5)"),
    ({"count": 1, "label": 7}, "input 'label' must be of type string, got integer 7 (hint: "
     "give text (in JSON, in double quotes: \"...\"))"),
    ({"count": 1, "flag": "yes"}, "input 'flag' must be of type boolean, got string \"yes\" "
     "(hint: write the boolean without quotes, e.g. {\"flag\": true} (a quoted value is a "
     "string))"),
    ({"count": 1, "tags": "[1, 2]"}, "input 'tags' must be of type array, got string "
     "\"[1, 2]\" (hint: give a list, e.g. [1, 2] (JSON) or [a, b] (YAML))"),
    ({"count": 1, "extra": [1]}, "input 'extra' must be of type object, got array [1] "
     "(hint: give a mapping, e.g. {\"key\": \"value\"})"),
    ({"count": None}, "input 'count' is required, got null (hint: give it a value of type "
     "integer)"),
    ({"count": 1, "colour": "red"}, "unknown input 'colour' (hint: expected one of: count, "
     "extra, flag, label, ratio, tags)"),
]


@pytest.mark.anyio
async def test_wrong_arguments_are_refused_in_plaits_words_not_pydantics(
        tmp_path: Path) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "typed.yaml"
    path.write_text(TYPED)
    with anyio.fail_after(30):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            (tool,) = (await client.list_tools()).tools
            assert tool.input_schema["properties"]["count"]["type"] == "integer"
            assert tool.input_schema["additionalProperties"] is False
            texts = []
            for arguments, _ in WRONG_ARGUMENTS:
                result = await client.call_tool("typed", arguments)
                assert result.is_error, arguments
                texts.append(_text(result))
            ok = await client.call_tool("typed", {"count": 2, "ratio": 1, "tags": ["a"]})
    assert texts == [f"Error executing tool typed: {text}" for _, text in WRONG_ARGUMENTS]
    assert not ok.is_error, _text(ok)
    said = ok.structured_content["said"]
    assert '"count": 2' in said and '"ratio": 1' in said and '"label": "x"' in said, said
    assert _statuses(tmp_path) == ["succeeded"]  # refused calls ran nothing


@pytest.mark.anyio
async def test_a_failed_run_is_an_error_result_naming_its_step_without_the_secret(
        tmp_path: Path) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    with anyio.fail_after(30):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            result = await client.call_tool("failing", {})
    text = _text(result)
    assert result.is_error
    assert ": step boom: command 'echo token ***; exit 3' exited with code 3" in text, text
    assert "tok-5ecret-value" not in text


def _written(path: Path) -> bool:
    """`path` holds a whole line (a pid that `echo` finished writing)."""
    try:
        return path.read_text().endswith("\n")
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def _wait(check: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.anyio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
async def test_a_signal_mid_call_stops_the_server_and_records_the_run_interrupted(
        tmp_path: Path, sig: int) -> None:
    """The client keeps stdin open (as a terminal does): the server must still exit, 130,
    with its run recorded `interrupted` and the command it ran stopped."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    sleeper = tmp_path / "sleeper.pid"
    with anyio.fail_after(40):
        async with stdio_client(_params(path, wrapped=True)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    # the server goes away mid-call: what the test asks for
                    with contextlib.suppress(Exception):
                        await client.call_tool("slow", {})

                tg.start_soon(call)
                # its pid written whole (the shell creates the file before it writes):
                # stopped earlier, the command would leave it empty
                await anyio.to_thread.run_sync(_wait, lambda: _written(sleeper), 20)
                pid = int((tmp_path / "server.pid").read_text())
                os.kill(pid, sig)
                rc = tmp_path / "server.rc"
                exited = await anyio.to_thread.run_sync(
                    _wait, lambda: rc.exists() and rc.read_text(), 15)
                tg.cancel_scope.cancel()
            assert exited, "the server did not exit while its client kept stdin open"
    assert rc.read_text() == "130"
    assert _statuses(tmp_path) == ["interrupted"]
    command = int(sleeper.read_text())
    assert _wait(lambda: not _alive(command), 5), "the run's command outlived the server"



def test_a_declared_secret_that_is_not_set_is_refused_at_start(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "failing.yaml"
    path.write_text(FAILING)
    env = {k: v for k, v in os.environ.items() if k != "OPS_TOKEN"}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "mcp", "serve", str(path)],
                         env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp_path, stdin=subprocess.PIPE,
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: secret OPS_TOKEN is declared in `secrets:` but is not "
                                 "set") and "Traceback" not in out.stderr


MEET = """\
version: 1
name: meet
inputs:
  me: {type: string}
  other: {type: string}
policies:
  lo: {level: low}
steps:
  wait:
    policy: lo
    run: >-
      echo $$ > ${{ inputs.me }}.pid; touch ${{ inputs.me }}.here;
      for i in $(seq 200); do [ -e ${{ inputs.other }}.here ] && exit 0; sleep 0.05; done;
      exit 1
"""


@pytest.mark.anyio
async def test_calls_run_at_once_and_a_cancelled_call_stops_its_run(tmp_path: Path) -> None:
    """Two calls that each wait for the other succeed only if they run at the same time; a
    call the client cancels has its run recorded `interrupted`, its command stopped."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "meet.yaml"
    path.write_text(MEET)
    with anyio.fail_after(40):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            results = []

            async def call(me: str, other: str) -> None:
                results.append(await client.call_tool("meet", {"me": me, "other": other}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "a", "b")
                tg.start_soon(call, "b", "a")
            assert [r.is_error for r in results] == [False, False], [_text(r) for r in results]
            with anyio.CancelScope() as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, "c", "nobody")
                    await anyio.to_thread.run_sync(_wait, (tmp_path / "c.here").exists, 20)
                    scope.cancel()
            command = int((tmp_path / "c.pid").read_text())
            assert await anyio.to_thread.run_sync(_wait, lambda: not _alive(command), 10)
            assert await anyio.to_thread.run_sync(
                _wait, lambda: "interrupted" in _statuses(tmp_path), 10)
    assert sorted(_statuses(tmp_path)) == ["interrupted", "succeeded", "succeeded"]


@pytest.mark.anyio
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
async def test_a_signal_stops_an_http_server_with_130_and_its_run_interrupted(
        tmp_path: Path, sig: signal.Signals) -> None:
    """SIGHUP (the terminal or SSH session it was started from went away), which uvicorn
    does not take, killed the server outright: no word, its run left `running` (then
    `died`)."""
    import socket
    import subprocess

    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    path = tmp_path / "slow.yaml"
    path.write_text(SLOW)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "runners.cli.main", "mcp", "serve", str(path),
                             "--transport", "streamable-http", "--port", str(port)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        listening = await anyio.to_thread.run_sync(_wait, lambda: _listens(port), 20)
        assert listening, "the server never listened"
        with anyio.fail_after(30):
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams, \
                    ClientSession(streams[0], streams[1]) as client:
                await client.initialize()
                async with anyio.create_task_group() as tg:

                    async def call() -> None:
                        with contextlib.suppress(Exception):  # the server stops mid-call
                            await client.call_tool("slow", {})

                    tg.start_soon(call)
                    await anyio.to_thread.run_sync(
                        _wait, lambda: _written(tmp_path / "sleeper.pid"), 20)
                    proc.send_signal(sig)
                    _, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=20))
                    tg.cancel_scope.cancel()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.rstrip().endswith(f"plait mcp serve: stopped by {sig.name}")
    assert _statuses(tmp_path) == ["interrupted"]


def _listens(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.mark.anyio
async def test_a_file_edited_while_serving_does_not_change_the_tool_under_the_client(
        tmp_path: Path) -> None:
    """The tool's schema is the workflow as loaded at start; a call ran the file as edited
    since, so the argument the schema names was refused (`unknown input 'who' (hint: did you
    mean 'whom'?)`) and an edit that broke the file failed every call."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    path = tmp_path / "greeter.yaml"
    path.write_text(GREETER)
    with anyio.fail_after(30):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            first = await client.call_tool("greeter", {"who": "ada"})
            path.write_text(GREETER.replace("who", "whom"))
            renamed = await client.call_tool("greeter", {"who": "bob"})
            path.write_text(GREETER.replace("prompt:", "promt:"))
            broken = await client.call_tool("greeter", {"who": "cy"})
            (tool,) = (await client.list_tools()).tools
    assert list(tool.input_schema["properties"]) == ["who"]
    said = [r.structured_content if not r.is_error else _text(r)
            for r in (first, renamed, broken)]
    assert said == [{"said": f"echo: hi {who}"} for who in ("ada", "bob", "cy")]


GREETER = """\
version: 1
name: greeter
inputs:
  who: {type: string}
providers:
  local: {kind: echo}
steps:
  say: {llm: local, prompt: "hi ${{ inputs.who }}"}
outputs:
  said: ${{ steps.say.output }}
"""


@pytest.mark.anyio
async def test_a_server_that_crashed_in_earlier_calls_is_restarted_for_the_next(
        tmp_path: Path) -> None:
    """The workflow's MCP server stays up across calls; its budget of restarts (3 per run)
    was spent across them, so after four crashed calls, hours apart or not, every later call
    failed with `went down 4 times; not restarting it again in this run` until the served
    workflow was restarted."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    server = ROOT / "tests" / "mcp" / "faulty_server.py"
    path = tmp_path / "crashy.yaml"
    path.write_text(f"""\
version: 1
name: crashy
inputs:
  tool: {{type: string, enum: [pid, crash]}}
mcp_servers:
  s: {{command: {sys.executable}, args: [{server}], env: {{PYTHONPATH: "{ROOT}"}}, policy: lo}}
policies:
  lo: {{level: low}}
steps:
  crash: {{tool: s.crash, if: "${{{{ inputs.tool == 'crash' }}}}"}}
  pid: {{tool: s.pid, if: "${{{{ inputs.tool == 'pid' }}}}"}}
outputs:
  pid: ${{{{ steps.pid.output | default(none) }}}}
""")
    with anyio.fail_after(60):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            crashed = [await client.call_tool("crashy", {"tool": "crash"}) for _ in range(4)]
            after = await client.call_tool("crashy", {"tool": "pid"})
    assert all(r.is_error and "went down during 's.crash'" in _text(r) for r in crashed), \
        [_text(r) for r in crashed]
    assert not after.is_error, _text(after)
    assert int(after.structured_content["pid"]) > 0


@pytest.mark.anyio
async def test_servers_whose_settings_differ_per_call_do_not_pile_up(tmp_path: Path) -> None:
    """A server whose settings take an input (`env: {TAG: ${{ inputs.tag }}}`) is a new
    server process for each new value; every one of them stayed up for the life of the
    served workflow, one more process for each call, without end. Now only the few used
    last that no call is using stay up (engine.mcp.shared.MAX_IDLE)."""
    from mcp import ClientSession
    from mcp.client.stdio import stdio_client

    from engine.mcp.shared import MAX_IDLE

    server = ROOT / "tests" / "mcp" / "faulty_server.py"
    path = tmp_path / "tagged.yaml"
    path.write_text(f"""\
version: 1
name: tagged
inputs:
  tag: {{type: string}}
mcp_servers:
  s:
    command: {sys.executable}
    args: [{server}]
    env: {{PYTHONPATH: "{ROOT}", TAG: "${{{{ inputs.tag }}}}"}}
    policy: lo
policies:
  lo: {{level: low}}
steps:
  pid: {{tool: s.pid}}
outputs:
  pid: ${{{{ steps.pid.output }}}}
""")
    calls = MAX_IDLE + 2
    with anyio.fail_after(90):
        async with stdio_client(_params(path)) as (read, write), \
                ClientSession(read, write) as client:
            await client.initialize()
            pids = []
            for tag in [f"t{i}" for i in range(calls)] + [f"t{calls - 1}"]:
                result = await client.call_tool("tagged", {"tag": tag})
                assert not result.is_error, _text(result)
                pids.append(int(result.structured_content["pid"]))
            assert pids[-1] == pids[-2]  # a repeated value still finds its server up
            fewer = await anyio.to_thread.run_sync(
                _wait, lambda: sum(map(_alive, pids[:calls])) <= MAX_IDLE, 15)
            assert fewer, [p for p in pids[:calls] if _alive(p)]
            assert all(map(_alive, pids[-MAX_IDLE:]))  # the ones used last
