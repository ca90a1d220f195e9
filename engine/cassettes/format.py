"""The cassette file: one YAML file per workflow run, its header and its interactions.

    DIR/<workflow name>.cassette.yaml

    plait_cassette: 1              # format version
    workflow: digest               # the workflow's name
    spec_hash: 3f2a...             # cassette_hash(workflow): the spec without tests, docs, on
    run: {id: ..., started_at: ...}  # run.id / run.started_at, replayed as recorded
    interactions:                  # in the order the calls started
    - kind: llm                    # llm | llm_stream | tool | tool_list | resource | prompt
      step: summary                # the step that made the call (when known)
      item: 2                      # in a foreach: the index of the item that made it
      request: {provider: fast, model: echo-fast, messages: [...], output_schema: {...}}
      response: {text: ..., usage: {...}, finish_reason: stop, model: echo-fast}
    - kind: tool
      step: ls
      request: {server: files, tool: list_directory, arguments: {path: .}}
      response: {text: ..., structured: {...}, is_error: false, duration_s: 0.003}
    - kind: llm
      step: draft
      request: {...}
      error: {type: Unavailable, message: ..., retry_after: null}

Requests and replies are plain data (dataclasses turned into dicts, empty fields left out),
with the run's secrets masked. This module turns the engine's objects into that data and back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.atomic import atomic_write, unwritable
from engine.cassettes import shape
from engine.errors import CassetteError, PlaitError

if TYPE_CHECKING:
    from engine.mcp.results import ToolResult
    from engine.providers.types import LLMRequest, LLMResponse, LLMStreamChunk, Message
    from engine.spec.workflow import Workflow

FORMAT_VERSION = 1
SUFFIX = ".cassette.yaml"
KINDS = ("llm", "llm_stream", "tool", "tool_list", "resource", "prompt")


def cassette_path(directory: Path, workflow_name: str) -> Path:
    return directory / f"{workflow_name}{SUFFIX}"


def cassette_hash(workflow: Workflow) -> str:
    """The spec's hash as a cassette sees it: what can change a recorded call. Not `tests:`
    (adding a test case must not invalidate its cassette), nor the `description` of the
    workflow, its steps and its inputs, nor the `on:` triggers: editing a workflow's docs or
    schedule must not force a live re-record."""
    data = _hashed(workflow)
    for part in ("steps", "inputs"):
        for item in data.get(part, {}).values():
            if isinstance(item, dict):
                item.pop("description", None)
    data.pop("on", None)
    return _digest(data)


def cassette_hashes(workflow: Workflow) -> frozenset[str]:
    """The hashes a cassette of this workflow version may carry: :func:`cassette_hash`, and
    the one plait wrote before it left step and input descriptions and `on:` out (a cassette
    recorded then is still current)."""
    return frozenset({cassette_hash(workflow), _digest(_hashed(workflow))})


def _hashed(workflow: Workflow) -> dict[str, Any]:
    return workflow.spec.model_dump(mode="json", by_alias=True, exclude_none=True,
                                    exclude={"tests", "description"})


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def plain(value: Any) -> Any:
    """Plain JSON data (tuples to lists, mappings to dicts, others to str)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def key_of(request: Mapping[str, Any]) -> str:
    return json.dumps(request, sort_keys=True, ensure_ascii=False)


# ---------------------------------------------------------------- LLM requests and replies


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, str):
        out["content"] = m.content
    else:
        out["content"] = [{"type": p.type, **({"text": p.text} if p.type == "text"
                                              else {"url": getattr(p, "url", "")})}
                          for p in m.content]
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                             for c in m.tool_calls]
    for name in ("tool_call_id", "name"):
        if getattr(m, name) is not None:
            out[name] = getattr(m, name)
    if m.is_error:
        out["is_error"] = True
    return out


def llm_request(provider: str, model: str | None, req: LLMRequest) -> dict[str, Any]:
    """The normalised request a recorded call is matched on."""
    out: dict[str, Any] = {"provider": provider, "model": req.model or model,
                           "messages": [_message(m) for m in req.messages]}
    if req.tools:
        out["tools"] = [{"name": t.name, "description": t.description,
                         "input_schema": t.input_schema} for t in req.tools]
    if req.output_schema is not None:
        out["output_schema"] = req.output_schema
    if req.options:
        out["options"] = dict(req.options)
    for name in ("stop", "max_tokens", "tool_choice"):
        if getattr(req, name) is not None:
            out[name] = getattr(req, name)
    return dict(plain(out))


def response_data(resp: LLMResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"text": resp.text}
    if resp.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments),
                              **({"signature": c.signature} if c.signature else {})}
                             for c in resp.tool_calls]
    out["usage"] = resp.usage.to_dict()
    out["finish_reason"] = resp.finish_reason
    out["model"] = resp.model
    if resp.raw_id is not None:
        out["raw_id"] = resp.raw_id
    if resp.parsed is not None:
        out["parsed"] = resp.parsed
    return dict(plain(out))


