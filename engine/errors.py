"""The one error hierarchy of plait.

Every error plait raises on purpose derives from :class:`PlaitError`::

    PlaitError
    ├── SpecError                 the workflow file is wrong (before anything runs)
    ├── InputError                run inputs do not match the declared inputs
    ├── ConfigError               the environment is wrong (missing key, bad state dir, ...)
    ├── MissingDependencyError    an optional extra is not installed (also an ImportError)
    ├── StateError                the run record store failed or refused (resume mismatch, ...)
    └── RunError                  something failed while running
        ├── StepError             a step failed (wraps the cause, names the step)
        ├── ExpressionError       a ${{ }} expression failed at run time
        ├── ProviderError         an LLM provider call failed
        │   ├── RateLimited       429 / quota; may carry retry_after seconds
        │   ├── AuthError         401 / 403: bad or missing key
        │   ├── BadRequest        400 / 404 / 422: the request itself is wrong
        │   │   └── ContextTooLong
        │   ├── Unavailable       5xx, connection refused, overloaded
        │   ├── Timeout           the call took too long (also a TimeoutError)
        │   └── OutputInvalid     the reply did not match output_schema
        ├── ToolError             an MCP tool call failed (isError, bad result, server died)
        │   └── UnknownToolError  no such server or tool (or filtered out): nothing was called
        ├── SandboxError          the sandbox could not start or enforce a level
        └── PolicyViolation       a call or command broke a security policy (never retried)

Errors carry context (step id, attempt, server, tool) as attributes and in their message.
Use :func:`redact` (engine.secrets) before printing any error text that may hold a secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class PlaitError(Exception):
    """Root of every error plait raises on purpose."""

    #: whether the executor's retry policy may retry this error at all
    retryable: bool = False
    #: short machine-readable kind, used by `retry.on` and in run records
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.context: dict[str, Any] = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": type(self).__name__, "kind": self.kind,
                                "message": self.message}
        if self.hint:
            data["hint"] = self.hint
        data.update({k: v if isinstance(v, str | int | float | bool) else str(v)
                     for k, v in self.context.items()})
        return data


@dataclass(frozen=True)
class Location:
    """Where in a spec file something is: 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}"
        return self.file


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a workflow file."""

    message: str
    location: Location
    path: tuple[str | int, ...] = ()
    hint: str | None = None
    code: str = "invalid"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dotted_path(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def format(self) -> str:
        where = f" at '{self.dotted_path}'" if self.path else ""
        text = f"{self.location}: {self.message}{where}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.location.file, "line": self.location.line,
                "column": self.location.column, "path": self.dotted_path,
                "code": self.code, "message": self.message, "hint": self.hint}


class SpecError(PlaitError):
    """The workflow file is invalid. Holds every issue found, not only the first."""

    kind = "spec"

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues = list(issues)
        first = self.issues[0].format() if self.issues else "invalid workflow"
        more = f" (and {len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(first + more)

    def format(self) -> str:
        return "\n".join(issue.format() for issue in self.issues)


class InputError(PlaitError):
    """Run inputs do not match the workflow's declared inputs."""

    kind = "input"


class ConfigError(PlaitError):
    """The environment cannot run this workflow (missing key, unusable state dir, ...)."""

    kind = "config"


class CassetteError(ConfigError):
    """A cassette cannot be read or does not belong to this workflow."""

    kind = "cassette"


class CassetteNotSaved(CassetteError):
    """The run ended but its --record cassette could not be written; ``result`` is the run's
    RunResult, so a caller can still report the run."""

    def __init__(self, message: str, *, result: Any, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.result = result


class MissingDependencyError(PlaitError, ImportError):
    """An optional extra is needed: the message names the `pip install` to run."""

    kind = "dependency"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"{package} is not installed",
            hint=f"pip install 'plait[{extra}]'",
        )
        self.package = package
        self.extra = extra


class StateError(PlaitError):
    """The run record store failed, or refused an operation (e.g. an invalid resume)."""

    kind = "state"


class RunError(PlaitError):
    """Something failed while a workflow ran."""

    kind = "run"
    #: tokens and USD (None: no known price) a failed LLM step spent before this error, so
    #: the step's record keeps them; set by run_llm, empty when nothing was spent
    spent_usage: dict[str, int] | None = None
    spent_cost: float | None = None
    #: notes for the failed step's record that the handler had made before this error (e.g.
    #: which earlier sub-workflow run it resumed); None when there are none
    step_notes: list[dict[str, Any]] | None = None


class StepError(RunError):
    """A step failed; ``__cause__`` is the underlying error."""

    kind = "step"


class ExpressionError(RunError):
    """A ${{ }} expression failed while being evaluated."""

    kind = "expression"
    #: where the failing ${{ }} is in the value rendered: the keys and indexes down to its
    #: string, and its character offset in that string (None: no one expression failed)
    subpath: tuple[str | int, ...] = ()
    offset: int | None = None


class ProviderError(RunError):
    """An LLM provider call failed. `retry_after`: seconds the server asked to wait."""

    kind = "provider"

    def __init__(self, message: str, *, retry_after: float | None = None, **ctx: Any) -> None:
        super().__init__(message, **ctx)
        self.retry_after = retry_after


class RateLimited(ProviderError):
    kind = "rate_limit"
    retryable = True


class AuthError(ProviderError):
    kind = "auth"


class BadRequest(ProviderError):
    kind = "bad_request"


class ContextTooLong(BadRequest):
    kind = "context_too_long"


class Unavailable(ProviderError):
    kind = "unavailable"
    retryable = True


class Timeout(ProviderError, TimeoutError):
    kind = "timeout"
    retryable = True


class OutputInvalid(ProviderError):
    """The model's reply did not match the step's output_schema."""

    kind = "output_invalid"
    retryable = True


class ToolError(RunError):
    """An MCP tool call failed."""

    kind = "tool"


class UnknownToolError(ToolError):
    """The named MCP server or tool does not exist, or `tools.allow`/`tools.deny` hides it:
    the call never reached a tool."""

    kind = "tool"


class SandboxError(RunError):
    """The sandbox could not be started, or cannot enforce the requested level here."""

    kind = "sandbox"


class PolicyViolation(RunError):
    """A call or command broke a security policy. Never retried."""

    kind = "policy"


class StepTimeout(RunError, TimeoutError):
    """A step ran past its timeout."""

    kind = "timeout"
    retryable = True


class ReplayMiss(RunError):
    """A call under --replay has no recorded interaction."""

    kind = "replay_miss"


class CommandFailed(RunError):
    """A `run:` command exited non-zero."""

    kind = "command"
