"""`plait mcp serve`: a workflow behind a real MCP client, over stdio and streamable HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """\
version: 1
name: greeter
description: Greet someone, offline.
inputs:
  who: {type: string, description: whom to greet}
  times: {type: integer, default: 1}
providers:
  local: {kind: echo}
steps:
  greet:
    llm: local
    prompt: "hello ${{ inputs.who }} x${{ inputs.times }}"
outputs:
  greeting: ${{ steps.greet.output }}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "greeter.yaml"
    path.write_text(WORKFLOW)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


async def _exercise(client: object) -> None:
    tools = await client.list_tools()  # type: ignore[attr-defined]
    (tool,) = tools.tools
    assert tool.name == "greeter"
    assert tool.description == "Greet someone, offline."
    schema = tool.input_schema if hasattr(tool, "input_schema") else tool.inputSchema
    assert schema["required"] == ["who"]
    assert schema["properties"]["times"]["default"] == 1
    result = await client.call_tool("greeter", {"who": "ada", "times": 2})  # type: ignore[attr-defined]
    structured = getattr(result, "structured_content", None) or result.structuredContent
    assert structured == {"greeting": "echo: hello ada x2"}


@pytest.mark.anyio
async def test_serve_over_stdio(workflow: Path) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "runners.cli.main", "mcp", "serve",
                                         str(workflow)], env=_env(), cwd=str(workflow.parent))
    with anyio.fail_after(30):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            await _exercise(client)
    assert (workflow.parent / ".plait" / "runs.db").is_file()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.anyio
async def test_serve_over_streamable_http(workflow: Path) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "runners.cli.main", "mcp", "serve",
                             str(workflow), "--transport", "streamable-http", "--port",
                             str(port)], env=_env(), cwd=workflow.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                await anyio.sleep(0.1)
        with anyio.fail_after(30):
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as streams, \
                    ClientSession(streams[0], streams[1]) as client:
                await client.initialize()
                await _exercise(client)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_an_invalid_workflow_is_refused_before_serving(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nsteps:\n  a: {run: ls, promt: x}\n")
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "mcp", "serve", str(bad)],
                         env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2 and "bad.yaml:4:" in out.stderr


def test_a_busy_port_or_unknown_host_is_one_line_and_exit_2(workflow: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "runners.cli.main", "mcp", "serve",
                              str(workflow), "--transport", "streamable-http",
                              "--port", str(port)],
                             env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr == f"error: port {port} on 127.0.0.1 is in use (hint: --port)\n"
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "mcp", "serve",
                          str(workflow), "--transport", "streamable-http",
                          "--host", "no-such-host.invalid"],
                         env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: cannot listen on 'no-such-host.invalid': not a known "
                                 "address") and out.stderr.count("\n") == 1
    assert out.stderr.rstrip().endswith("(hint: --host)")


@pytest.mark.anyio
async def test_served_workflow_keeps_its_own_servers_up_across_calls(tmp_path: Path) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    from tests.pid_workflow import write_pid_workflow

    path = write_pid_workflow(tmp_path / "pids.yaml")
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "runners.cli.main", "mcp", "serve", str(path)],
                                   env=_env(), cwd=str(tmp_path))
    pids = []
    with anyio.fail_after(60):
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            for _ in range(3):
                result = await client.call_tool("pids", {})
                structured = getattr(result, "structured_content", None) or \
                    result.structuredContent
                pids.append(structured["pid"])
    assert len(set(pids)) == 1  # one server process answered all three runs


@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error_naming_the_port(workflow: Path, port: str) -> None:
    """70000 was a bind() traceback (exit 1), -1 blamed the host (`not a known address`)."""
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "mcp", "serve",
                          str(workflow), "--transport", "streamable-http", "--port", port],
                         env=_env(), capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert f"Invalid value for '--port': {port} is not in the range 0<=x<=65535" in out.stderr


@pytest.mark.parametrize(("host", "warned"), [
    ("127.0.0.1", False), ("127.0.0.2", False), ("::1", False), ("[::1]", False),
    ("localhost", False), ("0.0.0.0", True), ("::", True), ("192.168.1.5", True),
    ("example.internal", True)])
def test_an_http_server_listening_beyond_this_machine_is_warned_about(host: str,
                                                                       warned: bool) -> None:
    """No socket is opened here (tests bind 127.0.0.1 only): the decision and its words."""
    from runners.mcp_serve import exposure_warning

    warning = exposure_warning(host)
    assert (warning is not None) is warned
    if warning is not None:
        assert warning.startswith(f"plait mcp serve: warning: listening on {host}, beyond")
        assert "no authentication" in warning and "--host 127.0.0.1" in warning
