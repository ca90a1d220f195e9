"""The workflow file (version 1) as pydantic models: the one source of the JSON Schema.

Every model forbids unknown keys, so a typo is an error, never silently ignored.
Steps are a union discriminated by which of ``llm | tool | run | workflow | resource |
mcp_prompt`` the step has.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from engine.spec.durations import Duration, Timeout

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
#: `server.tool` (tool and mcp_prompt steps)
TOOL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*\.[^.\s]+$"
#: an environment variable's name (secrets)
SECRET_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=128)]
#: An expression ``${{ ... }}`` or a literal; expressions are compiled at load time.
Expr = Any


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True,
                              use_attribute_docstrings=True)


# ---------------------------------------------------------------- triggers and inputs


class ScheduleSpec(Model):
    cron: str = Field(examples=["0 7 * * 1-5"])
    """A five-field cron expression (minute hour day month weekday)."""
    timezone: str = "UTC"
    """IANA time zone the cron expression is read in, e.g. Europe/Berlin."""
    inputs: dict[str, Any] = Field(default_factory=dict)
    """Inputs for runs started by this schedule."""


class TriggersSpec(Model):
    schedule: list[ScheduleSpec] = Field(default_factory=list)
    """Cron schedules used by `plait schedule`."""


InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


class InputSpec(Model):
    type: InputType = "string"
    """The input's type; values given on the command line are converted to it."""
    default: Any = None
    """Value used when the input is not given. An input without a default is required."""
    description: str | None = None
    enum: list[Any] | None = None
    """If set, the input must be one of these values."""
    required: bool | None = None
    """Defaults to true when there is no default."""

    @property
    def is_required(self) -> bool:
        if self.required is not None:
            return self.required
        return self.default is None


# ---------------------------------------------------------------- providers

ProviderKind = Literal["openai", "azure_openai", "anthropic", "google", "echo", "replay"]


class RateLimitSpec(Model):
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class PriceSpec(Model):
    """Price in USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class ProviderSpec(Model):
    kind: ProviderKind
    """Which API this provider speaks."""
    model: str | None = Field(default=None, examples=["gpt-4.1-mini", "claude-sonnet-4-5"])
    """Default model for steps that use this provider."""
    api_key: str | None = None
    """Key, usually `${{ secrets.NAME }}`. Defaults to the kind's usual environment variable."""
    base_url: str | None = None
    """Endpoint override: makes any OpenAI-compatible server (vLLM, llama.cpp, Ollama) work."""
    endpoint: str | None = None
    """Azure OpenAI resource endpoint (azure_openai)."""
    api_version: str | None = None
    """Azure OpenAI API version (azure_openai)."""
    deployment: str | None = None
    """Azure OpenAI deployment name (azure_openai); defaults to `model`."""
    vertex: bool = False
    """google: use Vertex AI instead of the Gemini API."""
    project: str | None = None
    """google (Vertex): the Google Cloud project."""
    location: str | None = None
    """google (Vertex): the region."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers sent with every request."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Sampling and vendor options (temperature, max_tokens, ...). For `echo`: latency,
    failure_rate, seed, reply."""
    timeout: Timeout | None = None
    """Per-request timeout."""
    max_concurrency: int | None = Field(default=None, ge=1)
    """At most this many calls to this provider in flight across the whole run."""
    rate_limit: RateLimitSpec | None = None
    fallback: list[Name] = Field(default_factory=list)
    """Providers tried in order when this one fails after its retries."""
    priority: int = 0
    """Higher is preferred when the registry picks the best provider of a kind."""
    path: str | None = None
    """replay: the cassette directory to answer from."""


# ---------------------------------------------------------------- MCP servers


class ToolFilterSpec(Model):
    allow: list[str] | None = None
    """Only these tools (names or glob patterns) are exposed. Default: all."""
    deny: list[str] = Field(default_factory=list)
    """These tools are never exposed."""