def response_from(data: Mapping[str, Any]) -> LLMResponse:
    from engine.providers.types import LLMResponse, ToolCall

    calls = tuple(ToolCall(str(c["id"]), str(c["name"]), dict(c.get("arguments") or {}),
                           c.get("signature"))
                  for c in data.get("tool_calls") or ())
    return LLMResponse(str(data.get("text", "")), calls, _usage(data.get("usage")),
                       str(data.get("finish_reason", "stop")), str(data.get("model", "")),
                       data.get("raw_id"), data.get("parsed"))


def _usage(data: Any) -> Any:
    from engine.providers.types import Usage

    data = data or {}
    return Usage(int(data.get("input_tokens", 0)), int(data.get("output_tokens", 0)),
                 int(data.get("cached_input_tokens", 0)))


def chunk_data(chunk: LLMStreamChunk) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if chunk.text_delta:
        out["text"] = chunk.text_delta
    d = chunk.tool_call_delta
    if d is not None:
        out["tool_call"] = {"index": d.index, "id": d.id, "name": d.name,
                            "arguments": d.arguments_delta}
        if d.signature:
            out["tool_call"]["signature"] = d.signature
    if chunk.usage is not None:
        out["usage"] = chunk.usage.to_dict()
    for name in ("finish_reason", "model", "raw_id"):
        if getattr(chunk, name) is not None:
            out[name] = getattr(chunk, name)
    return out


def chunk_from(data: Mapping[str, Any]) -> LLMStreamChunk:
    from engine.providers.types import LLMStreamChunk, ToolCallDelta

    call = data.get("tool_call")
    delta = ToolCallDelta(int(call["index"]), call.get("id"), call.get("name"),
                          str(call.get("arguments") or ""), call.get("signature")) \
        if call else None
    return LLMStreamChunk(str(data.get("text", "")), delta,
                          _usage(data["usage"]) if "usage" in data else None,
                          data.get("finish_reason"), data.get("model"), data.get("raw_id"))


def response_from_chunks(chunks: list[dict[str, Any]]) -> LLMResponse:
    """A streamed recording answering a call that is not streamed: the chunks folded as a
    streamed call's are (engine.providers.run), so the step sees the same reply."""
    from engine.errors import OutputInvalid
    from engine.providers.run import unwrap_output_tool
    from engine.providers.types import collect_stream

    try:
        return unwrap_output_tool(collect_stream([chunk_from(c) for c in chunks]))
    except ValueError as exc:
        raise OutputInvalid(f"a recorded stream holds a tool call whose arguments are not "
                            f"a valid JSON object: {exc}") from None


def chunks_from_response(data: Mapping[str, Any]) -> list[LLMStreamChunk]:
    """A recorded reply answering a streamed call: one chunk holding all of it (a reply parsed
    from a forced output tool goes back into that tool call, which the stream unwraps)."""
    from engine.providers.types import OUTPUT_TOOL, LLMStreamChunk, ToolCallDelta

    response = response_from(data)
    calls = [(c.id, c.name, json.dumps(dict(c.arguments)), c.signature)
             for c in response.tool_calls]
    if response.parsed is not None:
        calls.append((f"call_{len(calls)}", OUTPUT_TOOL, json.dumps(response.parsed), None))
    chunks = [LLMStreamChunk(response.text)]
    chunks += [LLMStreamChunk("", ToolCallDelta(i, cid, name, args, signature))
               for i, (cid, name, args, signature) in enumerate(calls)]
    chunks.append(LLMStreamChunk("", None, response.usage, response.finish_reason,
                                 response.model or None, response.raw_id))
    return chunks


# ---------------------------------------------------------------- tools


def tool_result_data(result: ToolResult) -> dict[str, Any]:
    out: dict[str, Any] = {"text": result.text}
    if result.structured is not None:
        out["structured"] = result.structured
    for name in ("images", "resources", "content"):
        if getattr(result, name):
            out[name] = getattr(result, name)
    out["is_error"] = result.is_error
    out["duration_s"] = round(result.duration_s, 6)
    return dict(plain(out))


def tool_result_from(server: str, tool: str, data: Mapping[str, Any]) -> ToolResult:
    from engine.mcp.results import ToolResult

    return ToolResult(server=server, tool=tool, text=str(data.get("text", "")),
                      structured=data.get("structured"), images=list(data.get("images") or []),
                      resources=list(data.get("resources") or []),
                      content=list(data.get("content") or []),
                      is_error=bool(data.get("is_error")),
                      duration_s=float(data.get("duration_s") or 0.0))


# ---------------------------------------------------------------- errors


def error_data(exc: PlaitError) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message}
    if exc.hint:
        out["hint"] = exc.hint
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        out["retry_after"] = retry_after
    if exc.retryable != type(exc).retryable:
        out["retryable"] = exc.retryable
    context = {k: v for k, v in exc.context.items() if isinstance(v, str | int | float | bool)}
    if context:
        out["context"] = context
    return out


