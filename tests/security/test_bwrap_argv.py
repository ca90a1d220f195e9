"""The bubblewrap command line carries every confinement flag SECURITY-NOTES asks for."""

from __future__ import annotations

import sys
from pathlib import Path

from engine.sandbox import BwrapRunner
from tests.security.sec_helpers import make_policy


def _argv(level: str, tmp_path: Path, **spec: object) -> list[str]:
    runner = BwrapRunner(make_policy(level, tmp_path, **spec), bwrap="/usr/bin/bwrap")
    return runner.prepare(["true"], env={"DECLARED": "1"}).argv


def test_flags(tmp_path: Path) -> None:
    argv = _argv("high", tmp_path, filesystem={"read": ["in"], "write": ["out"]})
    bwrap_at = argv.index("/usr/bin/bwrap")
    # on a kernel with Landlock scoping, the domain's launcher runs between `env` and bwrap
    env_end = argv.index(sys.executable) if sys.executable in argv[:bwrap_at] else bwrap_at
    # bwrap itself starts with only the allowlist, from the engine's `env` (by absolute path:
    # never one a step's PATH points at)
    assert Path(argv[0]).name == "env" and Path(argv[0]).is_absolute() and argv[1] == "-i"
    assert all("=" in word for word in argv[2:env_end])
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    assert argv[argv.index("--uid") + 1] == "65534"
    assert "--share-net" not in argv
    assert ["--ro-bind-try", str(tmp_path / "in"), str(tmp_path / "in")] == \
        argv[argv.index(str(tmp_path / "in")) - 1:argv.index(str(tmp_path / "in")) + 2]
    assert argv[argv.index("--bind") + 1] == str(tmp_path / "out")
    assert "--tmpfs" in argv and argv[argv.index("--tmpfs") - 2] == "--size"
    inner = argv[argv.index("--") + 1:]
    assert inner[0].endswith("prlimit") and inner[-1] == "true"


def test_network_only_when_allowed(tmp_path: Path) -> None:
    assert "--share-net" in _argv("high", tmp_path, network=True)
    assert "--share-net" not in _argv("critical", tmp_path)
