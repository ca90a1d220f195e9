"""The seam every process launch goes through: a `Runner` turns a command into a confined one.

Command steps and stdio MCP servers are started through a Runner picked for the policy's level
(low: as asked; medium: rlimits + allowlisted env; high/critical: bubblewrap). Callers that must
start the process themselves (the MCP SDK's stdio client) use :meth:`Runner.prepare` and launch
the returned argv/env/cwd; callers that only need a result use :meth:`Runner.run`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class PreparedCommand:
    """A command ready to launch: argv, the complete environment, and the working directory."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    #: files/dirs the runner created and removes after the process ends
    cleanup: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated: bool = False
    files_written: list[str] = field(default_factory=list)
    max_rss_kb: int | None = None
    #: the limit that made the sandbox kill the command (e.g. "max_processes"), if any
    killed_by: str | None = None


@runtime_checkable
class Runner(Protocol):
    """Launches processes under one policy."""

    name: str

    def prepare(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                cwd: str | None = None) -> PreparedCommand:
        """The argv/env/cwd that runs `argv` confined by this runner's policy."""
        ...

    async def run(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                  cwd: str | None = None, stdin: bytes | None = None,
                  timeout: float | None = None) -> CommandResult:
        """Run to completion (killing the whole process group at timeout)."""
        ...
