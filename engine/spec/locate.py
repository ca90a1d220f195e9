"""Turn pydantic validation errors into located, readable spec issues."""

from __future__ import annotations

import types
import typing
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from engine.errors import SpecIssue
from engine.jsontext import typed
from engine.spec.models import (
    NAME_PATTERN,
    SECRET_PATTERN,
    STEP_KINDS,
    TOOL_PATTERN,
    LLMStep,
    MCPPromptStep,
    ResourceStep,
    RunStep,
    ToolStep,
    WorkflowSpec,
    WorkflowStep,
    step_kind,
)
from engine.spec.suggest import NAME_NOT_EXPRESSION, closest, did_you_mean
from engine.spec.yaml_source import Path_, Source

_STEP_MODELS: dict[str, type[BaseModel]] = {
    "llm": LLMStep, "tool": ToolStep, "run": RunStep, "workflow": WorkflowStep,
    "resource": ResourceStep, "mcp_prompt": MCPPromptStep,
}
_MAX_SHOWN = 60


def issues_from_validation(exc: ValidationError, src: Source) -> list[SpecIssue]:
    """One issue per distinct place; union alternatives at one place are merged."""
    merged: dict[tuple[Path_, str], list[str]] = {}
    order: list[tuple[Path_, str, dict[str, Any]]] = []
    for details in exc.errors(include_url=False):
        err: dict[str, Any] = dict(details)
        path = _yaml_path(tuple(err["loc"]), src.data, err["type"])
        key = (path, err["type"] if err["type"] in ("extra_forbidden", "missing") else "value")
        if key not in merged:
            merged[key] = []
            order.append((path, key[1], err))
        merged[key].append(_describe(err))
    issues = []
    for path, group, err in order:
        messages = merged[(path, group)]
        issues.append(_issue(src, path, err, messages))
    return issues


def _issue(src: Source, path: Path_, err: dict[str, Any], messages: list[str]) -> SpecIssue:
    kind = err["type"]
    if kind == "extra_forbidden":
        name = str(path[-1])
        allowed = allowed_keys(path[:-1], src.data)
        return SpecIssue(f"unknown key {name!r}", src.location(path, key=True), path,
                         hint=did_you_mean(name, allowed, what="key"), code="unknown_key")
    if kind == "missing":
        name = str(path[-1])
        return SpecIssue(f"missing required key {name!r}", src.location(path[:-1], key=True),
                         path, code="missing")
    if kind == "step_kind":
        return _step_kind_issue(src, path)
    got = err.get("input")
    if kind == "string_pattern_mismatch" and isinstance(got, str) and "${{" in got:
        return SpecIssue(NAME_NOT_EXPRESSION[0], src.location(path), path,
                         hint=NAME_NOT_EXPRESSION[1], code="invalid")
    unique = list(dict.fromkeys(messages))
    message = unique[0] if len(unique) == 1 else "expected " + " or ".join(
        m.removeprefix("expected ") for m in unique)
    if not isinstance(got, dict | list) and kind not in ("value_error", "assertion_error"):
        # as a workflow writes it: `got string "4"`, `got boolean true`, not Python's '4', True
        message += f", got {typed(got, _MAX_SHOWN)}"
    at_key = err["loc"][-1:] == ("[key]",)  # a mapping's key is wrong (a step id), not its value
    return SpecIssue(message, src.location(path, key=at_key), path, code=kind,
                     hint=_HINTS.get(kind) or _quoted_hint(kind, got))


def _quoted_hint(kind: str, got: Any) -> str | None:
    """`concurrency: "8"`, `continue_on_error: "yes"`, `needs: fetch`: how to write the
    number, the boolean or the list."""
    if not isinstance(got, str):
        return None
    if kind in ("int_type", "int_parsing", "float_type", "float_parsing"):
        try:
            float(got)
        except ValueError:
            return None
        return f"write the number without quotes: {got.strip()}"
    if kind in ("bool_type", "bool_parsing"):
        return "write true or false, without quotes"
    if kind == "list_type":
        return f"write a list, even of one: [{got}]"
    return None


