"""Standard output that cannot be written (a full disk under `> out.json`, a reader gone,
stdout closed with `>&-`) is an error the CLI states, not a traceback. Stdlib only: main
imports it before any command."""

from __future__ import annotations

import codecs
import errno
import io
import os
import sys


class StdoutError(OSError):
    """Standard output could not be written (a full disk under `> out.json`, a reader gone,
    stdout closed): an OSError that says it is stdout's, so the CLI can say so instead of
    printing a traceback."""


class _Stdout(io.TextIOWrapper):
    """sys.stdout as the CLI installs it: its write errors are StdoutErrors."""

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None

    def flush(self) -> None:
        try:
            super().flush()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None


#: the error handler of stdout's encoding (see _escape)
ESCAPE = "plait.escape"


def _escape(exc: UnicodeError) -> tuple[str, int]:
    """What stdout's encoding cannot write (a latin-1 locale, PYTHONIOENCODING=ascii), as
    JSON escapes (\\uXXXX, a surrogate pair past U+FFFF): a --json result stays valid JSON
    with the same values, text stays readable; it was a UnicodeEncodeError traceback."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for char in exc.object[exc.start:exc.end]:
        code = ord(char)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out), exc.end


codecs.register_error(ESCAPE, _escape)


def mark_stdout_errors() -> None:
    """Install _Stdout over the process's own stdout (not over a test runner's capture)."""
    stream = sys.stdout
    if type(stream) is not io.TextIOWrapper or stream is not sys.__stdout__:
        return
    errors = ESCAPE if stream.errors == "strict" else stream.errors
    sys.stdout = _Stdout(stream.buffer, encoding=stream.encoding, errors=errors,
                         line_buffering=stream.line_buffering,
                         write_through=stream.write_through)


def write_stdout(text: str) -> None:
    """Write `text` on stdout now; StdoutError when it cannot be (stdout closed with `>&-`
    too, where click.echo would print nothing, silently)."""
    stream = sys.stdout
    if stream is None:
        raise StdoutError(errno.EBADF, "standard output is closed")
    try:
        stream.write(text)
        stream.flush()
    except StdoutError:
        raise
    except OSError as exc:
        raise StdoutError(exc.errno, exc.strerror) from None


def give_up_stdout() -> None:
    """After a StdoutError: point stdout at the null device, so that nothing printed later,
    nor Python's own flush at exit ("Exception ignored ... BrokenPipeError"), fails again."""
    stream = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until the process ends
    try:
        if stream is not None:
            os.dup2(sys.stdout.fileno(), stream.fileno())
    except (OSError, ValueError):
        pass
    _given_up.append(stream)  # not collected (and closed, fd 1 with it) before the exit


_given_up: list[object] = []


def stdout_error(exc: OSError) -> str:
    """Why stdout could not be written, as a person reads it."""
    return exc.strerror or str(exc)
