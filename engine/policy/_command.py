"""Parse a shell command line into the simple commands it would run (for blocked operations).

Not a shell: an over-approximation that finds every command word a POSIX shell could run from
the text: words after `;`, `&&`, `||`, `|`, `&`, `(`, newlines, inside `$(...)` and backticks
(even when quoted), and through the wrappers `sh -c`, `env`, `sudo`, `xargs`, `busybox`,
`nohup`, `nice`, `timeout`, `exec`, `command`, `time`, `setsid`, `stdbuf`, `chroot` and
`find -exec`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

SEPARATORS = frozenset({";", "&&", "||", "|", "&", "(", ")", ";;", "|&", "((", "))"})
REDIRECTS = frozenset({">", ">>", "<", "<<", "<<<", ">|", "&>", "&>>", "<>", ">&", "<&"})
KEYWORDS = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "while", "until",
                      "case", "esac", "!", "{", "}", "function", "in"})
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh", "fish"})
#: wrapper -> options of the wrapper that take a value (skipped together with it)
#: (short and long forms: `--max-args 1` skips the 1 just as `-n 1` does)
WRAPPERS: dict[str, frozenset[str]] = {
    "env": frozenset({"-u", "--unset", "-C", "--chdir"}),
    "sudo": frozenset({"-u", "-g", "-p", "-C", "-D", "-r", "-t", "-U", "-h", "--user",
                       "--group", "--prompt", "--close-from", "--chdir", "--role", "--type",
                       "--other-user", "--host"}),
    "doas": frozenset({"-u", "-C"}),
    "xargs": frozenset({"-I", "-n", "-L", "-P", "-s", "-d", "-E", "-a", "--max-args",
                        "--max-lines", "--max-procs", "--max-chars", "--delimiter", "--eof",
                        "--arg-file", "--process-slot-var"}),
    "busybox": frozenset(), "nohup": frozenset(), "exec": frozenset({"-a"}),
    "command": frozenset(), "time": frozenset({"-f", "-o", "--format", "--output"}),
    "setsid": frozenset(),
    "nice": frozenset({"-n", "--adjustment"}),
    "ionice": frozenset({"-c", "-n", "-p", "--class", "--classdata", "--pid"}),
    "stdbuf": frozenset({"-i", "-o", "-e", "--input", "--output", "--error"}),
    "timeout": frozenset({"-s", "-k", "--signal", "--kill-after"}),
    "chroot": frozenset(), "unbuffer": frozenset(), "watch": frozenset({"-n", "--interval"}),
}
#: redirections that write to their target
WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", "<>"})
#: wrappers followed by one positional argument before the command
_POSITIONAL_FIRST = frozenset({"timeout", "chroot"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_BACKTICKS = re.compile(r"`([^`]*)`")


class CommandParseError(ValueError):
    pass


@dataclass(frozen=True)
class SimpleCommand:
    """One command the text would run: its name (basename) and its arguments."""

    name: str
    args: tuple[str, ...]
    redirect_targets: tuple[str, ...] = ()
    #: the command word as written (e.g. /usr/bin/rm)
    word: str = ""
    #: the targets of its redirections that write (`> file`, `>> file`)
    write_targets: tuple[str, ...] = ()


def _substitutions(text: str) -> Iterator[str]:
    """Bodies of `$(...)` (balanced) and backticks, anywhere in the text."""
    yield from _BACKTICKS.findall(text)
    start = text.find("$(")
    while start != -1:
        depth, i = 0, start + 1
        while i < len(text):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        yield text[start + 2:i]
        start = text.find("$(", start + 2)


def _tokens(text: str) -> list[str]:
    lexer = shlex.shlex(text.replace("\n", " ; "), posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise CommandParseError(f"cannot parse the command line: {exc}") from exc


def _segments(tokens: list[str]) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(words, redirect targets, the targets written to) of each simple command."""
    words: list[str] = []
    targets: list[str] = []
    writes: list[str] = []
    pending: str | None = None  # the redirection whose target comes next
    for tok in tokens:
        if pending is not None:
            duplicate = pending.endswith("&") and (tok.isdigit() or tok == "-")  # 2>&1, >&-
            if not duplicate:
                targets.append(tok)
                if pending.lstrip("0123456789") in WRITE_REDIRECTS and not tok.startswith("&"):
                    writes.append(tok)
            pending = None
        elif tok in SEPARATORS:
            yield words, targets, writes
            words, targets, writes = [], [], []
        elif tok in REDIRECTS or (tok[:-1].isdigit() and tok[-1:] in "<>" and len(tok) > 1):
            pending = tok
        else:
            words.append(tok)
    yield words, targets, writes


def _unwrap(words: Sequence[str], depth: int) -> Iterator[SimpleCommand]:
    """The command in `words` and every command it runs through a wrapper."""
    i = 0
    while i < len(words) and (_ASSIGNMENT.match(words[i]) or words[i] in KEYWORDS):
        i += 1
    if i >= len(words):
        return
    name, args = os.path.basename(words[i]), list(words[i + 1:])
    yield SimpleCommand(name, tuple(args), word=words[i])
    if depth > 8:
        raise CommandParseError("the command nests wrappers too deeply")
    if name in SHELLS:
        for k, arg in enumerate(args):
            if arg.startswith("-") and "c" in arg.lstrip("-") and k + 1 < len(args):
                script = k + 2 if args[k + 1] == "--" and k + 2 < len(args) else k + 1
                yield from parse_command(args[script], _depth=depth + 1)
                break
    elif name == "find":
        for k, arg in enumerate(args):
            if arg in ("-exec", "-execdir", "-ok", "-okdir") and k + 1 < len(args):
                yield from _unwrap(args[k + 1:], depth + 1)
    elif name in WRAPPERS:
        yield from _unwrap_wrapper(name, args, depth)


def _unwrap_wrapper(name: str, args: list[str], depth: int) -> Iterator[SimpleCommand]:
    takes_value = WRAPPERS[name]
    k = 0
    while k < len(args):
        arg = args[k]
        if arg == "--":
            k += 1
            break
        if name == "env" and arg in ("-S", "--split-string") and k + 1 < len(args):
            yield from parse_command(args[k + 1], _depth=depth + 1)
            return
        if arg in takes_value:
            k += 2
        elif arg.startswith("-") or (name == "env" and _ASSIGNMENT.match(arg)):
            k += 1
        else:
            break
    if name in _POSITIONAL_FIRST:
        k += 1
    yield from _unwrap(args[k:], depth + 1)


def parse_command(command: str | Sequence[str], *, _depth: int = 0) -> Iterator[SimpleCommand]:
    """Every simple command `command` (a shell string or an argv list) would run."""
    if not isinstance(command, str):
        yield from _unwrap(list(command), _depth)
        return
    for body in _substitutions(command):
        yield from parse_command(body, _depth=_depth + 1)
    for words, targets, writes in _segments(_tokens(command)):
        found = list(_unwrap(words, _depth))
        if found:
            first = found[0]
            found[0] = SimpleCommand(first.name, first.args, tuple(targets), first.word,
                                     tuple(writes))
        yield from found
