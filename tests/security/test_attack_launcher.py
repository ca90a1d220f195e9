"""Attack suite: the part of a high sandbox that runs on the host.

`env -i ... bwrap ...` runs outside the sandbox, so what a step may set (`env:`, a stdio
server's `env`) must not steer it: a PATH that names a directory an earlier sandboxed step
wrote, loader variables (LD_PRELOAD, LD_DEBUG_OUTPUT, ...), or a variable name that `env`
would read as one of its own options. Each case is a real attempt, then a normal command.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from engine.commands import run_command
from engine.errors import PolicyViolation
from tests.security.sec_helpers import assert_healthy, make_runner

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]

OUT = {"write": ["out"]}


async def test_step_path_does_not_choose_the_launcher(tmp_path: Path) -> None:
    """Step 1 (hostile, sandboxed) leaves an `env` and a `prlimit` in its write root; step 2
    puts that directory first on its PATH, as a build-then-test workflow would."""
    policy, runner = make_runner("high", tmp_path, filesystem=OUT)
    marker = tmp_path / "ran-on-the-host"
    fake = f"#!/bin/sh\ntouch {marker} 2>/dev/null; echo FAKE-$0 >&2\nexec /usr/bin/env \"$@\"\n"
    plant = await runner.run(["sh", "-c", 'for p in env prlimit; do printf "%s" "$1" > out/$p;'
                              ' chmod +x out/$p; done', "plant", fake], cwd=str(tmp_path))
    assert plant.exit_code == 0, plant
    assert (tmp_path / "out" / "env").is_file()
    outcome = await run_command("echo ok", policy=policy, runner=runner,
                                env={"PATH": f"{tmp_path / 'out'}:/usr/bin:/bin"},
                                cwd=tmp_path, stdin=None, timeout=20, step_id="test")
    assert not marker.exists(), "a program an earlier step wrote ran on the host"
    assert "FAKE-" not in outcome.stderr  # nor in the sandbox in place of prlimit
    assert outcome.stdout == "ok\n"
    await assert_healthy(runner)


async def test_loader_variables_do_not_reach_the_host(tmp_path: Path) -> None:
    """LD_DEBUG_OUTPUT makes the dynamic loader of every process that sees it write a file:
    outside the sandbox that is a write anywhere on the host; inside it stays confined."""
    _, runner = make_runner("high", tmp_path, filesystem=OUT)
    leak = tmp_path / "leak"  # not a root: invisible inside the sandbox
    result = await runner.run(["sh", "-c", 'echo "$LD_DEBUG=$LD_DEBUG_OUTPUT"'],
                              env={"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(leak)})
    assert sorted(p.name for p in tmp_path.glob("leak*")) == []
    assert result.stdout == f"files={leak}\n"  # the command itself still gets them
    await assert_healthy(runner)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the library")
async def test_ld_preload_built_in_the_sandbox_never_runs_outside(tmp_path: Path) -> None:
    """Step 1 builds a library in its write root (what a build step does); step 2 preloads
    it for its own command. The library must run in the sandbox only."""
    _, runner = make_runner("high", tmp_path, filesystem=OUT)
    marker = tmp_path / "preloaded-on-the-host"
    source = ('#include <stdio.h>\n__attribute__((constructor)) static void hook(void) '
              f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    build = await runner.run(["sh", "-c", 'printf "%s" "$1" > out/hook.c && '
                              "gcc -shared -fPIC -o out/hook.so out/hook.c", "build", source],
                             cwd=str(tmp_path))
    assert build.exit_code == 0, build
    result = await runner.run(["sh", "-c", "echo ran"],
                              env={"LD_PRELOAD": str(tmp_path / "out" / "hook.so")})
    assert result.stdout == "ran\n", result
    assert not marker.exists(), "code an earlier sandboxed step built ran on the host"


async def test_a_variable_name_is_not_an_option_of_the_launcher(tmp_path: Path) -> None:
    """`env -i -S=...` would run the split string on the host, outside the sandbox."""
    policy, runner = make_runner("high", tmp_path)
    with pytest.raises(PolicyViolation) as excinfo:
        await run_command("echo inside", policy=policy, runner=runner,
                          env={"-S": "echo HOST-SIDE"}, cwd=tmp_path, stdin=None, timeout=20,
                          step_id="opt")
    assert excinfo.value.context["rule"] == "env"
    await assert_healthy(runner)


def test_stdio_server_launch_carries_no_loader_variable(tmp_path: Path) -> None:
    """A stdio MCP server is launched from prepare(): the same holds for it."""
    _, runner = make_runner("high", tmp_path)
    leak = tmp_path / "server-leak"
    prepared = runner.prepare(["sh", "-c", 'echo "$LD_DEBUG_OUTPUT"'],
                              env={"LD_DEBUG": "files", "LD_DEBUG_OUTPUT": str(leak),
                                   "PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert not any(k.startswith("LD_") for k in prepared.env)
    assert Path(prepared.argv[0]).is_absolute()
    done = subprocess.run(prepared.argv, env=prepared.env, cwd=prepared.cwd,
                          capture_output=True, text=True, timeout=20, check=True)
    # (the loader inside cannot open the file, so its trace may land on the output too)
    assert str(leak) in done.stdout.splitlines()
    assert list(tmp_path.glob("server-leak*")) == []
