"""Attack suite: network under `network: false`, secrets in the environment, privileges."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.sandbox import minimal_env
from tests.security.sec_helpers import Canary, assert_healthy, make_runner

pytestmark = pytest.mark.anyio

SECRET = "sk-live-PARENT-ONLY-0123456789"


def _send(canary: Canary) -> list[str]:
    return ["bash", "-c",
            f"echo tcp-leak > /dev/tcp/127.0.0.1/{canary.tcp_port}; "
            f"echo udp-leak > /dev/udp/127.0.0.1/{canary.udp_port}; "
            f"echo udp-leak > /dev/udp/127.0.0.1/{canary.udp_port}; exit 0"]


def _settle(canary: Canary, expect: int) -> None:
    deadline = time.monotonic() + 2
    while len(canary.received) < expect and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3 if expect == 0 else 0)


async def test_control_low_level_reaches_the_listener(canary: Canary, tmp_path: Path) -> None:
    """Proves the canary works: without a sandbox both packets arrive."""
    _, runner = make_runner("low", tmp_path)
    result = await runner.run(_send(canary))
    _settle(canary, 2)
    assert result.exit_code == 0
    assert b"tcp:tcp-leak\n" in canary.received and b"udp:udp-leak\n" in canary.received


@pytest.mark.bwrap
@pytest.mark.parametrize("level", ["high", "critical"])
async def test_no_network_reaches_nothing(canary: Canary, tmp_path: Path, level: str) -> None:
    _, runner = make_runner(level, tmp_path)
    result = await runner.run(_send(canary))
    _settle(canary, 0)
    assert canary.received == []
    assert "Network is unreachable" in result.stderr or "refused" in result.stderr
    await assert_healthy(runner)


@pytest.mark.bwrap
async def test_network_true_is_honoured(canary: Canary, tmp_path: Path) -> None:
    _, runner = make_runner("high", tmp_path, network=True)
    await runner.run(_send(canary))
    _settle(canary, 1)
    assert b"tcp:tcp-leak\n" in canary.received


@pytest.mark.bwrap
@pytest.mark.parametrize("source", ["/proc/1/environ", "/proc/self/environ",
                                    "/proc/*/environ"])
async def test_high_cannot_read_a_parent_secret(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, source: str) -> None:
    monkeypatch.setenv("PLAIT_TEST_SECRET", SECRET)
    _, runner = make_runner("high", tmp_path)
    result = await runner.run(
        ["sh", "-c", f"cat {source} | tr '\\0' '\\n'; cat /proc/{os.getpid()}/environ; ls /proc"],
        env={"DECLARED": "visible"})
    assert SECRET not in result.stdout + result.stderr
    assert "DECLARED=visible" in result.stdout  # the declared variable is passed
    pids = {w for w in result.stdout.split() if w.isdigit()}
    assert str(os.getpid()) not in pids  # the engine is not even visible
    await assert_healthy(runner)


@pytest.mark.parametrize("level", ["low", "medium"])
async def test_commands_do_not_inherit_undeclared_secrets(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path, level: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    _, runner = make_runner(level, tmp_path)
    result = await runner.run(["sh", "-c", "cat /proc/self/environ | tr '\\0' '\\n'; env"],
                              env={"DECLARED": "visible"})
    assert SECRET not in result.stdout
    assert "DECLARED=visible" in result.stdout
    await assert_healthy(runner)


@pytest.mark.parametrize("level", ["low", "medium"])
def test_stdio_server_started_from_prepare_sees_only_declared_env(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, level: str) -> None:
    """A stdio MCP server is launched from Runner.prepare: it gets minimal_env + declared."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("UNDECLARED_TOKEN", SECRET)
    _, runner = make_runner(level, tmp_path)
    server = [sys.executable, "-c",
              "import json, os, sys; json.dump(dict(os.environ), sys.stdout)"]
    prepared = runner.prepare(server, env={"SERVER_TOKEN": "declared-value"})
    assert set(prepared.env) <= set(minimal_env({"SERVER_TOKEN": "x"}))
    done = subprocess.run(prepared.argv, env=prepared.env, cwd=prepared.cwd,
                          capture_output=True, text=True, timeout=20, check=True)
    seen = json.loads(done.stdout)
    assert seen["SERVER_TOKEN"] == "declared-value"
    assert SECRET not in done.stdout
    assert "UNDECLARED_TOKEN" not in seen and "ANTHROPIC_API_KEY" not in seen


@pytest.mark.bwrap
async def test_no_privileges_inside(tmp_path: Path) -> None:
    _, runner = make_runner("high", tmp_path)
    result = await runner.run(["sh", "-c", "id -u; grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)'"
                               " /proc/self/status"])
    lines = dict(line.split(":\t") for line in result.stdout.splitlines()[1:])
    assert result.stdout.splitlines()[0] == "65534"
    assert lines["CapEff"] == lines["CapPrm"] == lines["CapBnd"] == "0000000000000000"
    assert lines["NoNewPrivs"] == "1"
    await assert_healthy(runner)


@pytest.mark.bwrap
@pytest.mark.parametrize("attempt", [
    "mount -t tmpfs none /tmp",            # setuid mount binary: no_new_privs ignores setuid
    "chroot / true",                       # needs CAP_SYS_CHROOT
    "unshare --mount --map-root-user mount -t proc proc /proc && cat /proc/1/environ",
    "nsenter -t 1 -a true",                # join the host's namespaces
])
async def test_regaining_privileges_fails(tmp_path: Path, attempt: str) -> None:
    _, runner = make_runner("high", tmp_path)
    result = await runner.run(["sh", "-c", attempt])
    assert result.exit_code != 0, result
    await assert_healthy(runner)


@pytest.mark.bwrap
def test_stdio_server_under_bwrap_sees_no_parent_secret_even_if_launched_with_all_env(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An MCP SDK may merge its own defaults or the whole parent environment into the env it
    launches `prepare()`'s argv with: `env -i` in front of bwrap drops all of it."""
    monkeypatch.setenv("UNDECLARED_TOKEN", SECRET)
    _, runner = make_runner("high", tmp_path)
    server = ["sh", "-c", "tr '\\0' '\\n' < /proc/self/environ; tr '\\0' '\\n' < /proc/1/environ"]
    prepared = runner.prepare(server, env={"SERVER_TOKEN": "declared-value"})
    done = subprocess.run(prepared.argv, env={**os.environ, **prepared.env}, cwd=prepared.cwd,
                          capture_output=True, text=True, timeout=20, check=True)
    assert "SERVER_TOKEN=declared-value" in done.stdout
    assert SECRET not in done.stdout and "UNDECLARED_TOKEN" not in done.stdout
