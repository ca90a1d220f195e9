"""The one atomic write: whole files only, and never a device replaced by a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from engine.atomic import atomic_write


def test_writes_whole_files_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "out.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write(fifo, "through the pipe")
        assert os.read(reader, 100) == b"through the pipe"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    atomic_write(Path(os.devnull), "discarded")
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)


def test_unwritable_says_why_without_writing(tmp_path: Path) -> None:
    from engine.atomic import unwritable

    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    assert unwritable(tmp_path / "adir") == "it is a directory"
    assert unwritable(tmp_path / "afile" / "below" / "x.json") == \
        f"{tmp_path / 'afile'} is a file, not a directory"
    assert unwritable(tmp_path / "new" / "deeper" / "x.json") is None
    assert not (tmp_path / "new").exists()  # looked at, nothing created
    assert unwritable(tmp_path / "afile") is None  # replaced atomically
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]  # no probe left


def test_unwritable_is_true_for_root_too() -> None:
    """os.access says yes to root for /proc, where nothing can be created: the write then
    failed after the run (a --record cassette, a --junit report)."""
    from engine.atomic import unwritable

    if not Path("/proc/self").is_dir():
        pytest.skip("needs procfs")
    assert unwritable(Path("/proc/plait-x/t.yaml")) == \
        "/proc/plait-x cannot be created in /proc (No such file or directory)"
    assert unwritable(Path("/proc/plait-x.yaml")) == \
        "/proc is not writable (No such file or directory)"


def test_a_new_file_gets_the_mode_open_would_give_and_a_replaced_one_keeps_its_own(
        tmp_path: Path) -> None:
    """Reports are CI artefacts read by other users (an upload step, a web server): a temp
    file's private 0600 must not leak into the file it becomes."""
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "new.xml", "x")
        os.umask(0o077)
        atomic_write(tmp_path / "private.xml", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.xml").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "private.xml").stat().st_mode) == 0o600
    kept = tmp_path / "kept.html"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
