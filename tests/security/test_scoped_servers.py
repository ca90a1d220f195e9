"""A stdio MCP server at high/critical is started with no launcher process, from a thread of
its own that enters a Landlock domain of its own (`scoped_popen_apart`): the server and the
commands cannot reach each other's abstract sockets, the server still dies with the engine
(bwrap's --die-with-parent follows the forking thread), on asyncio and trio, and a server
whose domain cannot be entered fails to start instead of running unscoped."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import anyio
import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.sandbox import BwrapRunner, runner_for
from engine.sandbox._landlock import MIN_ABI, landlock_abi
from engine.spec.models import MCPServerSpec
from tests.procs import live_children
from tests.security.sec_helpers import make_policy

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
BIG = ROOT / "tests" / "mcp" / "big_server.py"
PYTHON3 = shutil.which("python3", path="/usr/bin:/bin")
ABI = landlock_abi()
needs_scope = pytest.mark.skipif(
    ABI is None or ABI < MIN_ABI,
    reason=f"the kernel's Landlock ABI is {ABI}, scoping needs {MIN_ABI} (Linux 6.12)")
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=20, startup_timeout_s=30)
#: binds a stream and a datagram abstract socket, then waits (at most 20 s) for a stop file
BINDER = r"""
import os, socket, sys, time
stream = socket.socket(socket.AF_UNIX); stream.bind("\0" + sys.argv[1]); stream.listen(8)
dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); dgram.bind("\0" + sys.argv[2])
for _ in range(200):
    if os.path.exists(sys.argv[3]):
        break
    time.sleep(0.1)
print("stopped")
"""


def _read_roots() -> list[str]:
    return sorted({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, ROOT)})


def _abstract_names() -> str:
    return Path("/proc/net/unix").read_text()


def _with_marker(marker: str) -> list[int]:
    """Pids of the processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@needs_scope
@pytest.mark.skipif(PYTHON3 is None, reason="no python3 in /usr/bin or /bin")
async def test_a_server_cannot_reach_a_commands_abstract_socket(tmp_path: Path) -> None:
    """A command at high with `network: true` binds abstract sockets; a stdio server at high
    with `network: true`, running at the same time, is refused them (EPERM): the server's
    domain is not the commands' one. (In one shared domain both would connect.)"""
    assert PYTHON3 is not None
    meet = tmp_path / "meet"
    meet.mkdir()
    tag = secrets.token_hex(6)
    stream, dgram = f"plait-cmd-stream-{tag}", f"plait-cmd-dgram-{tag}"
    command = runner_for(make_policy("high", tmp_path, network=True,
                                     filesystem={"read": [str(meet)]}))
    server = runner_for(make_policy("high", tmp_path, network=True,
                                    filesystem={"read": _read_roots()}))
    assert isinstance(server, BwrapRunner) and server.scoped
    spec = MCPServerSpec(command=sys.executable,
                         args=[str(HERE / "abstract_probe_server.py")])
    outputs: list[str] = []

    async def bind() -> None:
        result = await command.run([PYTHON3, "-c", BINDER, stream, dgram,
                                    str(meet / "stop")], timeout=30)
        outputs.append(result.stdout)

    with anyio.fail_after(50):
        async with anyio.create_task_group() as tg:
            tg.start_soon(bind)
            try:
                for _ in range(200):
                    if f"@{dgram}" in _abstract_names():
                        break
                    await anyio.sleep(0.05)
                assert f"@{stream}" in _abstract_names()
                async with MCPRuntime({"p": spec}, base_dir=tmp_path, settings=SETTINGS,
                                      runner_for=lambda name, s: server) as mcp:
                    answer = await mcp.call_tool("p", "probe", {"stream": stream,
                                                                "dgram": dgram, "port": 1})
            finally:
                (meet / "stop").touch()
    seen = json.loads(answer.text)
    assert (seen["stream"], seen["dgram"]) == ("refused EPERM", "refused EPERM"), seen
    assert outputs == ["stopped\n"]


ENGINE = """
    import sys
    from pathlib import Path
    import anyio
    from engine.mcp import MCPRuntime, MCPSettings
    from engine.sandbox import runner_for
    from engine.spec.models import MCPServerSpec
    from tests.security.sec_helpers import make_policy
    import engine.sandbox._guard
    # no engine guard (which kills by token when the engine dies): what is tested is that
    # bwrap's --die-with-parent alone ends the sandbox, i.e. that its forking thread lived
    engine.sandbox._guard._start_guard = lambda prefix: -1
    backend, tmp, marker, big, root, *read = sys.argv[1:]
    runner = runner_for(make_policy("high", Path(tmp), filesystem={"read": read}))
    assert runner.scoped, runner
    # the MCP server, then (once it has exited on its stdin's end) a sleep inside the sandbox:
    # only the sandbox dying with the engine ends it
    spec = MCPServerSpec(command="/bin/sh", args=["-c", '"$0" "$1"; sleep 300',
                                                  sys.executable, big, marker],
                         env={"PYTHONPATH": root})
    settings = MCPSettings(health_interval_s=0, call_timeout_s=20, startup_timeout_s=30)

    async def main():
        async with MCPRuntime({"s": spec}, base_dir=Path(tmp), settings=settings,
                              runner_for=lambda name, s: runner) as mcp:
            print((await mcp.call_tool("s", "shout", {"size": 1})).text, flush=True)
            await anyio.sleep(60)

    anyio.run(main, backend=backend)
"""


