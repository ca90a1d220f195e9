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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