def error_from(data: Mapping[str, Any], default: type[PlaitError]) -> PlaitError:
    import engine.errors as errors

    cls = getattr(errors, str(data.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, PlaitError)) or cls is errors.SpecError:
        cls = default
    context = dict(data.get("context") or {})
    kwargs: dict[str, Any] = {"hint": data.get("hint"), **context}
    if data.get("retry_after") is not None:
        kwargs["retry_after"] = data["retry_after"]
    try:
        exc = cls(str(data.get("message", "")), **kwargs)
    except TypeError:
        exc = default(str(data.get("message", "")), hint=data.get("hint"))
    if "retryable" in data:
        exc.retryable = bool(data["retryable"])
    return exc


# ---------------------------------------------------------------- the file


def read_cassette(path: Path) -> dict[str, Any]:
    """The cassette at ``path``, checked for shape; CassetteError when unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        raise CassetteError(f"no cassette at {path}: {_why_missing(path)}",
                            hint="record one with `plait run WORKFLOW --record DIR` (or "
                                 "`plait test --record`)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cannot read cassette {path}: {exc}") from None
    return parse_cassette(text, path)


def _why_missing(path: Path) -> str:
    """What is missing on the way to a cassette file: its directory, or the file in it."""
    directory = path.parent
    if directory.is_file():
        return (f"{directory} is a file, not a directory (give the directory that holds "
                "a cassette, not the cassette file)")
    if not directory.is_dir():
        return f"the directory {directory} does not exist"
    others = sorted(p.name for p in directory.glob(f"*{SUFFIX}"))[:5]
    held = f" (it holds {', '.join(others)})" if others else ""
    return f"{directory} has no {path.name}{held}"


def parse_cassette(text: str, path: Path) -> dict[str, Any]:
    """A cassette's text (read from ``path``), checked for shape; CassetteError when
    unusable."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise CassetteError(f"cassette {path} is corrupt (not valid YAML){_yaml_problem(exc)}",
                            hint="fix that line, or re-record it with `plait run --record "
                                 "DIR`") from None
    _check_shape(path, data)
    return dict(data)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """" at line L, column C: what is wrong (in the X at line L, column C)": where the parser
    stopped and why (1-based, as editors count), then the construct it was reading."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return f": {str(exc).splitlines()[0]}"
    text = f" at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None:
        what = re.sub(r"^while (parsing|scanning) (an? )?", "", str(context))
        text += f" (in the {what} at line {start.line + 1}, column {start.column + 1})"
    return text


def _check_shape(path: Path, data: Any) -> None:
    def bad(why: str) -> CassetteError:
        return CassetteError(f"cassette {path} is corrupt: {why}",
                             hint="re-record it with `plait run --record DIR`")

    if not isinstance(data, dict) or "plait_cassette" not in data:
        raise bad("it has no `plait_cassette:` header")
    version = data["plait_cassette"]
    if type(version) is not int or version != FORMAT_VERSION:  # `true` is not 1
        newer = type(version) is int and version > FORMAT_VERSION
        raise CassetteError(f"cassette {path} has format version {version!r}"
                            + (", written by a newer plait" if newer else "")
                            + f"; this plait reads version {FORMAT_VERSION}",
                            hint="upgrade plait to the version that recorded it (re-recording "
                                 "with this one would downgrade it)" if newer
                            else "re-record it with this version of plait")
    items = data.get("interactions")
    if not isinstance(items, list):
        raise bad("`interactions` is not a list")
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("kind") not in KINDS:
            raise bad(f"interaction {i} has no valid `kind` (one of {', '.join(KINDS)})")
        if not isinstance(item.get("request"), dict):
            raise bad(f"interaction {i} has no `request` mapping")
        if not any(k in item for k in ("response", "error", "chunks")):
            raise bad(f"interaction {i} has neither `response`, `chunks` nor `error`")
        why = shape.problem(item)
        if why is not None:
            step = f", step {item['step']!r}" if isinstance(item.get("step"), str) else ""
            raise CassetteError(f"cassette {path} is corrupt: interaction {i} "
                                f"({item['kind']}{step}): {why}",
                                hint="a malformed interaction: re-record it with "
                                     "`plait run --record DIR`")


def check_writable(path: Path) -> None:
    """Before a recorded run starts: the cassette could be written (so a live run is not
    wasted on a cassette that cannot be saved). Nothing is written or created."""
    why = unwritable(path)
    if why is not None:
        hint = ("remove that directory, or record elsewhere" if why == "it is a directory"
                else "pass --record a directory that can be created and written")
        raise CassetteError(f"cannot write cassette {path}: {why}", hint=hint)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """The safe dumper, writing a text of several lines (a prompt, a reply, a file read) as
    a literal block, line for line as it is, instead of a quoted scalar in which a blank
    line stands for a line break and a break for a space. Text a block cannot hold exactly
    (trailing spaces before a break, control characters) stays quoted: the emitter falls
    back by itself."""


def _text(dumper: Any, value: str) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def write_cassette(path: Path, data: Mapping[str, Any]) -> str:
    """Write atomically (temp file, fsync, rename), so a crash never leaves half a file;
    returns the text written."""
    text = yaml.dump(dict(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100, default_flow_style=False)
    try:
        atomic_write(path, text)
    except OSError as exc:
        why = unwritable(path) or exc.strerror or exc
        raise CassetteError(f"cannot write cassette {path}: {why}",
                            hint="check that the directory exists and is writable") from None
    return text