class ToolMetadataSpec(Model):
    category: str | None = None
    tags: list[str] = Field(default_factory=list)
    rate_limit: int | None = Field(default=None, ge=1)
    """Calls per minute."""
    timeout: Timeout | None = None


class MCPServerSpec(Model):
    command: str | None = Field(default=None, examples=["plait-mcp-files"])
    """Executable of a stdio server, started by plait."""
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    """Environment for a stdio server, on top of a minimal allowlist."""
    cwd: str | None = None
    url: str | None = Field(default=None, examples=["http://127.0.0.1:8931/mcp"])
    """URL of a remote server."""
    transport: Literal["stdio", "streamable-http", "sse"] | None = None
    """Defaults to stdio with `command`, streamable-http with `url`."""
    headers: dict[str, str] = Field(default_factory=dict)
    policy: Name | None = None
    """Security policy for the server process and its tool calls."""
    tools: ToolFilterSpec = Field(default_factory=ToolFilterSpec)
    tool_metadata: dict[str, ToolMetadataSpec] = Field(default_factory=dict)
    """Category, tags, rate limit and timeout per tool."""
    timeout: Timeout | None = None
    """Per-call timeout (default MCP_SERVER_TIMEOUT)."""
    startup_timeout: Timeout | None = None
    """Time to start and initialise the server (default 30s)."""
    max_concurrency: int | None = Field(default=None, ge=1)
    max_message_bytes: int | None = Field(default=None, ge=1024)
    """Largest message (bytes) taken from the server; a larger one ends its connection
    (default MCP_MAX_MESSAGE_BYTES, else 16 MiB)."""

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("an MCP server needs exactly one of `command` (stdio) or `url`")
        if self.command is not None and self.transport not in (None, "stdio"):
            raise ValueError(f"transport {self.transport!r} needs `url`, not `command`")
        if self.url is not None and self.transport == "stdio":
            raise ValueError("transport 'stdio' needs `command`, not `url`")
        return self


# ---------------------------------------------------------------- policies

Level = Literal["low", "medium", "high", "critical"]


class FilesystemSpec(Model):
    read: list[str] = Field(default_factory=list)
    """Paths that may be read (relative to the workflow file)."""
    write: list[str] = Field(default_factory=list)
    """Paths that may be written (and read)."""


class RuleSpec(Model):
    name: str
    pattern: str
    """A regular expression searched in every string argument or command word."""
    applies_to: Literal["arguments", "command", "both"] = "both"
    message: str | None = None


class PolicySpec(Model):
    level: Level = "medium"
    """Left out: the SECURITY_DEFAULT_LEVEL environment variable, else medium."""
    network: bool | None = None
    """Allow network access; default false from level high up."""
    filesystem: FilesystemSpec = Field(default_factory=FilesystemSpec)
    allowed_extensions: list[str] | None = None
    """Only files with these extensions may be named in arguments."""
    blocked_operations: list[str] = Field(default_factory=list)
    """Commands that may not run (matched on the parsed command, not as substrings)."""
    max_execution_time: Duration | None = None
    max_memory_mb: int | None = Field(default=None, ge=1)
    max_processes: int | None = Field(default=None, ge=1)
    max_output_bytes: int | None = Field(default=None, ge=1)
    max_file_size_mb: int | None = Field(default=None, ge=1)
    env: list[str] = Field(default_factory=list)
    """Extra environment variable names passed through to commands and servers."""
    rules: list[RuleSpec] = Field(default_factory=list)
    """User-defined deny rules."""


# ---------------------------------------------------------------- retry and defaults

ErrorKind = Literal["rate_limit", "timeout", "unavailable", "output_invalid", "tool",
                    "command", "provider", "step", "error"]


DEFAULT_RETRY_ON: tuple[ErrorKind, ...] = ("rate_limit", "timeout", "unavailable")


