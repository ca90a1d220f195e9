"""`run:` steps: run a command under a policy and its runner, and audit it.

A string is a shell command line, run by ``/bin/sh -c``; a list is an argv, run directly
without a shell. The command is checked against the policy first (a violation means nothing is
started), then run by the runner; output is captured and capped at max_output_bytes; files
written under the policy's write paths are listed; a non-zero exit raises CommandFailed with
the tail of stderr; the wall clock raises StepTimeout. Every run or refusal produces an
:class:`AuditRecord`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from engine.errors import CommandFailed, PolicyViolation, StepTimeout
from engine.policy import Policy, check_command
from engine.sandbox.base import CommandResult, Runner

__all__ = ("COMMAND_SHOWN", "MAX_SNAPSHOT_FILES", "STDERR_TAIL", "STDOUT_TAIL", "AuditRecord",
           "CommandOutcome", "run_command")

STDERR_TAIL = 2000
#: how much of a failed command's stdout its error keeps (the end, where the cause usually is)
STDOUT_TAIL = 4000
#: how much of a command its error repeats (a long script, an argument list too long to pass)
COMMAND_SHOWN = 200
#: at most this many files are compared before/after a command, per write path
MAX_SNAPSHOT_FILES = 10_000


@dataclass(frozen=True)
class AuditRecord:
    """What the sandbox decided and measured for one command or tool call."""

    policy: str
    level: str
    runner: str
    decision: Literal["allowed", "denied"]
    rule: str | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    max_rss_kb: int | None = None
    weaker: bool = False
    step_id: str | None = None
    killed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class CommandOutcome:
    """The CommandResult of a `run:` command and its audit record. The result's fields are
    also readable directly (``outcome.stdout`` is ``outcome.result.stdout``)."""

    result: CommandResult
    audit: AuditRecord

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.result, name)


def _snapshot(paths: tuple[Path, ...]) -> dict[str, tuple[float, int]]:
    seen: dict[str, tuple[float, int]] = {}
    for root in paths:
        count = 0
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                seen[full] = (st.st_mtime, st.st_size)
                count += 1
                if count >= MAX_SNAPSHOT_FILES:
                    break
            if count >= MAX_SNAPSHOT_FILES:
                break
    return seen


def _argv(run: str | list[str]) -> list[str]:
    return ["/bin/sh", "-c", run] if isinstance(run, str) else list(run)


def _audit(policy: Policy, runner: Runner, step_id: str | None, **kw: Any) -> AuditRecord:
    return AuditRecord(policy=policy.name, level=policy.level, runner=runner.name,
                       weaker=bool(getattr(runner, "weaker", False)), step_id=step_id, **kw)


async def run_command(run: str | list[str], *, policy: Policy, runner: Runner,
                      env: Mapping[str, str] | None, cwd: Path, stdin: str | None,
                      timeout: float | None, step_id: str | None) -> CommandOutcome:
    """Run one `run:` command. Raises PolicyViolation (nothing started), StepTimeout, or
    CommandFailed; each error carries the audit record as ``error.audit``."""
    _check_passable(run, env, cwd, stdin, step_id)
    try:
        check_command(policy, run, cwd=cwd, step=step_id)
    except PolicyViolation as exc:
        exc.audit = _audit(policy, runner, step_id, decision="denied",  # type: ignore[attr-defined]
                           rule=exc.context.get("rule"))
        raise
    before = _snapshot(policy.write_paths)
    started = time.monotonic()
    result = await runner.run(_argv(run), env=env, cwd=str(cwd),
                              stdin=None if stdin is None else stdin.encode(), timeout=timeout)
    after = _snapshot(policy.write_paths)
    written = sorted(p for p, sig in after.items() if before.get(p) != sig)
    result = replace(result, files_written=written)
    audit = _audit(policy, runner, step_id, decision="allowed",
                   duration_s=time.monotonic() - started, exit_code=result.exit_code,
                   max_rss_kb=result.max_rss_kb, killed_by=result.killed_by)
    _raise_for(result, audit, run, step_id, policy)
    return CommandOutcome(result, audit)


def _check_passable(run: str | list[str], env: Mapping[str, str] | None, cwd: Path,
                    stdin: str | None, step_id: str | None) -> None:
    """A process gets its arguments, environment and directory as C strings: a NUL character
    (YAML's "\\0": "\\033" in double quotes is NUL, then "33") cannot be passed, nor an
    environment name holding "=". Say which value, not Python's `embedded null byte`. Nor
    can any of them, or stdin, hold a lone surrogate (no UTF-8 form): say so, not Python's
    `UnicodeEncodeError`."""
    values = [("the command", part) for part in ([run] if isinstance(run, str) else run)]
    values += [(f"env {name!r}", value) for name, value in (env or {}).items()]
    values.append(("cwd", str(cwd)))
    for what, text in [*values, *([("stdin", stdin)] if stdin is not None else [])]:
        _check_encodable(what, text, step_id)
    for what, text in values:
        if "\0" in text:
            raise CommandFailed(
                f"{what} holds a NUL character (\\0) at character {text.index(chr(0))}, "
                "which cannot be passed to a process", step=step_id,
                hint='in a YAML double-quoted string \\0 is NUL: for a backslash write '
                     '\\\\ (e.g. "\\\\033"), or quote the value with single quotes; a NUL '
                     'in an input, or in a model\'s or a tool\'s output, must be removed '
                     'there, or the data given to the command on `stdin:`, which can hold it')
    bad = [name for name in (env or {}) if not name or "=" in name or "\0" in name]
    if bad:
        raise CommandFailed(f"env name {bad[0]!r} is not a valid environment variable name",
                            step=step_id, hint="leave '=' out of the names under env:")


def _check_encodable(what: str, text: str, step_id: str | None) -> None:
    """`text` has a UTF-8 form: no lone surrogate (an escape such as \\udcff in an expression
    or in JSON, a tool's or a model's output holding one). Python's file-name escape would
    pass \\udc80-\\udcff in an argument or the environment as a raw byte, yet refuse it in
    stdin and refuse the rest everywhere: refused alike, as plait refuses it in inputs."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CommandFailed(
            f"{what} holds {json.dumps(text[exc.start])} at character {exc.start}, which is "
            "no text (a lone surrogate) and cannot be passed to a process", step=step_id,
            hint="a lone surrogate comes from an escape such as \\udcff in an expression "
                 "or in JSON (a tool's or a model's output): remove it from the value, or "
                 "replace it (e.g. with the `replace` filter)") from None


