"""An engine running as a non-root user: RLIMIT_NPROC is a hard kernel limit there, and
bubblewrap works unprivileged. Runs when the suite runs as root (it drops to uid 65534 with
`setpriv`) and a Python that uid can use is found; skipped otherwise, with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

WORKTREE = Path(__file__).resolve().parents[2]
ENGINE = """
import anyio, sys
from pathlib import Path
from engine.policy import resolve_policy
from engine.sandbox import runner_for
from engine.spec.models import PolicySpec

policy = resolve_policy(PolicySpec(level=sys.argv[1], max_processes=20), name="p",
                        base_dir=Path(sys.argv[2]), env={})

async def main():
    runner = runner_for(policy)
    bomb = await runner.run(["sh", "-c", "for i in $(seq 1 200); do sleep 3 & done; wait"])
    print("bomb", bomb.exit_code, bomb.killed_by, bomb.stderr.strip()[-80:])
    ok = await runner.run(["sh", "-c", "id -u"])
    print("after", ok.exit_code, ok.stdout.strip())

anyio.run(main)
"""


def _as_nobody(*argv: str, timeout: float = 40) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.pathsep.join([str(WORKTREE), sysconfig.get_paths()["purelib"]])}
    return subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                           *argv], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _python_for_nobody() -> str:
    if os.getuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to start an engine as uid 65534")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, shutil.which(version), shutil.which("python3")):
        if candidate and _as_nobody(candidate, "-c", "import anyio, pydantic, engine",
                                    timeout=20).returncode == 0:
            return candidate
    pytest.skip("no Python interpreter with plait's dependencies is readable by uid 65534")


@pytest.mark.parametrize("level", ["medium", pytest.param("high", marks=pytest.mark.bwrap)])
def test_fork_bomb_hits_the_kernel_limit_for_a_non_root_engine(tmp_path: Path,
                                                               level: str) -> None:
    python = _python_for_nobody()
    tmp_path.chmod(0o777)
    done = _as_nobody(python, "-c", ENGINE, level, str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    # the kernel refused the 21st process (the watchdog never had to act: killed_by None);
    # on a loaded machine the watchdog's poll can see the 21st first and kill the step
    # (killed_by max_processes): either way the bomb stopped at the limit
    code, killed_by = lines["bomb"].split()[:2]
    assert (killed_by == "None" and code == "2" and "Cannot fork" in lines["bomb"]) or \
        killed_by == "max_processes", lines
    assert lines["after"] == "0 65534"
