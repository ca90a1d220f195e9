"""plait-mcp-files: list, read, write and search files inside one root directory.

Every path argument is resolved (symlinks included) and must stay inside `--root`; a sibling
directory that merely shares the root's name as a prefix is outside.

    plait-mcp-files --root ./data [--read-only] [--max-bytes N]
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.mcp.servers._common import Confined, base_parser, existing_root, parse, serve, tool

DEFAULT_MAX_BYTES = 1_000_000
MAX_MATCHES = 1000
MAX_WALK = 50_000
MAX_ENTRIES = 10_000
MAX_PATTERN = 1000
MAX_SEARCH_READ = 200_000_000


def build(root: Path, *, read_only: bool = False, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The files MCPServer for `root`."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    box = Confined(root)
    server = MCPServer("plait-files", instructions=f"Files under {box.root.name}/.",
                       log_level="WARNING")
    ro = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @tool(server, annotations=ro)
    def list_directory(path: str = ".") -> dict[str, Any]:
        """List a directory under the root: entries with name, type (file|directory|symlink)
        and size; at most 10,000 entries (truncated is true when there were more)."""
        target = box.resolve(path)
        if not target.is_dir():
            raise ValueError(f"{path!r} is not a directory")
        names, truncated = box.list_names(target, MAX_ENTRIES)
        entries = [_entry(box, target / name) for name in names]
        return {"path": box.relative(target), "entries": entries, "truncated": truncated}

    @tool(server, annotations=ro)
    def read_file(path: str) -> str:
        """Read a text file under the root (UTF-8; undecodable bytes are replaced)."""
        target = box.resolve(path)
        if not target.is_file():
            raise ValueError(f"{path!r} is not a file")
        text = box.read_bytes(target, max_bytes, path).decode("utf-8", errors="replace")
        return text.replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it

    @tool(server, annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    def write_file(path: str, content: str) -> str:
        """Write a text file under the root (creating parent directories), atomically."""
        if read_only:
            raise ValueError("this files server is read-only (--read-only)")
        data = content.encode("utf-8")
        if len(data) > max_bytes:
            raise ValueError(f"content is {len(data)} bytes, over the limit of {max_bytes}")
        target = box.resolve(path)
        if target.is_dir():
            raise ValueError(f"{path!r} is a directory")
        box.write_bytes(target, data)  # no symlink followed, even one made since resolve
        return f"wrote {len(data)} bytes to {box.relative(target)}"

    @tool(server, annotations=ro)
    def search_files(pattern: str, path: str = ".", contains: str | None = None
                     ) -> dict[str, Any]:
        """Find files under `path` whose name matches a glob `pattern` (e.g. *.md), optionally
        only those whose text contains `contains`."""
        if len(pattern) > MAX_PATTERN:  # fnmatch's translation is quadratic in some patterns
            raise ValueError(f"pattern is {len(pattern)} characters, over the limit of "
                             f"{MAX_PATTERN}; a glob on file names, e.g. *.md, is short")
        start = box.resolve(path)
        found, complete = _search(box, start, pattern, contains, max_bytes)
        matches = sorted(found)
        return {"matches": matches[:MAX_MATCHES],
                "truncated": len(matches) > MAX_MATCHES or not complete}

    return server


def _entry(box: Confined, entry: Path) -> dict[str, Any]:
    """One directory entry; a symlink leaving the root is shown as such, never followed."""
    try:
        real = box.resolve(str(entry))
    except ValueError:
        return {"name": entry.name, "type": "symlink", "size": None}
    if real.is_dir():
        return {"name": entry.name, "type": "directory", "size": None}
    size = real.stat().st_size if real.exists() else None
    return {"name": entry.name, "type": "file", "size": size}


def _search(box: Confined, start: Path, pattern: str, contains: str | None,
            max_bytes: int) -> tuple[list[str], bool]:
    """The matches, and whether the whole tree was walked (MAX_WALK counts directories as
    well as files, so a tree of empty directories is no endless walk; with `contains`, at
    most MAX_SEARCH_READ bytes are read)."""
    out: list[str] = []
    seen = read = 0
    for dirpath, dirnames, filenames in os.walk(start, followlinks=False):
        dirnames.sort()
        seen += len(dirnames)
        if seen > MAX_WALK:
            return out, False
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_WALK or len(out) > MAX_MATCHES:
                return out, False
            if not fnmatch.fnmatch(name, pattern):
                continue
            try:
                full = box.resolve(str(Path(dirpath, name)))
            except ValueError:
                continue  # a symlink leaving the root
            if contains is not None:
                found, size = _contains(box, full, contains, max_bytes)
                read += size
                if found:
                    out.append(box.relative(full))
                if read > MAX_SEARCH_READ:  # 50,000 files of --max-bytes each: 50 GB
                    return out, False
                continue
            out.append(box.relative(full))
    return out, True


def _contains(box: Confined, path: Path, needle: str, max_bytes: int) -> tuple[bool, int]:
    """Whether the file holds `needle`, and how many bytes were read to tell."""
    try:
        if path.stat().st_size > max_bytes:
            return False, 0
        raw = box.read_bytes(path, max_bytes, box.relative(path))  # no symlink followed
        return needle in raw.decode("utf-8", errors="replace"), len(raw)
    except (OSError, ValueError):
        return False, 0


def main(argv: Sequence[str] | None = None) -> None:
    parser = base_parser("plait-mcp-files", "MCP server: files confined to one directory")
    parser.add_argument("--root", type=existing_root, required=True,
                        help="the only directory this server may touch")
    parser.add_argument("--read-only", action="store_true", help="refuse write_file")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"largest file read or written (default {DEFAULT_MAX_BYTES})")
    opts = parse(parser, argv)
    serve(build(opts.root, read_only=opts.read_only, max_bytes=opts.max_bytes), opts)


if __name__ == "__main__":
    main()