class RetrySpec(Model):
    attempts: int = Field(default=1, ge=1, le=100)
    """Total attempts, including the first."""
    backoff: Literal["exponential", "constant"] = "exponential"
    initial: Duration = 1.0
    max: Duration = 30.0
    jitter: bool = True
    on: list[ErrorKind] = Field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    """Which error kinds are retried. Spec and policy errors never are."""


class DefaultsSpec(Model):
    retry: RetrySpec | None = None
    timeout: Timeout | None = None
    policy: Name | None = None
    continue_on_error: bool = False


# ---------------------------------------------------------------- steps


class StepBase(Model):
    description: str | None = None
    needs: list[Name] = Field(default_factory=list)
    """Steps that must finish first (on top of those referenced in expressions)."""
    if_: Expr = Field(default=None, alias="if")
    """Run the step only if this expression is true; otherwise it is skipped."""
    foreach: Expr = None
    """Run the step once per item of this list; `item` and `index` are in scope."""
    max_parallel: int | None = Field(default=None, ge=1)
    """With foreach: at most this many items at once."""
    retry: RetrySpec | None = None
    timeout: Timeout | None = None
    policy: Name | None = None
    """A key of `policies`. On a `run:` step, the policy its command is checked and
    sandboxed under (default: `defaults.policy`). On a `tool:`, `resource:` or `mcp_prompt:`
    step, and for each tool call of an `llm:` step with `tools:`, a check on top of the
    server's policy: a request must pass both, so it can only tighten what the server's
    allows; the server's sandbox is its own. A spec error on a `workflow:` step and on an
    `llm:` step without `tools:`, where it would check nothing."""
    continue_on_error: bool | None = None
    """A failure does not fail the run; dependants see status 'failed'."""


class MessageSpec(Model):
    role: Literal["system", "user", "assistant"]
    content: Expr


class LLMStep(StepBase):
    llm: Name
    """The provider (a key of `providers`)."""
    model: str | None = None
    system: Expr = None
    prompt: Expr = None
    messages: list[MessageSpec] | None = None
    images: list[Expr] = Field(default_factory=list)
    """Image URLs or data: URIs attached to the prompt."""
    options: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    """JSON Schema the reply must match; the parsed object becomes the output."""
    tools: list[str] = Field(default_factory=list)
    """MCP tools the model may call (`server.tool`, `server.*`): makes this an agent loop."""
    max_turns: int = Field(default=8, ge=1, le=100)
    """With `tools:`: the most model turns of the agent loop; a model still calling tools
    in the last one fails the step (a spec error without `tools:`)."""
    stream: bool = False

    @model_validator(mode="after")
    def _has_prompt(self) -> LLMStep:
        if self.prompt is None and not self.messages:
            raise ValueError("an llm step needs `prompt` or `messages`")
        return self


class ToolStep(StepBase):
    tool: str = Field(pattern=TOOL_PATTERN, examples=["files.read_file"])
    """`server.tool` to call."""
    with_: dict[str, Expr] = Field(default_factory=dict, alias="with")
    """Arguments of the tool call."""


class RunStep(StepBase):
    run: str | list[str]
    """A shell command line (run by /bin/sh) or an argv list (run directly)."""
    env: dict[str, Expr] = Field(default_factory=dict)
    cwd: str | None = None
    stdin: Expr = None


class WorkflowStep(StepBase):
    workflow: str
    """Path of the sub-workflow file, relative to this one."""
    with_: dict[str, Expr] = Field(default_factory=dict, alias="with")
    """The sub-workflow's inputs."""


class ResourceStep(StepBase):
    resource: Name
    """The MCP server to read the resource from."""
    uri: Expr


class MCPPromptStep(StepBase):
    mcp_prompt: str = Field(pattern=TOOL_PATTERN)
    """`server.prompt` to get."""
    with_: dict[str, Expr] = Field(default_factory=dict, alias="with")