def _shown_command(run: str | list[str]) -> str:
    """The command as its error names it, quoted; a long one cut (its output is cut too)."""
    text = run if isinstance(run, str) else " ".join(run)
    if len(text) <= COMMAND_SHOWN:
        return repr(text)
    return f"{text[:COMMAND_SHOWN]!r}... ({len(text)} characters in all)"


def _limit_of(policy: Policy) -> str:
    if policy.name == "default":  # a step without a policy: no policy of that name to edit
        return f"max_execution_time of level {policy.level}, the default policy's"
    return f"max_execution_time of policy {policy.name!r}"


def _longer(policy: Policy) -> str:
    """How to give a command more time (the step's own `timeout:` is another error)."""
    if policy.name == "default":
        how = ("give the step a policy with a larger `max_execution_time` (declare it under "
               "`policies:` and name it in `policy:` or `defaults.policy`), or raise "
               "SECURITY_MAX_EXECUTION_TIME")
    else:
        how = (f"raise `max_execution_time` of policy {policy.name!r} (its level's default "
               "comes from SECURITY_MAX_EXECUTION_TIME when set)")
    return how + ", or make the command finish sooner"


def _raise_for(result: CommandResult, audit: AuditRecord, run: str | list[str],
               step_id: str | None, policy: Policy) -> None:
    shown = _shown_command(run)
    error: Exception | None = None
    if result.timed_out:
        error = StepTimeout(
            f"command {shown} ran past its time limit of {policy.max_execution_time:g}s "
            f"({_limit_of(policy)}) and was killed", hint=_longer(policy), step=step_id)
    elif result.exit_code != 0:
        tail = result.stderr[-STDERR_TAIL:].strip()
        why = (f"killed for exceeding {result.killed_by}" if result.killed_by
               else f"exited with code {result.exit_code}")
        printed = {"stdout": result.stdout[-STDOUT_TAIL:]} if result.stdout.strip() else {}
        error = CommandFailed(f"command {shown} {why}" + (f": {tail}" if tail else ""),
                              step=step_id, exit_code=result.exit_code, **printed)
    if error is not None:
        error.audit = audit  # type: ignore[attr-defined]
        error.result = result  # type: ignore[attr-defined]
        raise error
