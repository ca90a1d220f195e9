"""Argument validation for tool calls and commands (pure: reads the filesystem only to resolve
symlinks). Every violation is a PolicyViolation with `rule` and `value` in its context.

Which tool arguments are paths (the heuristic, documented in docs/security.md):
- a string under a key whose name contains path, file, dir, directory, folder, root, source,
  src, destination, dest, target or output (e.g. `path`, `file_path`, `src_dir`), or
- any string value that looks like a path: starts with `/`, `./`, `../` or `~`, or contains a
  `/` and no whitespace or `://` (URLs are not paths).
Keys containing destination, dest, target, output or write are write paths: they must be under
a write root. Keys containing command, cmd, script or shell are parsed as commands.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from engine.errors import PolicyViolation
from engine.policy._command import CommandParseError, SimpleCommand, _tokens, parse_command
from engine.policy._resolve import MIB, Policy

_PATH_KEY = re.compile(r"path|file|dir|folder|root|source|src|dest|target|output", re.I)
_WRITE_KEY = re.compile(r"dest|target|output|write", re.I)
_COMMAND_KEY = re.compile(r"command|cmd|script|shell", re.I)
#: device files any command may name
_SAFE_DEVICES = frozenset(Path(p) for p in ("/dev/null", "/dev/zero", "/dev/stdin", "/dev/stdout",
                                            "/dev/stderr", "/dev/urandom", "/dev/random"))
#: (rule name, pattern) searched in the raw command text at medium and above
DANGEROUS_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fork-bomb", re.compile(r"([\w:]+)\s*\(\s*\)\s*\{[^}]*\1\s*[|&]\s*\1")),
    ("rm-root", re.compile(r"\brm\s+(-\S+\s+)*(/|/\*|~|\$HOME|\$\{HOME\})/?(\s|;|&|\||$)")),
    ("raw-disk-write", re.compile(r"(of=|>\s*)/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk)")),
    ("pipe-to-shell", re.compile(
        r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?\w*sh\b")),
    ("chmod-root", re.compile(r"\bchmod\s+(-\S+\s+)*[0-7]*7[0-7]{2}\s+/(\s|$)")),
    ("power", re.compile(r"\bsystemctl\s+(-\S+\s+)*(poweroff|reboot|halt|kexec)\b")),
)
DANGEROUS_COMMANDS = frozenset({"mkfs", "shutdown", "reboot", "halt", "poweroff", "init"})


def _violation(policy: Policy, rule: str, value: str, message: str, *,
               hint: str | None = None, **ctx: Any) -> NoReturn:
    raise PolicyViolation(f"policy {policy.name!r} ({policy.level}): {message}",
                          hint=hint, rule=rule, value=value, policy=policy.name, **ctx)


def _shown(text: str, limit: int = 200) -> str:
    """`text` quoted, its middle cut out when it is long."""
    if len(text) > limit:
        text = f"{text[:limit // 2]} ... {text[-limit // 2:]}"
    return repr(text)


def _change(policy: Policy, what: str) -> str:
    """Where to change `what`: the named policy, or (steps without one) a policy to declare."""
    if policy.name == "default":
        return (f"give the step (or server) a policy with {what}: declare it under `policies:` "
                "and name it in `policy:` (or `defaults.policy`)")
    return f"set {what} in policy {policy.name!r}"


def _looks_like_path(value: str) -> bool:
    if not value or len(value) > 4096 or "://" in value or "\n" in value:
        return False
    if value.startswith(("/", "./", "../", "~")) or value in (".", ".."):
        return True
    return "/" in value and not any(c.isspace() for c in value)


def _resolve(value: str, cwd: Path) -> Path:
    return (cwd / os.path.expanduser(value)).resolve()


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def check_path(policy: Policy, value: str, *, cwd: Path, write: bool = False,
               in_sandbox: bool = False, **ctx: Any) -> Path:
    """Resolve `value` (symlinks included) and confine it to the policy's roots. With
    `in_sandbox` (a command under bubblewrap) the sandbox's private /tmp may be read too."""
    if "\x00" in value:
        _violation(policy, "null-byte", value, "a path contains a NUL byte",
                   hint="remove the NUL byte from the value", **ctx)
    path = _resolve(value, cwd)
    if _inside(path, policy.hidden_paths):
        _violation(policy, "filesystem", value,
                   f"path {value!r} resolves to {path}, the workflow's secrets or run "
                   "records, which commands and tools may never use",
                   hint="give a secret to a command through `secrets:` and `env:`, and read "
                   "run records with `plait runs show`", **ctx)
    sandboxed = policy.level in ("high", "critical")
    confined = sandboxed or bool(policy.roots)
    if confined and path not in _SAFE_DEVICES:
        roots = policy.write_paths if write else policy.roots
        if sandboxed and in_sandbox and not write:
            roots = (*roots, Path("/tmp"))
        if not _inside(path, roots):
            kind = "write" if write else "read"
            where = ", ".join(str(r) for r in roots) or "none declared"
            under = "use a path under those roots, or " if roots else ""  # none to use
            _violation(policy, "filesystem", value,
                       f"path {value!r} resolves to {path}, outside the {kind} roots ({where})",
                       hint=under + _change(policy, f"a `filesystem.{kind}` root that holds it"),
                       **ctx)
    _check_extension(policy, value, path, **ctx)
    return path


