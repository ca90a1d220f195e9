from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.state import RunStore
from engine.state.location import resolve_location


def test_default_is_beside_the_workflow(tmp_path: Path) -> None:
    wf = tmp_path / "flows" / "digest.yaml"
    wf.parent.mkdir()
    wf.write_text("version: 1\n")
    with RunStore.open(None, workflow_path=wf) as s:
        assert s.path == str(tmp_path / "flows" / ".plait" / "runs.db")
    assert (tmp_path / "flows" / ".plait" / "runs.db").is_file()


def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "runs.db"
    with RunStore.open(target) as s:
        assert s.list_runs() == []
    assert target.is_file()


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///{tmp}/abs.db", "{tmp}/abs.db"),
    ("sqlite:////{tmp}/abs4.db", "{tmp}/abs4.db"),
    ("sqlite:rel/r.db", "{cwd}/rel/r.db"),
    ("{tmp}/bare.db", "{tmp}/bare.db"),
    ("bare-rel.db", "{cwd}/bare-rel.db"),
    ("SQLITE:rel2.db", "{cwd}/rel2.db"),
])
def test_state_url_forms(url: str, expected: str, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    tmp = str(tmp_path).lstrip("/") if url.startswith("sqlite:////") else str(tmp_path)
    monkeypatch.setenv("PLAIT_STATE_URL", url.format(tmp=tmp))
    want = expected.format(tmp=tmp_path, cwd=cwd)
    # the env var wins over the workflow's directory
    with RunStore.open(None, workflow_path=tmp_path / "elsewhere" / "wf.yaml") as s:
        assert s.path == want
    assert Path(want).is_file()


def test_explicit_location_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_STATE_URL", str(tmp_path / "env.db"))
    assert resolve_location(f"sqlite:///{tmp_path}/x.db") == f"{tmp_path}/x.db"
    assert resolve_location(tmp_path / "p.db") == str(tmp_path / "p.db")


def test_memory_store() -> None:
    with RunStore.open(":memory:") as s:
        assert s.path == ":memory:"
        assert s.list_runs() == []


@pytest.mark.parametrize("url", ["sqlite::memory:", "sqlite://", "sqlite:///:memory:"])
def test_the_in_memory_spellings(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///:memory: (SQLAlchemy's spelling) created a file named :memory: at the root of
    the filesystem (as root; a permission error for anyone else)."""
    assert resolve_location(url) == ":memory:"
    monkeypatch.setenv("PLAIT_STATE_URL", url)
    assert resolve_location(None) == ":memory:"


@pytest.mark.parametrize(("url", "match"), [
    ("postgres://db/plait", "only sqlite"),
    ("sqlite://host/runs.db", "host part"),
    ("sqlite:", "names no file"),
])
def test_bad_state_urls(url: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_STATE_URL", url)
    with pytest.raises(ConfigError, match=match) as err:
        RunStore.open(None)
    assert err.value.hint


# Tests run as root, where chmod 0o500 does not stop writes. These locations fail for root
# too: a regular file where a directory should be, and /proc, where nobody can create files.

def test_file_in_place_of_the_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="is not a directory") as err:
        RunStore.open(blocker / "runs.db")
    assert str(blocker) in str(err.value)
    assert err.value.hint and "PLAIT_STATE_URL" in err.value.hint
    with pytest.raises(ConfigError, match="cannot create the run record directory") as err2:
        RunStore.open(blocker / "deeper" / "runs.db")
    assert err2.value.hint and "permissions" in err2.value.hint
    assert blocker.read_text() == "not a directory"


def test_unwritable_directory_even_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs procfs")
    monkeypatch.setenv("PLAIT_STATE_URL", "sqlite:////proc/self/plait-runs.db")
    with pytest.raises(ConfigError, match=r"/proc/self/plait-runs\.db") as err:
        RunStore.open(None)
    assert err.value.hint and "PLAIT_STATE_URL" in err.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_for_non_root(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match=str(ro)):
            RunStore.open(ro / "runs.db")
    finally:
        ro.chmod(0o700)


def test_database_path_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "runs.db").mkdir()
    with pytest.raises(ConfigError, match="is a directory"):
        RunStore.open(tmp_path / "runs.db")


def test_not_a_database_file(tmp_path: Path) -> None:
    junk = tmp_path / "runs.db"
    junk.write_bytes(b"this is certainly not sqlite" * 100)
    with pytest.raises(ConfigError, match=r"runs\.db") as err:
        RunStore.open(junk)
    assert "not a database" in str(err.value)
    assert junk.read_bytes().startswith(b"this is certainly")  # left untouched
