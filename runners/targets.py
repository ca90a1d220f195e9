"""Where `plait run` writes its reports and traces: checked before the run starts, so a path
that cannot be written fails at once (exit 2), not with a traceback after the run."""

from __future__ import annotations

from pathlib import Path

from engine.atomic import unwritable
from engine.errors import ConfigError


def check_writable(path: Path, option: str, what: str) -> None:
    """Raise ConfigError unless a file could be written at `path`."""
    why = unwritable(path)
    if why is not None:
        raise ConfigError(f"cannot write {what} to {path}: {why}",
                          hint=f"give {option} the path of a file in a writable directory")
