"""`-` as a file name: `--inputs -` reads the inputs from standard input, as Unix tools do.

A command reads stdin once, whole, before anything runs (so a bad line still stops a batch
before its first row, with the line's number), and names it `<stdin>` in its errors.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.errors import InputError

#: the file name that means standard input
DASH = "-"
#: how errors name standard input
STDIN = "<stdin>"


def is_stdin(name: str | None) -> bool:
    """Whether a file name as given means stdin (`./-` is a file named `-`; a Path cannot
    tell them apart, so test the name as typed)."""
    return name == DASH


def workflow_file(_ctx: click.Context, _param: click.Parameter, value: Path | None
                  ) -> Path | None:
    """A click callback for the workflow FILE of a command that takes `--inputs -`: a
    workflow is never read from stdin, so `-` there (say `plait run - --inputs -`) would be
    taken for a file named `-`; refuse it by name instead."""
    if value is not None and str(value) == DASH and not Path(DASH).exists():
        raise click.BadParameter("a workflow is read from its file, not from stdin: give the "
                                 "file's path (only --inputs reads - from stdin)")
    return value


def read_stdin(what: str) -> bytes:
    """All of standard input, for `what` (e.g. "a JSON object of inputs"). On a terminal it
    says what it waits for first (else the command seems to hang); Ctrl-C while it waits
    stops the command (exit 130) before anything ran."""
    if sys.stdin is None:  # started with it closed (`<&-`)
        raise InputError(f"cannot read {STDIN}: standard input is closed",
                         hint=f"pipe {what} into plait, or give a file instead of -")
    # its bytes (sys.stdin as it is now: click's runner, or an embedding, may have set it)
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    try:
        if _is_terminal(stream):
            click.echo(f"reading {what} from stdin; end it with Ctrl-D (Ctrl-Z, Enter on "
                       "Windows)", err=True)
        data = stream.read()
    except KeyboardInterrupt:
        click.echo("interrupted while reading stdin; nothing ran", err=True)
        sys.exit(130)
    except OSError as exc:  # stdin closed (`<&-`) or unreadable
        raise InputError(f"cannot read {STDIN}: {exc.strerror or exc}",
                         hint=f"pipe {what} into plait, or give a file instead of -") from None
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed
        return False