def _check_extension(policy: Policy, value: str, path: Path, **ctx: Any) -> None:
    allowed = policy.allowed_extensions
    if allowed is None or path.is_dir() or path in _SAFE_DEVICES:
        return
    if path.suffix.lower() not in allowed:
        _violation(policy, "allowed_extensions", value,
                   f"{value!r} has extension {path.suffix or '(none)'!r}; allowed: "
                   f"{', '.join(sorted(allowed))}",
                   hint="use a file with one of those extensions, or "
                   f"{_change(policy, 'its extension in `allowed_extensions`')}",
                   **ctx)


def _check_rules(policy: Policy, text: str, kind: str, **ctx: Any) -> None:
    for rule in policy.rules:
        if rule.applies_to in (kind, "both") and rule.pattern.search(text):
            _violation(policy, f"rules.{rule.name}", text,
                       rule.message or f"{text!r} matches rule {rule.name!r} "
                       f"({rule.pattern.pattern!r})",
                       hint=f"the workflow's rule {rule.name!r} of policy {policy.name!r} refuses "
                       "it: change the value, or the rule", **ctx)


def _blocked(policy: Policy, cmd: SimpleCommand) -> str | None:
    for entry in policy.blocked_operations:
        first, *rest = entry.split()
        if os.path.basename(first) != cmd.name:
            continue
        it = iter(cmd.args)
        if all(any(word == arg for arg in it) for word in rest):
            return entry
    return None


def _walk(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v, key)


def check_tool_arguments(policy: Policy, tool: str, arguments: Mapping[str, Any], *,
                         cwd: Path | None = None) -> None:
    """Raise PolicyViolation if a tool call's arguments break the policy (no-op at low)."""
    if policy.checks_arguments:
        _check_arguments(policy, _walk(arguments), cwd or Path.cwd(), tool=tool)


def check_prompt_arguments(policy: Policy, prompt: str, arguments: Mapping[str, Any], *,
                           cwd: Path | None = None) -> None:
    """Raise PolicyViolation if an MCP prompt get's arguments break the policy (no-op at
    low): checked as a tool call's are. A prompt argument is a string, and a list or mapping
    is sent as its JSON: the values inside that JSON are checked too, under their keys."""
    if not policy.checks_arguments:
        return
    pairs = list(_walk(arguments))
    for key, value in list(pairs):
        if value[:1] in ("{", "["):
            try:
                inner = json.loads(value)
            except ValueError:
                continue
            pairs.extend(_walk(inner, key))
    _check_arguments(policy, pairs, cwd or Path.cwd(), prompt=prompt)


def _check_arguments(policy: Policy, pairs: Iterable[tuple[str, str]], base: Path,
                     **ctx: Any) -> None:
    """The checks of every (key, string value) of a call's arguments: size, rules, commands
    under command keys, paths under path keys or that look like paths."""
    for key, value in pairs:
        _check_size(policy, f"argument {key!r}" if key else "an argument", value, **ctx)
        _check_rules(policy, value, "arguments", **ctx)
        if key and _COMMAND_KEY.search(key):
            check_command(policy, value, cwd=base, **ctx)
        elif (key and _PATH_KEY.search(key)) or _looks_like_path(value):
            check_path(policy, value, cwd=base, write=bool(key and _WRITE_KEY.search(key)),
                       **ctx)


