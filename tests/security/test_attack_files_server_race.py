"""Attack suite: the bundled files server and a directory swapped for a symlink mid-call.

The server resolves a path (symlinks included) and checks it is under its root, then opens
it. A concurrent writer in the root (a sandboxed step whose write root is the server's root)
can swap a directory for a symlink to the outside between the two. The open must not follow
it. One deterministic case at the exact moment, and one real race against the server
running as a stdio subprocess.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.mcp.servers._common import Confined, PathOutsideRoot
from engine.spec.models import MCPServerSpec

pytestmark = pytest.mark.anyio
SECRET = "OUTSIDE-THE-ROOT-5d1c"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "sub" / "a.txt").write_text("inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.txt").write_text(SECRET)
    return tmp_path


def _swap(root: Path, outside: Path) -> None:
    """What the concurrent writer does: `sub` becomes a symlink to the outside."""
    (root / "sub").rename(root / "sub.old")
    (root / "sub").symlink_to(outside)


def test_swap_right_after_the_check_is_not_followed(layout: Path) -> None:
    box = Confined(layout / "root")
    target = box.resolve("sub/a.txt")          # the check passes
    written = box.resolve("sub/new.txt")
    _swap(layout / "root", layout / "outside")  # then the swap
    with pytest.raises(PathOutsideRoot):
        box.read_bytes(target, 1000, "sub/a.txt")
    with pytest.raises(PathOutsideRoot):
        box.write_bytes(written, b"planted")
    assert not (layout / "outside" / "new.txt").exists()
    assert box.read_bytes(box.resolve("sub.old/a.txt"), 1000, "sub.old/a.txt") == b"inside"


async def test_racing_writer_never_gets_the_server_out_of_its_root(layout: Path) -> None:
    root = layout / "root"
    (root / "sub.l").symlink_to(layout / "outside")
    stop = threading.Event()

    def flip() -> None:  # `sub` is a directory, then a symlink to the outside, and again
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            os.rename(root / "sub", root / "sub.d")
            os.rename(root / "sub.l", root / "sub")
            os.rename(root / "sub", root / "sub.l")
            os.rename(root / "sub.d", root / "sub")

    spec = MCPServerSpec(command=sys.executable,
                         args=["-m", "engine.mcp.servers.files", "--root", str(root)],
                         env={"PYTHONPATH": str(ROOT)})
    seen: list[str] = []
    async with MCPRuntime({"files": spec}, base_dir=layout,
                          settings=MCPSettings(health_interval_s=0, call_timeout_s=15,
                                               startup_timeout_s=30)) as mcp:
        thread = threading.Thread(target=flip, daemon=True)
        thread.start()
        try:
            for _ in range(150):
                try:
                    seen.append((await mcp.call("files.read_file", {"path": "sub/a.txt"})).text)
                except ToolError:
                    seen.append("refused")
        finally:
            stop.set()
            thread.join(5)
    assert SECRET not in seen, f"read outside the root {seen.count(SECRET)} times in 150"
