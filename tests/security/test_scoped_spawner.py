"""The engine thread that starts high/critical sandboxes in their Landlock domain: it must not
serialise the steps, must outlive every sandbox it started (bwrap's --die-with-parent fires
when the *thread* that forked it exits), even once the main thread has returned while another
thread still runs a workflow, must be one per process however many threads ask at once, and
must survive a launch that fails."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from engine.sandbox._landlock import MIN_ABI, landlock_abi, scoped_popen
from tests.security.sec_helpers import make_runner

pytestmark = [pytest.mark.anyio, pytest.mark.bwrap]
ROOT = Path(__file__).resolve().parent.parent.parent
ABI = landlock_abi()
needs_scope = pytest.mark.skipif(
    ABI is None or ABI < MIN_ABI,
    reason=f"the kernel's Landlock ABI is {ABI}, scoping needs {MIN_ABI} (Linux 6.12)")


def _engine(code: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh Python with the project importable (a process of its own: the
    spawner thread is made once per process)."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


PRELUDE = """
    import sys, tempfile, threading, time
    from pathlib import Path
    import anyio
    from tests.security.sec_helpers import make_runner
    policy, runner = make_runner("high", Path(tempfile.mkdtemp()))
    assert runner.scoped, runner
"""


@needs_scope
def test_a_workflow_thread_outliving_the_main_thread_keeps_its_sandboxes() -> None:
    """A non-daemon thread still running steps when the main thread returns: Python's
    shutdown stops ThreadPoolExecutor workers at that moment, which killed the running
    sandbox (SIGKILL through --die-with-parent) and refused the next command."""
    done = _engine(PRELUDE + """
    def steps():
        first = anyio.run(runner.run, ["sh", "-c", "sleep 1; echo alive"])
        print("first", first.exit_code, first.stdout.strip(), flush=True)
        second = anyio.run(runner.run, ["sh", "-c", "echo again"])
        print("second", second.exit_code, second.stdout.strip(), flush=True)

    threading.Thread(target=steps).start()
    time.sleep(0.3)  # the first sandbox is running when the main thread returns
    """)
    assert done.stdout == "first 0 alive\nsecond 0 again\n", done


@needs_scope
def test_threads_asking_at_once_share_one_spawner_thread() -> None:
    done = _engine("""
    import shutil, tempfile, threading
    from pathlib import Path
    import anyio
    from engine.sandbox._runners import BwrapRunner
    from tests.security.sec_helpers import make_policy
    policy = make_policy("high", Path(tempfile.mkdtemp()))
    # scoped=True skips the check that makes the spawner: none exists yet
    runner = BwrapRunner(policy, bwrap=shutil.which("bwrap"), scoped=True)
    barrier, codes = threading.Barrier(4), []

    def step():
        barrier.wait()
        codes.append(anyio.run(runner.run, ["true"]).exit_code)

    threads = [threading.Thread(target=step) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [t.name for t in threading.enumerate() if t.name.startswith("plait-scoped")]
    print(codes, len(names))
    """)
    assert done.stdout == "[0, 0, 0, 0] 1\n", done


@needs_scope
async def test_parallel_high_steps_run_at_the_same_time(tmp_path: Path) -> None:
    """20 commands at high, each waiting until all 20 have started (up to 15 s): they can
    only all succeed if the spawner does not hold one launch until another ends."""
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    _, runner = make_runner("high", tmp_path, filesystem={"write": [str(meeting)]})
    script = (f'touch {meeting}/"$1"; for i in $(seq 150); do '
              f'[ "$(ls {meeting} | wc -l)" -ge 20 ] && echo met && exit 0; sleep 0.1; '
              'done; exit 1')
    codes: list[tuple[int, str]] = []

    async def step(n: int) -> None:
        result = await runner.run(["sh", "-c", script, "sh", str(n)], timeout=30)
        codes.append((result.exit_code, result.stdout))

    with anyio.fail_after(40):
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(step, n)
    assert codes == [(0, "met\n")] * 20


@needs_scope
def test_a_launch_that_fails_reaches_the_caller_and_the_spawner_goes_on() -> None:
    with pytest.raises(ValueError, match="null byte"):
        scoped_popen(["tr\0ue"])
    with pytest.raises(FileNotFoundError):
        scoped_popen(["/nonexistent/plait-no-such-program"])
    assert scoped_popen(["true"]).wait(timeout=10) == 0
