"""What every bundled server shares: command line, transports, path confinement."""

from __future__ import annotations

import argparse
import functools
import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


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
        candidate = (self.root / os.path.expanduser(path)).resolve()
        if candidate != self.root and not candidate.is_relative_to(self.root):
            raise PathOutsideRoot(
                f"path {path!r} is outside the server's root directory; give a path relative "
                "to the root (symlinks that leave the root are refused too)")
        return candidate

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