@needs_scope
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_scoped_server_dies_with_the_engine(backend: str, tmp_path: Path) -> None:
    marker = f"plait-marker-{secrets.token_hex(6)}"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    engine = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(ENGINE), backend, str(tmp_path), marker,
         str(BIG), str(ROOT), *_read_roots()],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(40, engine.kill)
    watchdog.start()
    try:
        assert engine.stdout is not None
        line = engine.stdout.readline()
        assert line == "ok\n", (line, engine.stderr.read() if engine.stderr else "")
        assert _with_marker(marker), "the sandbox is not running"
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.communicate(timeout=20)
        watchdog.cancel()
    deadline = time.monotonic() + 10
    while _with_marker(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _with_marker(marker)
    for pid in left:  # do not leave them behind when the test fails
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == []


@needs_scope
async def test_a_server_whose_domain_cannot_be_entered_does_not_start(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The failure is the server's (worded as a start error), never an unscoped server."""
    marker = f"plait-marker-{secrets.token_hex(6)}"
    runner = runner_for(make_policy("high", tmp_path, filesystem={"read": _read_roots()}))
    assert isinstance(runner, BwrapRunner) and runner.scoped
    monkeypatch.setattr("engine.sandbox._landlock._enter_domain",
                        lambda: "landlock_restrict_self: simulated refusal")
    spec = MCPServerSpec(command=sys.executable, args=[str(BIG), marker],
                         env={"PYTHONPATH": str(ROOT)})
    with pytest.raises(ToolError, match=r"Landlock domain .*simulated refusal") as refused:
        async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS,
                              runner_for=lambda name, s: runner) as mcp:
            await mcp.call_tool("s", "shout", {"size": 1})
    assert "level medium" in str(refused.value.hint)
    assert _with_marker(marker) == []
    result = await runner.run(["true"])  # the commands' shared thread is untouched
    assert result.exit_code == 0, result


def _apart_threads() -> int:
    return sum(t.name == "plait-scoped-apart" for t in threading.enumerate())


@needs_scope
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_the_thread_that_started_a_server_lives_as_long_as_it(tmp_path: Path) -> None:
    """The thread stays while the server runs (had it exited once bwrap was started, bwrap's
    --die-with-parent would have killed the server: the second call would fail), and goes
    once the server has stopped (no thread left behind per server)."""
    runner = runner_for(make_policy("high", tmp_path, filesystem={"read": _read_roots()}))
    assert isinstance(runner, BwrapRunner) and runner.scoped
    before = _apart_threads()
    spec = MCPServerSpec(command=sys.executable, args=[str(BIG)],
                         env={"PYTHONPATH": str(ROOT)})
    async with MCPRuntime({"s": spec}, base_dir=tmp_path, settings=SETTINGS,
                          runner_for=lambda name, s: runner) as mcp:
        assert (await mcp.call_tool("s", "shout", {"size": 1})).text == "ok"
        assert _apart_threads() == before + 1
        await anyio.sleep(2.5)
        # `shout` is not read-only: had the server died, this call would fail
        assert (await mcp.call_tool("s", "shout", {"size": 1})).text == "ok"
        assert mcp.manager.status("s").spawns == 1
    for _ in range(100):
        if _apart_threads() == before:
            break
        await anyio.sleep(0.05)
    assert _apart_threads() == before


@needs_scope
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_scoped_start_stop_cycles_leak_nothing(tmp_path: Path) -> None:
    """Scoped servers started and stopped again and again, half of them killed for a message
    over the cap: this process ends with the descriptors, children and threads it had."""
    cap = 64 * 1024
    runner = runner_for(make_policy("high", tmp_path, filesystem={"read": _read_roots()}))
    assert isinstance(runner, BwrapRunner) and runner.scoped
    spec = MCPServerSpec(command=sys.executable, args=[str(BIG)],
                         env={"PYTHONPATH": str(ROOT)}, max_message_bytes=cap)

    async def cycle(trip: bool) -> None:
        async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS,
                              runner_for=lambda name, s: runner) as mcp:
            assert (await mcp.call_tool("big", "blob", {"size": 3})).text == "xxx"
            if trip:
                with pytest.raises(ToolError, match=f"more than {cap} bytes"):
                    await mcp.call_tool("big", "blob", {"size": cap + 1})

    await cycle(True)  # once first: what is made once per process (the guard, caches)
    for _ in range(400):  # the first cycle's thread goes once its server is reaped (up to
        if _apart_threads() == 0:  # 20 s: seconds on a loaded machine, which a smaller
            break  # bound made the baseline below count that thread, and the test fail)
        await anyio.sleep(0.05)
    fds, children, threads = sorted(os.listdir("/proc/self/fd")), live_children(), _apart_threads()
    with anyio.fail_after(40):
        for n in range(4):
            await cycle(n % 2 == 1)
        while live_children() != children or _apart_threads() != threads:
            await anyio.sleep(0.05)
    assert sorted(os.listdir("/proc/self/fd")) == fds