def _step_kind_issue(src: Source, path: Path_) -> SpecIssue:
    """A step with two kinds, none (a misspelt one: `lm: fast`), or that is no mapping."""
    data = _value_at(src.data, path)
    kinds = ", ".join(STEP_KINDS)
    where = src.location(path, key=True)
    if not isinstance(data, dict):
        return SpecIssue(f"a step is a mapping with one of {kinds}; got "
                         f"{typed(data, _MAX_SHOWN)}", where, path, code="step_kind",
                         hint="write its keys under it, e.g. `build: {run: make}` or "
                         "`ask: {llm: fast, prompt: Hello}`")
    found = [k for k in STEP_KINDS if k in data]
    if found:
        return SpecIssue(f"a step must have exactly one of {kinds}; this one has "
                         + " and ".join(found), where, path, code="step_kind",
                         hint="split it into separate steps")
    other_keys = {f.alias or n for model in _STEP_MODELS.values()
                  for n, f in model.model_fields.items()}  # `prompt:` is no misspelt kind
    near = {str(key): closest(str(key), STEP_KINDS) for key in data if key not in other_keys}
    misspelt = [(key, kind) for key, kind in near.items() if kind is not None]
    if misspelt:
        key, kind = misspelt[0]
        return SpecIssue(f"a step needs one of {kinds}; this one has none, but has "
                         f"unknown key {key!r}", src.location((*path, key), key=True), path,
                         hint=f"did you mean {kind!r}?", code="step_kind")
    return SpecIssue(f"a step needs one of {kinds}", where, path, code="step_kind",
                     hint="say what the step does, e.g. `llm: <provider>` with `prompt:`, "
                     "`tool: <server>.<tool>` or `run: <command>`")


#: what a pattern in the models asks for, as a person would say it
_PATTERNS = {
    NAME_PATTERN: "a name of letters, digits, _ and -, starting with a letter or _ "
                  "(e.g. fetch_page)",
    TOOL_PATTERN: "`server.tool`, e.g. files.read_file",
    SECRET_PATTERN: "an environment variable name: letters, digits and _, e.g. OPENAI_API_KEY",
}
_HINTS = {"too_short": "give it at least one entry"}


def _describe(err: dict[str, Any]) -> str:
    kind, msg = err["type"], err["msg"]
    ctx = err.get("ctx") or {}
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in _PATTERNS:
        return f"expected {_PATTERNS[ctx['pattern']]}"
    if kind == "too_short" and isinstance(err.get("input"), dict | list):
        return "it cannot be empty"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected', '')}".replace("'", "")
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", msg)).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing"):
        noun = kind.split("_")[0]
        return f"expected {_NOUNS.get(noun, noun)}"
    return str(msg[0].lower() + msg[1:]) if msg else str(kind)


_NOUNS = {"string": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
          "dict": "a mapping", "list": "a list", "model": "a mapping", "none": "null",
          "literal": "a fixed value"}


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _yaml_path(loc: Path_, data: Any, kind: str) -> Path_:
    """Drop the labels pydantic adds to a loc (union tags and member names)."""
    path: list[str | int] = []
    current = data
    for i, seg in enumerate(loc):
        if len(path) == 2 and path[0] == "steps" and i == 2 and seg in STEP_KINDS \
                and kind != "step_kind":
            continue  # the discriminator tag of the step union
        last = i == len(loc) - 1
        in_dict = isinstance(current, dict) and seg in current
        in_list = isinstance(current, list) and isinstance(seg, int) and seg < len(current)
        if in_dict or in_list:
            path.append(seg)
            current = current[seg]
        elif last and kind in ("missing", "extra_forbidden"):
            path.append(seg)
        else:
            continue  # a union member label such as 'str' or 'list[str]'
    return tuple(path)


def allowed_keys(path: Path_, data: Any) -> list[str]:
    """The keys a mapping at `path` may have, from the models."""
    tp: Any = WorkflowSpec
    current = data
    for seg in path:
        tp = _unwrap(tp)
        if isinstance(current, dict | list):
            try:
                current = current[seg]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                current = None
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next((f for n, f in tp.model_fields.items() if (f.alias or n) == seg), None)
            tp = field.annotation if field else None
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return []
        if _is_step_union(tp):
            tp = _STEP_MODELS.get(step_kind(current) or "")
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _is_step_union(tp: Any) -> bool:
    return get_origin(tp) is typing.Annotated and "Discriminator" in repr(tp)


def _unwrap(tp: Any) -> Any:
    """Optional[X] -> X and Annotated[X, ...] -> X (but keep the step union recognisable)."""
    while True:
        origin = get_origin(tp)
        if origin is typing.Annotated and not _is_step_union(tp):
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return tp
            tp = members[0]
        else:
            return tp
