"""A stdio server bound to die with its parent (bwrap's --die-with-parent at high and critical,
or any PR_SET_PDEATHSIG) lives as long as its connection on trio too. The kernel sends that
signal when the *thread* that forked the server exits, and anyio on trio starts processes
from a worker thread of trio's, which exits after 10 s idle: such a server was SIGKILLed ten
seconds after it started, and a call that was not read-only failed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.sandbox import BwrapRunner, runner_for
from engine.spec.models import MCPServerSpec
from tests.mcp.conftest import ROOT
from tests.procs import live_children
from tests.security.sec_helpers import make_policy

pytestmark = pytest.mark.anyio
HERE = Path(__file__).parent
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=20, startup_timeout_s=30)
#: trio's worker threads exit after this long idle (trio._core._thread_cache.IDLE_TIMEOUT)
TRIO_IDLE_S = 10.0
CAP = 64 * 1024
#: sets PR_SET_PDEATHSIG (SIGKILL) as bwrap's --die-with-parent does, then runs the server
DIES_WITH_PARENT = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


async def test_a_server_that_dies_with_its_parent_outlives_trios_idle_threads(
        tmp_path: Path) -> None:
    big = str(HERE / "big_server.py")
    specs = {"pdeath": MCPServerSpec(command=sys.executable,
                                     args=["-c", DIES_WITH_PARENT, big],
                                     env={"PYTHONPATH": str(ROOT)})}
    runner = None
    if shutil.which("bwrap") is not None:  # the real case: a server at level high
        read = sorted({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, ROOT)})
        runner = runner_for(make_policy("high", tmp_path, filesystem={"read": read}))
        assert isinstance(runner, BwrapRunner)
        specs["high"] = MCPServerSpec(command=sys.executable, args=[big],
                                      env={"PYTHONPATH": str(ROOT)})
    async with MCPRuntime(specs, base_dir=tmp_path, settings=SETTINGS,
                          runner_for=lambda name, spec: runner if name == "high" else None
                          ) as mcp:
        for name in specs:
            assert (await mcp.call_tool(name, "shout", {"size": 1})).text == "ok"
        await anyio.sleep(TRIO_IDLE_S + 1.5)  # the worker thread that started them is gone
        for name in specs:
            # `shout` is not read-only: had the server died, this call would fail
            assert (await mcp.call_tool(name, "shout", {"size": 1})).text == "ok"
            assert mcp.manager.status(name).spawns == 1


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_start_stop_cycles_leak_no_descriptor_and_no_process(tmp_path: Path) -> None:
    """Servers started and stopped again and again, half of them killed for a message over
    the cap: this process ends with the descriptors and the children it had."""
    spec = MCPServerSpec(command=sys.executable, args=[str(HERE / "big_server.py")],
                         env={"PYTHONPATH": str(ROOT)}, max_message_bytes=CAP)

    async def cycle(trip: bool) -> None:
        async with MCPRuntime({"big": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
            assert (await mcp.call_tool("big", "blob", {"size": 3})).text == "xxx"
            if trip:
                with pytest.raises(ToolError, match="more than 65536 bytes"):
                    await mcp.call_tool("big", "blob", {"size": CAP + 1})

    await cycle(True)  # once first: what is made once per process (the guard, caches)
    fds, children = sorted(os.listdir("/proc/self/fd")), live_children()
    with anyio.fail_after(40):
        for n in range(4):
            await cycle(n % 2 == 1)
        while live_children() != children:  # a killed server is reaped a moment later
            await anyio.sleep(0.05)
    assert sorted(os.listdir("/proc/self/fd")) == fds
