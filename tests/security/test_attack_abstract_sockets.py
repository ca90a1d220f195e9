"""Attack suite: the host's abstract unix sockets (X11, D-Bus live there) under `network: true`.

Abstract sockets belong to the network namespace, which `network: true` shares with the host,
so bubblewrap alone lets a command connect to them. At high and critical the sandbox also runs
in a Landlock domain scoped to abstract unix sockets (and signals): a connect or send to a
socket made outside the domain is refused with EPERM. The listener here is a real abstract
socket bound by the test process on the host; the same probe at medium reaches it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.sandbox import BwrapRunner, runner_for
from engine.sandbox._landlock import (
    MIN_ABI,
    _unavailable,
    landlock_abi,
    scoped_popen,
)
from tests.security.sec_helpers import Canary, assert_healthy, make_policy, make_runner

pytestmark = pytest.mark.anyio
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
#: the probes run a system python3 (bound inside the sandbox at the same place)
PYTHON3 = shutil.which("python3", path="/usr/bin:/bin")
ABI = landlock_abi()
needs_python3 = pytest.mark.skipif(PYTHON3 is None, reason="no python3 in /usr/bin or /bin")
needs_scope = pytest.mark.skipif(
    ABI is None or ABI < MIN_ABI,
    reason=f"the kernel's Landlock ABI is {ABI}, scoping needs {MIN_ABI} (Linux 6.12)")

#: argv: stream name, datagram name; prints one line per attempt
PROBE = r"""
import errno, socket, sys
def attempt(kind, name):
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.settimeout(5)
    try:
        if kind == socket.SOCK_DGRAM:
            sock.sendto(b"leak", "\0" + name)
        else:
            sock.connect("\0" + name)
            sock.sendall(b"leak")
        return "connected"
    except OSError as exc:
        return "refused " + errno.errorcode.get(exc.errno, str(exc.errno))
print("stream", attempt(socket.SOCK_STREAM, sys.argv[1]))
print("dgram", attempt(socket.SOCK_DGRAM, sys.argv[2]))
"""

#: an abstract socket made inside the sandbox, reached from another process there
INSIDE = r"""
import os, socket, subprocess, sys
name = "plait-inside-%d" % os.getpid()
server = socket.socket(socket.AF_UNIX)
server.bind("\0" + name)
server.listen(1)
client = ("import socket, sys; s = socket.socket(socket.AF_UNIX); "
          "s.connect(chr(0) + sys.argv[1]); s.sendall(b'ping')")
