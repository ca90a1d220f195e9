"""Where the run records live: an explicit location, PLAIT_STATE_URL, or beside the workflow."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConfigError

ENV_URL = "PLAIT_STATE_URL"
DEFAULT_DIR = ".plait"
DEFAULT_FILE = "runs.db"
MEMORY = ":memory:"

_FIX = (f"point --state (or {ENV_URL}) at a writable place (e.g. "
        "sqlite:///var/lib/plait/runs.db) or fix the permissions of that directory")


def resolve_location(location: str | Path | None, *, workflow_path: Path | None = None) -> str:
    """The database file to use, as an absolute path (or ``:memory:``).

    Order: ``location`` if given, else the ``PLAIT_STATE_URL`` environment variable, else
    ``<directory of the workflow>/.plait/runs.db`` (the current directory without a workflow).
    A location is a URL ``sqlite:///abs/path.db`` (absolute), ``sqlite:relative.db``
    (relative to the current directory) or a bare path.
    """
    if location is None:
        env = os.environ.get(ENV_URL, "").strip()
        if env:
            return _parse(env, source=ENV_URL)
        base = workflow_path.resolve().parent if workflow_path is not None else Path.cwd()
        return str(base / DEFAULT_DIR / DEFAULT_FILE)
    if isinstance(location, Path):
        return str(location.expanduser().absolute())
    return _parse(location, source="state location")


def _parse(text: str, *, source: str) -> str:
    # sqlite:///:memory: is SQLAlchemy's spelling: not a file named :memory: at the root
    if text in (MEMORY, "sqlite::memory:", "sqlite://", "sqlite:///:memory:"):
        return MEMORY
    scheme, sep, rest = text.partition(":")
    if not sep or len(scheme) < 2 or "/" in scheme or "\\" in scheme:
        return str(Path(text).expanduser().absolute())  # a bare path (or C:\...)
    if scheme.lower() != "sqlite":
        raise ConfigError(
            f"{source} {text!r} uses the scheme {scheme!r}; only sqlite is supported",
            hint="use sqlite:///absolute/path/runs.db, sqlite:relative/runs.db or a plain path")
    if rest.startswith("//"):
        path = rest[2:]
        if not path.startswith("/"):
            raise ConfigError(
                f"{source} {text!r} has a host part; sqlite URLs have none",
                hint="write sqlite:///absolute/path/runs.db (three slashes) "
                     "or sqlite:relative/runs.db")
        path = "/" + path.lstrip("/")
    else:
        path = rest
    if not path:
        raise ConfigError(f"{source} {text!r} names no file",
                          hint="write sqlite:///absolute/path/runs.db")
    return str(Path(path).expanduser().absolute())


def prepare_directory(db_file: str) -> None:
    """Create the database's directory, or raise ConfigError that says how to fix it."""
    if db_file == MEMORY:
        return
    directory = Path(db_file).parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ConfigError(
            f"cannot create the run record directory {directory}: "
            f"{exc.filename or directory} exists and is not a directory",
            hint=_FIX) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot create the run record directory {directory}: {exc.strerror or exc}",
            hint=_FIX) from exc
    if not directory.is_dir():
        raise ConfigError(f"run record location {directory} is not a directory", hint=_FIX)
    if Path(db_file).is_dir():
        raise ConfigError(f"run record database {db_file} is a directory, not a file",
                          hint=_FIX)


def fix_hint() -> str:
    return _FIX
