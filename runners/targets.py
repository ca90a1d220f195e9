"""Where `plait run` writes its reports and traces: checked before the run starts, so a path
that cannot be written fails at once (exit 2), not with a traceback after the run."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import ConfigError


def check_writable(path: Path, option: str, what: str) -> None:
    """Raise ConfigError unless a file could be written at `path` (directories missing on
    the way are created when it is written): not a directory, under a directory."""
    fix = f"give {option} the path of a file in a writable directory"
    if path.is_dir():
        raise ConfigError(f"cannot write {what} to {path}: it is a directory", hint=fix)
    if path.exists() and not path.is_file():  # a device or FIFO (/dev/stdout): written into
        if not os.access(path, os.W_OK):
            raise ConfigError(f"cannot write {what} to {path}: it is not writable", hint=fix)
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"cannot write {what} to {path}: {ancestor} is not a directory",
                          hint=fix)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} to {path}: {ancestor} is not writable",
                          hint=fix)