child = subprocess.Popen([sys.executable, "-c", client, name])
server.settimeout(10)
conn, _ = server.accept()
print(conn.recv(4).decode(), child.wait())
"""


@dataclass
class Listener:
    """A stream and a datagram abstract unix socket bound on the host."""

    stream: str
    dgram: str
    received: list[bytes] = field(default_factory=list)

    def probe(self) -> list[str]:
        assert PYTHON3 is not None
        return [PYTHON3, "-c", PROBE, self.stream, self.dgram]


@pytest.fixture
def listener() -> Iterator[Listener]:
    tag = secrets.token_hex(6)
    result = Listener(f"plait-test-stream-{tag}", f"plait-test-dgram-{tag}")
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind("\0" + result.stream)
    stream.listen(8)
    stream.settimeout(0.1)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind("\0" + result.dgram)
    dgram.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = stream.accept()
                with conn:
                    conn.settimeout(1)
                    result.received.append(b"stream:" + conn.recv(64))
            except OSError:
                pass
            with contextlib.suppress(OSError):
                result.received.append(b"dgram:" + dgram.recv(64))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield result
    stop.set()
    thread.join(5)
    stream.close()
    dgram.close()


def _settle(listener: Listener, expect: int) -> None:
    """Wait (bounded) for `expect` arrivals; with 0, give a late one time to show up."""
    done = threading.Event()
    for _ in range(40):
        if len(listener.received) >= expect:
            break
        done.wait(0.05)
    done.wait(0.3 if expect == 0 else 0)


@needs_python3
async def test_control_medium_reaches_the_host_socket(listener: Listener,
                                                      tmp_path: Path) -> None:
    """Proves the probe works: without a sandbox it connects and the listener hears it."""
    _, runner = make_runner("medium", tmp_path)
    result = await runner.run(listener.probe())
    _settle(listener, 2)
    assert result.stdout.splitlines() == ["stream connected", "dgram connected"], result
    assert sorted(listener.received) == [b"dgram:leak", b"stream:leak"]


@pytest.mark.bwrap
@needs_python3
@needs_scope
async def test_high_with_network_cannot_reach_the_host_socket(listener: Listener,
                                                              tmp_path: Path) -> None:
    _, runner = make_runner("high", tmp_path, network=True)
    assert isinstance(runner, BwrapRunner) and runner.scoped and not runner.weaker
    result = await runner.run(listener.probe())
    _settle(listener, 0)
    assert result.stdout.splitlines() == ["stream refused EPERM", "dgram refused EPERM"], result
    assert listener.received == []
    await assert_healthy(runner)


@pytest.mark.bwrap
@needs_python3
async def test_critical_cannot_reach_the_host_socket(listener: Listener,
                                                     tmp_path: Path) -> None:
    """No shared network namespace at critical: the name does not even exist inside."""
    _, runner = make_runner("critical", tmp_path)
    result = await runner.run(listener.probe())
    _settle(listener, 0)
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(" refused " in line for line in lines), result
    assert listener.received == []


@pytest.mark.bwrap
@needs_python3
@needs_scope
async def test_abstract_socket_made_inside_the_sandbox_works(tmp_path: Path) -> None:
    """Scoping refuses only sockets made outside: one bound in the sandbox is reached by
    another process of the same sandbox."""
    assert PYTHON3 is not None
    _, runner = make_runner("high", tmp_path, network=True)
    result = await runner.run([PYTHON3, "-c", INSIDE])
    assert (result.exit_code, result.stdout) == (0, "ping 0\n"), result


@pytest.mark.bwrap
@needs_scope
async def test_high_with_network_still_reaches_loopback_tcp_and_signals_inside(
        canary: Canary, tmp_path: Path) -> None:
    """What stays as documented: TCP to the host's 127.0.0.1 (network: true shares the
    namespace); and signals between the sandbox's own processes are not scoped away."""
    _, runner = make_runner("high", tmp_path, network=True)
    script = (f"echo tcp-ok > /dev/tcp/127.0.0.1/{canary.tcp_port} && echo sent; "
              "kill -0 1 && echo init-ok; sleep 30 & kill -TERM $!; wait $!; echo status $?")
    result = await runner.run(["bash", "-c", script])
    for _ in range(40):
        if canary.received:
            break
        threading.Event().wait(0.05)
    assert result.stdout.splitlines() == ["sent", "init-ok", "status 143"], result
    assert b"tcp:tcp-ok\n" in canary.received
    assert result.duration_s < 20  # the sleep was killed, not waited for


@pytest.mark.bwrap
@needs_scope
@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
async def test_stdio_mcp_server_at_high_starts_and_is_scoped(
        listener: Listener, canary: Canary, tmp_path: Path) -> None:
    """A stdio server is started by plait's transport from the engine's scoped thread (no
    launcher, no preexec_fn): it starts, answers over stdio, reaches loopback TCP, and not
    the host's abstract socket."""
    from engine.mcp import MCPRuntime, MCPSettings
    from engine.spec.models import MCPServerSpec

    python = Path(sys.executable)
    read = sorted({str(Path(p).resolve()) for p in (sys.prefix, sys.base_prefix, ROOT)})
    policy = make_policy("high", tmp_path, network=True, filesystem={"read": read})
    runner = runner_for(policy)
    assert isinstance(runner, BwrapRunner) and runner.scoped
    spec = MCPServerSpec(command=str(python), args=[str(HERE / "abstract_probe_server.py")])
    settings = MCPSettings(health_interval_s=0, call_timeout_s=20, startup_timeout_s=30)
    async with MCPRuntime({"p": spec}, base_dir=tmp_path, settings=settings,
                          runner_for=lambda name, server: runner) as mcp:
        answer = await mcp.call_tool("p", "probe", {"stream": listener.stream,
                                                    "dgram": listener.dgram,
                                                    "port": canary.tcp_port})
    seen = json.loads(answer.text)
    assert seen == {"stream": "refused EPERM", "dgram": "refused EPERM", "tcp": "connected"}
    _settle(listener, 0)
    assert listener.received == []


@pytest.mark.bwrap
@needs_python3
async def test_kernel_without_scope_runs_weaker_and_says_so(
        monkeypatch: pytest.MonkeyPatch, listener: Listener, tmp_path: Path) -> None:
    """On a kernel without Landlock ABI 6 the step still runs, under bwrap, reported as
    weaker: and it is weaker (the host socket is reachable), which is why it is reported."""
    why = _unavailable(None)
    assert why is not None
    monkeypatch.setattr("engine.sandbox._runners.scope_problem", lambda bwrap: why)
    policy = make_policy("high", tmp_path, network=True)
    runner = runner_for(policy)
    assert isinstance(runner, BwrapRunner) and not runner.scoped
    assert runner.weaker and runner.weaker_reason == f"no Landlock scope: {why}"
    assert runner.popen is subprocess.Popen  # started outside the domain, as reported
    result = await runner.run(listener.probe())
    assert result.stdout.splitlines() == ["stream connected", "dgram connected"], result


