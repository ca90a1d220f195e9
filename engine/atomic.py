"""Writing a file so that a crash or a full disk never leaves half of it (SECURITY-NOTES:
`open(p, "w").write(s)` on a full disk can return normally and leave a 0-byte file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write `data` to a temp file beside `path`, fsync it, then rename it over `path`.
    Raises OSError (the caller turns it into its own error); the temp file never stays."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if path.exists() and not path.is_file():
        # a device, a FIFO (e.g. /dev/null, /dev/stdout): write into it, never replace it
        with path.open("wb") as handle:
            handle.write(payload)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # mkstemp's private 0600 would leak into the file it becomes
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(path: Path) -> int:
    """The permissions `open(path, "w")` would leave: the file's own when it exists, else
    0666 less the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask sets it,
    which would race with files created by other threads meanwhile)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def unwritable(path: Path) -> str | None:
    """Why `atomic_write(path, ...)` would fail, found without leaving anything behind (so a
    run that never starts leaves no trace): None when it looks writable."""
    if path.is_dir():
        return "it is a directory"
    if path.exists() and not path.is_file():  # a device or FIFO (/dev/stdout): written into
        return None if os.access(path, os.W_OK) else "it is not writable"
    ancestor = path.parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent  # directories missing on the way are created by the write
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"{ancestor} is not writable"
    return _probe(ancestor, path.parent)


def _probe(directory: Path, target: Path) -> str | None:
    """Whether a file can really be made in `directory` (where the write makes `target`, the
    file's own directory, if missing): os.access says yes to root everywhere, even in /proc
    or on a read-only mount, so a probe file is made there and removed at once."""
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".plait-probe-", suffix=".tmp")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if directory != target:
            return f"{target} cannot be created in {directory} ({reason})"
        return f"{directory} is not writable ({reason})"
    os.close(fd)
    os.unlink(name)
    return None
