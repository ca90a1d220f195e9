"""What every bundled server shares: command line, transports, path confinement."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import inspect
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


_DIR_NOFOLLOW = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SWAPPED = ("a directory on the path became a symlink while it was being opened (something "
            "else is changing the root); try again, and check what writes there")


class PathOutsideRoot(ValueError):
    """A path argument resolves (after symlinks) to a place outside the server's root."""


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--transport", choices=["stdio", "streamable-http", "sse"],
                        default="stdio", help="how clients connect (default: stdio)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on for HTTP transports (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port for HTTP transports (default: 8000)")
    return parser


def serve(server: Any, opts: argparse.Namespace) -> None:
    """Run an MCPServer over the transport chosen on the command line."""
    if opts.transport == "stdio":
        server.run("stdio")
    else:
        server.run(opts.transport, host=opts.host, port=opts.port)


def existing_root(value: str) -> Path:
    root = Path(value).expanduser().resolve()
    if not root.is_dir():
        raise argparse.ArgumentTypeError(f"--root {value!r} is not a directory")
    return root


class Confined:
    """Resolves path arguments inside one root directory, symlinks included."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        if "\x00" in path:
            raise PathOutsideRoot("a path may not contain NUL bytes")
        try:
            candidate = (self.root / os.path.expanduser(path)).resolve()
        except RuntimeError:  # Python < 3.13 raises it for a symlink loop
            raise ValueError(f"path {path!r} goes through a symlink loop (a symlink that "
                             "points, maybe through others, back at itself); remove or fix "
                             "the link") from None
        if candidate != self.root and not candidate.is_relative_to(self.root):
            raise PathOutsideRoot(
                f"path {path!r} is outside the server's root directory; give a path relative "
                "to the root (symlinks that leave the root are refused too)")
        return candidate

    def _walk(self, parts: Sequence[str], *, create: bool = False) -> int:
        """An O_PATH descriptor of root/parts, reached without following any symlink (with
        `create`, missing directories are made on the way)."""
        fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                child = os.open(part, _DIR_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise PathOutsideRoot(_SWAPPED) from None
            raise
        return fd

    def read_bytes(self, target: Path, max_bytes: int, shown: str) -> bytes:
        """The content of `target` (a path `resolve` returned), opened one component at a
        time without following a symlink: a directory swapped for a symlink after `resolve`
        (a concurrent writer in the root) is refused, not followed out of the root."""
        parts = target.relative_to(self.root).parts
        if not parts:
            raise ValueError(f"{shown!r} is not a file")
        parent = self._walk(parts[:-1])
        try:
            # O_NONBLOCK: a FIFO swapped in after the check must not hang the server
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=parent)
        except OSError as exc:
            raise (PathOutsideRoot(_SWAPPED) if exc.errno == errno.ELOOP else exc) from None
        finally:
            os.close(parent)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{shown!r} is not a file")
            if info.st_size > max_bytes:
                raise ValueError(f"{shown!r} is {info.st_size} bytes, over this server's limit "
                                 f"of {max_bytes} (--max-bytes)")
            return handle.read(max_bytes + 1)[:max_bytes]

    def list_names(self, target: Path, limit: int) -> tuple[list[str], bool]:
        """The names in directory `target` (a path `resolve` returned), at most `limit` of
        them (and whether there were more), read from the directory reached without following
        a symlink (see read_bytes): a directory swapped for a symlink after `resolve` is
        refused, not listed."""
        parent = self._walk(target.relative_to(self.root).parts)
        try:
            fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)
        names: list[str] = []
        with os.scandir(fd) as entries:  # closes fd
            for entry in entries:
                if len(names) == limit:
                    return sorted(names), True
                names.append(entry.name)
        return sorted(names), False

    def write_bytes(self, target: Path, data: bytes) -> None:
        """Write `target` atomically (temp file + rename), both inside a directory reached
        without following a symlink (see read_bytes)."""
        parts = target.relative_to(self.root).parts
        if not parts:
            raise ValueError("cannot write the root itself")
        parent = self._walk(parts[:-1], create=True)
        tmp = f".{parts[-1]}.{secrets.token_hex(6)}.tmp"
        try:
            try:  # keep the permissions of the file it replaces
                mode: int | None = os.stat(parts[-1], dir_fd=parent,
                                           follow_symlinks=False).st_mode & 0o777
            except FileNotFoundError:
                mode = None
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=parent)
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
        finally:
            os.close(parent)

    def relative(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return rel or "."


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    return parser.parse_args(list(argv) if argv is not None else None)


def tool(server: Any, **options: Any) -> Callable[[F], F]:
    """`server.tool(...)`, but ValueError/OSError raised by the tool reach the client as the
    tool's error text (the SDK hides the text of other exceptions as crashes)."""
    from mcp.server.mcpserver.exceptions import ToolError

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except (ValueError, OSError) as exc:
                    raise ToolError(str(exc)) from exc
        else:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return fn(*args, **kwargs)
                except (ValueError, OSError) as exc:
                    raise ToolError(str(exc)) from exc
        server.tool(**options)(wrapper)
        return fn

    return decorate
