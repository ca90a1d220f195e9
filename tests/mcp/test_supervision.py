"""Supervision over real stdio subprocesses: env isolation, crashes, restarts, hangs,
malformed results, rug pulls, start-up failures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest

from engine.errors import PolicyViolation, ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.spec.models import MCPServerSpec, PolicySpec

pytestmark = pytest.mark.anyio
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=10, startup_timeout_s=20)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def faulty(*args: str, **fields: object) -> MCPServerSpec:
    return MCPServerSpec(command=sys.executable,
                         args=[str(HERE / "faulty_server.py"), *args],
                         env={"PYTHONPATH": str(ROOT)}, **fields)  # type: ignore[arg-type]


def rt(tmp_path: Path, spec: MCPServerSpec, **kwargs: object) -> MCPRuntime:
    return MCPRuntime({"f": spec}, base_dir=tmp_path, settings=SETTINGS,
                      **kwargs)  # type: ignore[arg-type]


async def test_stdio_server_does_not_see_parent_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    spec = faulty()
    spec = spec.model_copy(update={"env": {**spec.env, "GIVEN": "yes"}})
    async with rt(tmp_path, spec) as mcp:
        assert (await mcp.call_tool("f", "env", {"name": "OPENAI_API_KEY"})).text == "<unset>"
        assert (await mcp.call_tool("f", "env", {"name": "GIVEN"})).text == "yes"


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_crash_mid_call_restarts_and_stderr_tail(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty()) as mcp:
        first = (await mcp.call_tool("f", "pid", {})).text
        with pytest.raises(ToolError, match="went down") as info:
            await mcp.call_tool("f", "crash", {})
        assert "crashing on purpose" in str(info.value)
        assert "not re-run" in str(info.value)
        second = (await mcp.call_tool("f", "pid", {})).text
        assert second != first
        status = mcp.manager.status("f")
        assert (status.spawns, status.restarts) == (2, 1)


async def test_read_only_call_rerun_once_after_crash(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty()) as mcp:
        marker = tmp_path / "read.marker"
        result = await mcp.call_tool("f", "flaky_read", {"marker": str(marker)})
        assert result.text == "recovered"
        assert mcp.stats()["tools"]["f.flaky_read"]["retries"] == 1


async def test_side_effect_call_not_rerun_after_crash(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty()) as mcp:
        marker = tmp_path / "write.marker"
        with pytest.raises(ToolError, match="not re-run"):
            await mcp.call_tool("f", "flaky_write", {"marker": str(marker)})
        # the server came back; a second, explicit call succeeds
        assert (await mcp.call_tool("f", "flaky_write", {"marker": str(marker)})).text == \
            "recovered"


async def test_hang_times_out_and_server_stays_usable(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty(timeout="500ms")) as mcp:
        with pytest.raises(ToolError, match=r"did not answer within 0\.5s"):
            await mcp.call_tool("f", "hang", {})
        assert (await mcp.call_tool("f", "pid", {})).text.isdigit()
        assert await mcp.manager.health_check("f")


async def test_malformed_result(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty()) as mcp:
        with pytest.raises(ToolError, match="malformed result") as info:
            await mcp.call_tool("f", "malformed", {})
    # what is wrong, not jsonschema's dump of the schema and instance that follows it
    assert "'not a number' is not of type 'integer'" in info.value.message
    assert "Failed validating" not in info.value.message


async def test_rug_pull_flagged_and_refused_under_high_policy(tmp_path: Path) -> None:
    policies = {"strict": PolicySpec(level="high")}
    async with rt(tmp_path, faulty(policy="strict"), policies=policies) as mcp:
        assert (await mcp.call_tool("f", "pid", {})).text.isdigit()
        await mcp.call_tool("f", "poison", {})
        # the server announces the change (subscriptions/listen); the registry re-lists
        with anyio.fail_after(5):
            while "f" not in mcp.registry._stale:
                await anyio.sleep(0.02)
        with pytest.raises(PolicyViolation, match="changed between two listings"):
            await mcp.call_tool("f", "pid", {})
        assert "f.pid" in mcp.stats()["flagged"]


async def test_rug_pull_flagged_but_allowed_under_medium(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty()) as mcp:
        await mcp.list_tools("f")
        await mcp.call_tool("f", "poison", {})
        await mcp.registry.discover("f")
        assert "f.pid" in mcp.registry.flagged
        assert (await mcp.call_tool("f", "pid", {})).text.isdigit()


async def test_initialize_timeout_has_stderr_tail(tmp_path: Path) -> None:
    marker = tmp_path / "terminated"
    spec = faulty("--hang-on-start", "--term-marker", str(marker), "--stderr",
                  "booting the reactor", startup_timeout="1s")
    async with rt(tmp_path, spec) as mcp:
        with pytest.raises(ToolError, match="did not finish initialising within 1s") as info:
            await mcp.call_tool("f", "pid", {})
        assert "booting the reactor" in str(info.value)
    # the hung server was killed at once (SIGKILL), not stopped the SDK's graceful way (close
    # its stdin, wait 2 s, SIGTERM), which made the error wait for that grace
    assert not marker.exists()


async def test_a_server_that_prints_to_stdout_is_told_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from engine.secrets import Redactor

    script = ("print('listening on port 8080 with token s3cr3t-t0ken', flush=True); "
              "import time; time.sleep(30)")
    spec = MCPServerSpec(command=sys.executable, args=["-c", script], startup_timeout="2s")
    async with rt(tmp_path, spec, redactor=Redactor(["s3cr3t-t0ken"])) as mcp:
        with pytest.raises(ToolError, match="did not finish initialising") as info:
            await mcp.call_tool("f", "pid", {})
    assert "wrote to stdout what is not MCP (JSON-RPC): 'listening on port 8080 with token" \
        in str(info.value)
    assert "s3cr3t-t0ken" not in str(info.value)  # masked, as in its stderr
    # the SDK logs the bad line with a traceback: that must not reach the user's handlers
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("mcp.")]


async def test_initialize_timeout_of_a_silent_server_says_so(tmp_path: Path) -> None:
    async with rt(tmp_path, faulty("--hang-on-start", startup_timeout="0.5s")) as mcp:
        with pytest.raises(ToolError, match=r"did not finish initialising within 0\.5s; it "
                                            "wrote nothing to stderr"):
            await mcp.call_tool("f", "pid", {})


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_stderr_in_the_pipe_when_the_start_is_abandoned_is_kept(tmp_path: Path) -> None:
    """The start-up timeout cancelled the task that copies the server's stderr from its pipe
    at once: what the server had written but the busy event loop had not yet copied (under
    load) was lost, and the timeout's error had no stderr tail. Here the loop is blocked
    until the line is in the pipe, then the start is abandoned, as the timeout does."""
    import select

    from engine.mcp._transport import StderrLog, stdio_target

    log = StderrLog()
    spec = faulty("--hang-on-start", "--stderr", "booting the reactor")
    target = stdio_target("f", spec, base_dir=tmp_path, runner=None, errlog=log)
    with anyio.fail_after(20), anyio.CancelScope() as scope:
        async with target:  # the server is started
            readable, _, _ = select.select([target._read_fd], [], [], 15)  # loop blocked
            assert readable, "the server wrote nothing to stderr within 15 s"
            scope.cancel()
            await anyio.sleep(15)
    assert scope.cancelled_caught
    assert log.tail() == "booting the reactor"
    log.close()


async def test_missing_command_is_clear_and_others_unharmed(tmp_path: Path) -> None:
    servers = {"gone": MCPServerSpec(command="no-such-mcp-server-xyz"), "f": faulty()}
    async with MCPRuntime(servers, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with pytest.raises(ToolError, match="'no-such-mcp-server-xyz' was not found"):
            await mcp.call_tool("gone", "x", {})
        assert (await mcp.call_tool("f", "pid", {})).text.isdigit()


async def test_refused_url_is_clear(tmp_path: Path) -> None:
    from tests.mcp.conftest import free_port

    spec = MCPServerSpec(url=f"http://user:s3cret@127.0.0.1:{free_port()}/mcp", timeout="3s")
    async with MCPRuntime({"remote": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with pytest.raises(ToolError, match=r"could not connect to MCP server 'remote' at "
                                            r"http://127\.0\.0\.1:\d+/mcp") as info:
            await mcp.list_tools("remote")
        assert "s3cret" not in str(info.value)


async def test_health_check_restarts_dead_server(tmp_path: Path) -> None:
    import os
    import signal

    async with rt(tmp_path, faulty()) as mcp:
        pid = int((await mcp.call_tool("f", "pid", {})).text)
        os.kill(pid, signal.SIGKILL)
        assert not await mcp.manager.health_check("f")
        await mcp.manager.client("f")
        assert "f" in mcp.registry._stale  # the new process is listed again before use
        assert int((await mcp.call_tool("f", "pid", {})).text) != pid


async def test_health_loop_restarts_killed_server(tmp_path: Path) -> None:
    import os
    import signal

    settings = MCPSettings(health_interval_s=0.2, call_timeout_s=5)
    async with MCPRuntime({"f": faulty()}, base_dir=tmp_path, settings=settings) as mcp:
        pid = int((await mcp.call_tool("f", "pid", {})).text)
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(15):
            while mcp.manager.status("f").spawns < 2 or not mcp.manager.is_running("f"):
                await anyio.sleep(0.05)
        assert int((await mcp.call_tool("f", "pid", {})).text) != pid


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_fan_out_of_200_calls_spawns_once(tmp_path: Path) -> None:
    results: list[str] = []

    async def one(i: int) -> None:
        results.append((await mcp.call_tool("f", "env", {"name": "GIVEN"})).text)

    spec = faulty()
    spec = spec.model_copy(update={"env": {**spec.env, "GIVEN": "yes"}})
    async with rt(tmp_path, spec) as mcp:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
        stats = mcp.stats()["servers"]["f"]
    assert results == ["yes"] * 200
    assert (stats["spawns"], stats["calls"], stats["errors"]) == (1, 200, 0)


async def test_launch_goes_through_the_runner_seam(tmp_path: Path) -> None:
    from collections.abc import Mapping, Sequence

    from engine.sandbox.base import CommandResult, PreparedCommand

    class TaggingRunner:
        name = "tagging"

        def __init__(self) -> None:
            self.prepared: list[list[str]] = []

        def prepare(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> PreparedCommand:
            self.prepared.append(list(argv))
            scratch = tmp_path / f"scratch{len(self.prepared)}"
            scratch.mkdir()
            return PreparedCommand(argv=list(argv), env={**(env or {}), "CONFINED": "yes"},
                                   cwd=cwd, cleanup=[str(scratch)])

        async def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                      cwd: str | None = None, stdin: bytes | None = None,
                      timeout: float | None = None) -> CommandResult:
            raise NotImplementedError

    runner = TaggingRunner()
    asked: list[str] = []

    def runner_for(name: str, spec: MCPServerSpec) -> TaggingRunner:
        asked.append(name)
        return runner

    async with rt(tmp_path, faulty(), runner_for=runner_for) as mcp:
        assert (await mcp.call_tool("f", "env", {"name": "CONFINED"})).text == "yes"
        assert (tmp_path / "scratch1").is_dir()
    assert asked == ["f"]
    assert not (tmp_path / "scratch1").exists()  # the runner's cleanup list was honoured
    assert runner.prepared[0][0] == sys.executable
    assert runner.prepared[0][1].endswith("faulty_server.py")


async def test_legacy_handshake_ping_and_list_changed_notification(tmp_path: Path) -> None:
    settings = MCPSettings(health_interval_s=0, call_timeout_s=10, protocol_mode="legacy")
    policies = {"strict": PolicySpec(level="critical")}
    async with MCPRuntime({"f": faulty(policy="strict")}, base_dir=tmp_path, settings=settings,
                          policies=policies) as mcp:
        assert (await mcp.call_tool("f", "pid", {})).text.isdigit()
        assert mcp.manager.status("f").protocol_version == "2025-11-25"
        assert await mcp.manager.health_check("f")  # a real `ping`
        await mcp.call_tool("f", "poison", {})
        with anyio.fail_after(5):  # notifications/tools/list_changed
            while "f" not in mcp.registry._stale:
                await anyio.sleep(0.02)
        with pytest.raises(PolicyViolation, match="policy level critical"):
            await mcp.call_tool("f", "pid", {})


async def test_gives_up_after_max_restarts(tmp_path: Path) -> None:
    settings = MCPSettings(health_interval_s=0, call_timeout_s=10, max_restarts=1)
    async with MCPRuntime({"f": faulty()}, base_dir=tmp_path, settings=settings) as mcp:
        for _ in range(2):
            with pytest.raises(ToolError, match="went down during"):
                await mcp.call_tool("f", "crash", {})
        for _ in range(2):
            with pytest.raises(ToolError, match=r"went down 2 times; not restarting") as info:
                await mcp.call_tool("f", "pid", {})
            assert "crashing on purpose" in str(info.value)
        assert mcp.manager.status("f").spawns == 2


async def test_server_exiting_at_start_reports_its_stderr(tmp_path: Path) -> None:
    code = "import sys; print('bad config: missing --root', file=sys.stderr); sys.exit(2)"
    spec = MCPServerSpec(command=sys.executable, args=["-c", code])
    async with MCPRuntime({"x": spec}, base_dir=tmp_path, settings=SETTINGS) as mcp:
        with pytest.raises(ToolError, match="failed during start-up") as info:
            await mcp.list_tools("x")
        assert "bad config: missing --root" in str(info.value)
        assert "it exited (or closed its stdout) before answering initialize" in \
            str(info.value)


def _alive(pid: int) -> bool:
    """A process that exists and is no zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_background_children_of_a_cleanly_exiting_server_are_killed(
        tmp_path: Path) -> None:
    """The server exits when its stdin closes; the `sleep` it started must not outlive it."""
    pid_file = tmp_path / "sleep.pid"
    script = tmp_path / "spawner.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\n"
                      f"exec {sys.executable} {HERE / 'faulty_server.py'}\n")
    script.chmod(0o755)
    spec = MCPServerSpec(command=str(script), env={"PYTHONPATH": str(ROOT)})
    async with rt(tmp_path, spec) as mcp:
        server_pid = int((await mcp.call_tool("f", "pid", {})).text)
        sleep_pid = int(pid_file.read_text())
        assert _alive(sleep_pid)
    with anyio.fail_after(5):
        while _alive(sleep_pid):
            await anyio.sleep(0.02)
    assert not _alive(server_pid)