def _check_size(policy: Policy, what: str, value: str, **ctx: Any) -> None:
    limit = policy.max_file_size_mb * MIB if policy.max_file_size_mb else None
    if limit is not None and len(value) > limit:
        _violation(policy, "max_file_size_mb", value[:80] + "...",
                   f"{what} is {len(value)} bytes, over the {policy.max_file_size_mb} MB limit",
                   hint="pass a smaller value, or "
                   f"{_change(policy, 'a larger `max_file_size_mb`')}",
                   **ctx)


def check_command(policy: Policy, argv: Sequence[str] | str, *, cwd: Path | str,
                  **ctx: Any) -> None:
    """Raise PolicyViolation if the command breaks the policy (no-op at low): blocked operations
    on every command word it would run, dangerous patterns, user rules, path confinement."""
    if not policy.checks_arguments:
        return
    text = argv if isinstance(argv, str) else " ".join(argv)
    try:
        commands = list(parse_command(argv))
    except CommandParseError as exc:
        _violation(policy, "unparseable", text, str(exc),
                   hint="fix the shell syntax, or write `run:` as a list (one argv word an "
                   "item, no shell)", **ctx)
    _check_rules(policy, text, "command", **ctx)
    plain = _unquoted(text)  # `rm -rf "/"` and `rm -rf /.` read as `rm -rf /`
    for name, pattern in DANGEROUS_PATTERNS:
        if pattern.search(text) or pattern.search(plain):
            _violation(policy, f"dangerous.{name}", text,
                       f"the command matches the dangerous pattern {name!r}: {_shown(text)}",
                       hint="this is refused at level medium and above even inside quotes or "
                       "data; keep such text out of the command line (give data to the "
                       "command through `stdin:` or `env:`), or run a trusted command under "
                       "a policy of level low", **ctx)
    for cmd in commands:
        entry = _blocked(policy, cmd)
        if entry is not None:
            _violation(policy, "blocked_operations", cmd.name,
                       f"{cmd.name!r} is a blocked operation ({entry!r}) in {_shown(text)}",
                       hint=f"remove it from the command, or {entry!r} from "
                       f"`blocked_operations` of policy {policy.name!r}", **ctx)
        if cmd.name in DANGEROUS_COMMANDS or cmd.name.startswith("mkfs."):
            _violation(policy, "dangerous.command", cmd.name,
                       f"{cmd.name!r} is never allowed above level low",
                       hint="run it under a policy of level low if you really mean to", **ctx)
    programs = {cmd.word for cmd in commands}  # a wrapper's program is not a data path
    base = Path(cwd)
    for cmd in commands:
        for word in cmd.args:
            _check_rules(policy, word, "command", **ctx)
        for word in (*_path_args(cmd.args, base), *cmd.redirect_targets):
            if word not in programs:
                check_path(policy, word, cwd=base, in_sandbox=True, **ctx)
        for word in cmd.write_targets:  # `> file` writes: under a write root
            check_path(policy, word, cwd=base, write=True, in_sandbox=True, **ctx)


def _unquoted(text: str) -> str:
    """The command's words with quotes removed and absolute paths normalised, for the
    dangerous patterns (the raw text is searched too)."""
    try:
        words = _tokens(text)
    except CommandParseError:
        return text
    return " ".join(os.path.normpath(w) if w.startswith("/") else
                    re.sub(r"=(/\S*)", lambda m: "=" + os.path.normpath(m.group(1)), w)
                    for w in words)


def _path_args(args: Sequence[str], cwd: Path) -> Iterator[str]:
    """The arguments that name files: path-like words, the value of `--opt=PATH`, `-oPATH`
    and `key=PATH` (dd's if=/of=), and plain names of files that exist in `cwd` (`cat
    .env`)."""
    for arg in args:
        if arg.startswith("-"):
            _, eq, rest = arg.partition("=")
            if eq and _looks_like_path(rest):
                yield rest
            elif not eq and not arg.startswith("--") and _looks_like_path(arg[2:]):
                yield arg[2:]  # a short option with its value glued on: -o/tmp/x
        elif _looks_like_path(arg):
            key, eq, rest = arg.partition("=")
            if eq and "/" not in key and _looks_like_path(rest):
                yield rest  # if=/etc/shadow
            else:
                yield arg
        elif arg and len(arg) <= 255 and "\x00" not in arg and _exists(cwd / arg):
            yield arg


def _exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except (OSError, ValueError):
        return False