STEP_KINDS = ("llm", "tool", "run", "workflow", "resource", "mcp_prompt")


def step_kind(value: Any) -> str | None:
    """Which kind a raw step mapping (or step model) is; None if it is not exactly one."""
    if isinstance(value, dict):
        found = [k for k in STEP_KINDS if k in value]
        return found[0] if len(found) == 1 else None
    return _KIND_OF_MODEL.get(type(value).__name__)


_KIND_OF_MODEL = {"LLMStep": "llm", "ToolStep": "tool", "RunStep": "run",
                  "WorkflowStep": "workflow", "ResourceStep": "resource",
                  "MCPPromptStep": "mcp_prompt"}

Step = Annotated[
    Annotated[LLMStep, Tag("llm")]
    | Annotated[ToolStep, Tag("tool")]
    | Annotated[RunStep, Tag("run")]
    | Annotated[WorkflowStep, Tag("workflow")]
    | Annotated[ResourceStep, Tag("resource")]
    | Annotated[MCPPromptStep, Tag("mcp_prompt")],
    Discriminator(
        step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of llm, tool, run, workflow, resource, "
        "mcp_prompt",
    ),
]
AnyStep = LLMStep | ToolStep | RunStep | WorkflowStep | ResourceStep | MCPPromptStep


# ---------------------------------------------------------------- tests


class AssertionSpec(Model):
    output: str | None = None
    """Which output to check (default: all outputs as one object)."""
    equals: Any = None
    contains: str | None = None
    matches: str | None = None
    """A regular expression the output must match."""
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    max_cost: float | None = Field(default=None, ge=0)
    max_steps: int | None = Field(default=None, ge=0)


class TestCaseSpec(Model):
    name: Name
    inputs: dict[str, Any] = Field(default_factory=dict)
    cassette: str | None = None
    """Directory of recorded provider and tool traffic, replayed offline."""
    snapshot: bool = True
    """Compare outputs with the stored snapshot."""
    assert_: list[AssertionSpec] = Field(default_factory=list, alias="assert")


# ---------------------------------------------------------------- the workflow


class WorkflowSpec(Model):
    """A plait workflow file, version 1."""

    version: Literal[1]
    """Always 1."""
    name: Name
    """The workflow's name (letters, digits, _ and -); run records are filed under it."""
    description: str | None = None
    on: TriggersSpec | None = None
    """Triggers; used by `plait schedule`."""
    inputs: dict[Name, InputSpec] = Field(default_factory=dict)
    """Typed run inputs, given with `-i name=value` or `--inputs file.json` (`-`: stdin)."""
    secrets: list[Annotated[str, Field(pattern=SECRET_PATTERN)]] = Field(
        default_factory=list)
    """Environment variables that must exist; their values are redacted everywhere."""
    providers: dict[Name, ProviderSpec] = Field(default_factory=dict)
    """LLM providers by name; `llm:` steps name one."""
    mcp_servers: dict[Name, MCPServerSpec] = Field(default_factory=dict)
    """MCP servers by name; `tool:` steps call `server.tool`."""
    policies: dict[Name, PolicySpec] = Field(default_factory=dict)
    """Security policies by name, for commands, MCP servers and tool calls."""
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    """Defaults for every step: retry, timeout, policy, continue_on_error."""
    concurrency: int = Field(default=16, ge=1, le=100_000)
    """Steps in flight at once, whole run."""
    pricing: dict[str, PriceSpec] = Field(default_factory=dict)
    """USD per million tokens by model name, on top of the built-in table."""
    steps: dict[Name, Step] = Field(min_length=1)
    """The DAG: step id -> step. Order follows `needs` and `steps.X` references."""
    outputs: dict[Name, Expr] = Field(default_factory=dict)
    """Run outputs, evaluated when every step has finished."""
    tests: list[TestCaseSpec] = Field(default_factory=list)
    """Offline test cases run by `plait test` and the pytest plugin."""