@pytest.mark.bwrap
async def test_unscoped_run_is_in_the_run_record(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from engine import load_text, stream_run
    from engine.executor.events import RunFinished, RunStarted

    monkeypatch.setattr("engine.sandbox._runners.scope_problem", lambda bwrap: "old kernel")
    workflow = load_text("version: 1\nname: scoped\npolicies:\n  strict: {level: high}\n"
                         "steps:\n  first: {run: 'true', policy: strict}\n",
                         str(tmp_path / "wf.yaml"))
    events = [event async for event in stream_run(workflow, {}, record_state=False)]
    started = [e for e in events if isinstance(e, RunStarted)]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert started[0].weaker_sandbox == ("strict: bwrap (no Landlock scope: old kernel)",)
    assert finished[0].status == "succeeded", finished


def test_reasons_name_the_kernel_needed() -> None:
    assert "6.12" in str(_unavailable(None)) and "seccomp" in str(_unavailable(None))
    assert "lsm=" in str(_unavailable(None, errno.EOPNOTSUPP))
    assert "ABI 5" in str(_unavailable(5)) and "6.12" in str(_unavailable(5))
    assert _unavailable(MIN_ABI) is None


@pytest.mark.bwrap
@needs_scope
def test_a_scoped_runner_starts_its_sandboxes_from_the_scoped_thread(tmp_path: Path) -> None:
    """A BwrapRunner is scoped unless told otherwise, also when made without runner_for: what
    it prepares is `env -i ... bwrap ...` with no launcher in front, started by `popen`, which
    is the scoped thread's; unscoped, plain subprocess.Popen."""
    policy = make_policy("high", tmp_path)
    runner = BwrapRunner(policy, bwrap=shutil.which("bwrap") or "bwrap")
    assert runner.scoped and not runner.weaker
    argv = runner.prepare(["true"], env={"DECLARED": "1"}).argv
    assert Path(argv[0]).name == "env" and argv[1] == "-i"
    assert all("=" in word for word in argv[2:argv.index(runner.bwrap)])
    assert sys.executable not in argv
    assert runner.popen is scoped_popen
    off = BwrapRunner(policy, bwrap=runner.bwrap, scoped=False)
    assert off.weaker and off.weaker_reason == "no Landlock scope: turned off by the caller"
    assert off.popen is subprocess.Popen


@needs_scope
def test_the_domain_scopes_signals_to_outside_processes() -> None:
    """Inside bwrap no host process is visible (PID namespace), so signal scoping is defence
    in depth, checked here on the domain itself: a process in it cannot even probe (kill -0)
    the engine, while the same command outside can; its own children it can signal."""
    script = f"kill -0 {os.getpid()} && echo reached; sleep 30 & kill $! && echo own-ok"
    control = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20,
                             check=False)
    assert control.stdout == "reached\nown-ok\n", control
    argv = ["sh", "-c", script]
    proc = scoped_popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=20)
    done = subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode())
    assert done.stdout == "own-ok\n", done
    assert "not permitted" in done.stderr, done
    # only the spawner thread took no_new_privs (and the domain): no other engine thread
    spawner = {t.native_id for t in threading.enumerate()
               if t.name.startswith("plait-scoped")}
    flagged = {int(task.name) for task in Path("/proc/self/task").iterdir()
               if "NoNewPrivs:\t1" in (task / "status").read_text()}
    assert len(spawner) == 1 and flagged == spawner


@needs_scope
def test_a_forked_engine_makes_its_own_scoped_thread() -> None:
    """A fork keeps only the forking thread: a forked copy of the engine must not queue its
    launches for the parent's spawner thread (it would wait forever)."""
    scoped_popen(["true"]).wait()  # the parent's spawner exists
    with warnings.catch_warnings():  # Python 3.12+ warns about fork with threads: intended
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: exit 0 only if a scoped launch works in bounded time
        code = 1
        try:
            code = scoped_popen(["true"]).wait(timeout=10)
        finally:
            os._exit(code)
    exit_code = None
    for _ in range(200):  # 10 s at most
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            exit_code = os.waitstatus_to_exitcode(status)
            break
        threading.Event().wait(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert exit_code == 0, "the forked engine's scoped launch hung or failed"
