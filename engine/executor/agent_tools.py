"""The bridge an agent step uses: MCP tools offered to a model as function tools.

Vendors only accept tool names matching ``[A-Za-z0-9_-]``, so ``server.tool`` is offered as
``server__tool`` and mapped back on the call. A failing call (tool error, policy violation)
is returned to the model as an error result, so it can change course; so is a call of a tool
the step does not offer. The run's secrets are masked (``***``) in every result before the
model sees it: a prompt-injected model cannot read a token from a tool and send it on; so
are they in the tools' descriptions and input schemas the model is offered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import PlaitError, PolicyViolation, ToolError, UnknownToolError

if TYPE_CHECKING:
    from engine.mcp import MCPRuntime, ToolResult
    from engine.providers import ToolDefinition, ToolOutput

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def model_name(qualified: str) -> str:
    return _UNSAFE.sub("_", qualified.replace(".", "__", 1))[:64]


def model_names(qualified: Sequence[str]) -> dict[str, str]:
    """Model name -> qualified name, one to one. Two tools can share a model name (`a.b_c`
    and `a.b.c`, or names alike up to the 64th character): the later one gets a suffix from
    a hash of its qualified name, so a call never reaches a tool the model did not name."""
    out: dict[str, str] = {}
    for name in qualified:
        short = model_name(name)
        if out.get(short, name) != name:
            digest = hashlib.sha256(name.encode()).hexdigest()[:8]
            short = f"{short[:55]}_{digest}"
        out[short] = name
    return out


def tool_audit(qualified: str, *, result: ToolResult | None = None,
               error: BaseException | None = None, cut_off: bool = False) -> dict[str, Any]:
    """The audit entry of one tool call (its arguments are left out: they are the step's
    rendered input, kept in its record; a tool's may be large): which
    tool of which server, then as :func:`mcp_audit` says. A call that answered has its
    duration; a failure has none: a replayed run answers the call at once, and its record
    must equal the recording's."""
    entry = mcp_audit({"tool": qualified, "server": qualified.partition(".")[0]},
                      error=error, cut_off=cut_off,
                      duration_s=result.duration_s if result is not None else None)
    if result is not None:
        entry["is_error"] = result.is_error
    return entry


def mcp_audit(subject: Mapping[str, Any], *, error: BaseException | None = None,
              cut_off: bool = False, duration_s: float | None = None) -> dict[str, Any]:
    """The audit entry of one MCP request (a tool call, a resource read, a prompt get):
    `subject` says what was asked of which server (`tool`, `resource` or `prompt`, and
    `server`), then whether the policy allowed it (a denial names its policy and rule), and
    how it ended: `is_error: false` (after its `duration_s`, when known), or the error it
    ended with (`killed_by: timeout` when the step's timeout cut it off)."""
    entry: dict[str, Any] = {**subject, "decision": "allowed"}
    if isinstance(error, PolicyViolation):
        entry["decision"] = "denied"
        # a tool flagged for changing mid-run is refused by the registry, not by a rule
        entry["policy"] = error.context.get("policy")
        entry["rule"] = error.context.get("rule", "tool_changed")
    if duration_s is not None:
        entry["duration_s"] = round(duration_s, 6)
    entry["is_error"] = error is not None or cut_off
    if cut_off:
        entry["killed_by"] = "timeout"
    elif error is not None:
        from engine.executor.retry import error_kind

        message = error.message if isinstance(error, PlaitError) else str(error)
        entry["error"] = {"type": type(error).__name__, "kind": error_kind(error),
                          "message": message or type(error).__name__}
    return entry


class MCPToolCaller:
    def __init__(self, runtime: MCPRuntime, definitions: Sequence[Any], step_id: str, *,
                 redact: Callable[[str], str] | None = None,
                 check: Callable[[str, Mapping[str, Any]], None] | None = None) -> None:
        from engine.providers import ToolDefinition

        self.runtime = runtime
        self.step_id = step_id
        #: the step's own policy check of each call, on top of the server's (or None)
        self._check = check
        self._redact = redact or (lambda text: text)
        self.names = model_names([d.name for d in definitions])
        offered = {qualified: short for short, qualified in self.names.items()}
        # a server's own text is masked too: a description or schema that quotes a token
        # from the server's env would hand it to the model (and to its vendor)
        self._definitions = [ToolDefinition(offered[d.name],
                                            self._redact(d.description or d.name),
                                            _masked(d.input_schema, self._redact))
                             for d in definitions]
        #: (the model's call id, audit entry) of every call, in the order they ended
        self._audit: list[tuple[str | None, dict[str, Any]]] = []

    def definitions(self) -> Sequence[ToolDefinition]:
        return self._definitions

    async def call(self, name: str, arguments: Mapping[str, Any]) -> ToolOutput:
        from engine.providers import ToolOutput

        qualified = self.names.get(name)
        if qualified is None:
            offered = ", ".join(sorted(self.names)) or "none"
            refused = UnknownToolError(f"{name!r} is not one of the tools of this step; call "
                                       f"one of: {offered}")
            entry = tool_audit(name, error=refused)
            # refused by the step itself: its `tools:` do not offer it
            entry.update(decision="denied", policy=None, rule="not_offered")
            self._note(entry)
            return ToolOutput(f"UnknownToolError: {refused.message}", is_error=True)
        try:
            result = await self.runtime.call(qualified, dict(arguments), step_id=self.step_id,
                                             check=self._check)
        except (ToolError, PolicyViolation) as exc:
            self._note(tool_audit(qualified, error=exc))
            return ToolOutput(self._redact(f"{type(exc).__name__}: {exc.message}"),
                              is_error=True)
        except Exception as exc:
            self._note(tool_audit(qualified, error=exc))
            raise
        except BaseException:
            # cut off from outside: the run stopping (an agent step's `timeout:` bounds its
            # model calls, not its tool calls: docs/mcp.md), which cancels the step
            self._note(tool_audit(qualified, cut_off=True))
            raise
        self._note(tool_audit(qualified, result=result))
        return ToolOutput(self._redact(model_text(result)), is_error=result.is_error)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The audit entries of the calls so far, in the order they ended."""
        return [entry for _, entry in self._audit]

    def _note(self, entry: dict[str, Any]) -> None:
        from engine.providers.types import TOOL_CALL_ID

        self._audit.append((TOOL_CALL_ID.get(), entry))

    def audit(self, records: Iterable[Any] = ()) -> list[dict[str, Any]]:
        """The audit entries of every call, in the order the model made them (`records`, the
        loop's ToolCallRecords, give it: calls of one turn run at once and end in any order,
        and a replayed run's record must equal the recording's), then those of calls that
        have no record (the turn a failure or timeout cut short), in the order they ended."""
        pending = list(self._audit)
        ordered: list[dict[str, Any]] = []
        for record in records:
            call_id = getattr(record, "id", None) or None
            for i, (seen, entry) in enumerate(pending):
                if seen == call_id:
                    ordered.append(entry)
                    del pending[i]
                    break
        return [*ordered, *(entry for _, entry in pending)]


def model_text(result: ToolResult) -> str:
    """A tool result as the model gets it: its text (else its structured content as JSON),
    then a line for each block that is not text (an image, audio, a resource link, a binary
    resource), which the model is not sent but must know it was given: it was told `""`."""
    notes = [note for note in map(_unsent, result.content) if note]
    if result.text or result.structured is not None or not notes:
        return "\n".join([result.text or _json(result.value), *notes])
    return "\n".join(notes)


def _unsent(block: Mapping[str, Any]) -> str:
    kind = block.get("type")
    if kind in ("image", "audio"):
        data = str(block.get("data") or "")
        size = len(data) * 3 // 4 - data[-2:].count("=")
        what = "an image" if kind == "image" else "audio"
        return (f"[plait: the tool returned {what} ({block.get('mimeType') or 'no type'}, "
                f"{size} bytes) that is not passed to the model]")
    if kind == "resource_link":
        name = f" ({block['name']})" if block.get("name") else ""
        return f"[plait: the tool returned a link to resource {block.get('uri')}{name}]"
    inner = block.get("resource")
    if kind == "resource" and isinstance(inner, Mapping) and "text" not in inner:
        return (f"[plait: the tool returned resource {inner.get('uri')} "
                f"({inner.get('mimeType') or 'no type'}) as binary data, which is not "
                "passed to the model]")
    return ""


def _masked(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` with `redact` applied to every string in it (keys left as they are)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: _masked(item, redact) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, redact) for item in value]
    return value


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
