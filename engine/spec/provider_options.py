"""The options each provider kind knows (`providers.<name>.options`, a step's `options`),
and what their values may be.

Here rather than in engine.providers, so `plait validate` can check option names and values
without importing the provider layer (or a vendor SDK); the providers check with the same code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.jsontext import typed
from engine.spec.durations import parse_duration
from engine.spec.suggest import did_you_mean

_COMMON = frozenset({"temperature", "top_p", "max_tokens", "extra_body"})
_OPENAI = _COMMON | {
    "max_completion_tokens", "seed", "frequency_penalty", "presence_penalty",
    "logit_bias", "logprobs", "top_logprobs", "reasoning_effort", "service_tier", "user",
    "parallel_tool_calls", "verbosity", "store", "metadata", "prompt_cache_key",
    "safety_identifier"}

#: kind -> option names; a kind not listed (e.g. replay) is not checked
KNOWN_OPTIONS: Mapping[str, frozenset[str]] = {
    "openai": _OPENAI,
    "azure_openai": _OPENAI,
    "anthropic": _COMMON | {"top_k", "thinking", "metadata", "service_tier"},
    "google": _COMMON | {"embedding_model",
        "top_k", "max_output_tokens", "seed", "presence_penalty", "frequency_penalty",
        "safety_settings", "thinking_config", "candidate_count", "response_mime_type"},
    "echo": frozenset({"latency", "failure_rate", "seed", "reply", "temperature",
                       "max_tokens", "top_p"}),
}


#: Azure OpenAI api-version values: a date, optionally with a suffix (2024-10-21,
#: 2025-04-01-preview), or the v1 API's names
_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-[a-z0-9.]+)?|v1|preview|latest")
URL_FIELDS = ("base_url", "endpoint")


def endpoint_problem(field: str, value: object) -> tuple[str, str] | None:
    """What is wrong with a provider's `base_url`, `endpoint` or `api_version` value, and how
    to fix it; None when it looks usable (or is an expression, checked once rendered)."""
    if not isinstance(value, str) or "${{" in value:
        return None
    if field in URL_FIELDS:
        parts = urlsplit(value)
        if parts.scheme in ("http", "https") and parts.netloc and not re.search(r"\s", value):
            return None
        example = "https://<resource>.openai.azure.com" if field == "endpoint" \
            else "http://127.0.0.1:8000/v1"
        return (f"`{field}` {value!r} is not an http(s) URL",
                f"write the whole URL with its scheme, e.g. {example}")
    if field == "api_version" and not _API_VERSION.fullmatch(value):
        return (f"`api_version` {value!r} is not an Azure OpenAI API version",
                "use a dated version such as 2024-10-21 or 2025-04-01-preview")
    return None


# ---------------------------------------------------------------- option values
#
# The one check of each kind's option values: `plait validate` reports what it finds at the
# option's place in the file, and a run (its pre-flight, an echo provider built from Python, a
# step's rendered `options:`) raises it as an error, with the same words. A value that is (or
# holds) a `${{ }}` expression is checked once rendered, at run time.


@dataclass(frozen=True, slots=True)
class OptionProblem:
    option: str
    #: e.g. 'option temperature must be a number within 0..2, got string "hot"'
    message: str
    hint: str | None = None


#: an option's value check: None when the value is usable, else what is wrong with it (the
#: message after "option NAME") and a hint
_Check = Callable[[Any], "tuple[str, str | None] | None"]


def _span(low: float | None, high: float | None) -> str:
    """The range a number must be in, as a message says it (" within 0..2")."""
    if low is not None and high is not None:
        return f" within {_num(low)}..{_num(high)}"
    return f" of at least {_num(low)}" if low is not None else ""


def _got(value: Any) -> str:
    """A value as a message shows it, in the workflow's words: `string "hot"`, `boolean
    true` (not Python's 'hot', True)."""
    return typed(value)


def _number(low: float | None = None, high: float | None = None) -> _Check:
    span = _span(low, high)

    def check(value: Any) -> tuple[str, str | None] | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f" must be a number{span}, got {_got(value)}", "write a plain number, unquoted"
        if not math.isfinite(value) or (low is not None and value < low) \
                or (high is not None and value > high):
            return f" must be a number{span}, got {_got(value)}", f"use a number{span}"
        return None
    return check


def _whole(low: int | None = None, high: int | None = None) -> _Check:
    span = _span(low, high)

    def check(value: Any) -> tuple[str, str | None] | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f" must be a whole number{span}, got {_got(value)}", \
                "write a plain whole number, unquoted"
        if (low is not None and value < low) or (high is not None and value > high):
            return f" must be a whole number{span}, got {_got(value)}", f"use a whole number{span}"
        return None
    return check


def _typed(kind: type | tuple[type, ...], what: str, hint: str) -> _Check:
    def check(value: Any) -> tuple[str, str | None] | None:
        if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
            return None
        return f" must be {what}, got {_got(value)}", hint
    return check


def _duration(value: Any) -> tuple[str, str | None] | None:
    try:
        parse_duration(value)
    except ValueError as exc:
        return f": {exc}", None
    return None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_TEXT = _typed(str, "a string", "quote it")
_FLAG = _typed(bool, "true or false", "write true or false")
_MAP = _typed(dict, "a mapping (key: value)", "e.g. {key: value}")
_LIST = _typed(list, "a list", "e.g. [a, b]")
_COMMON_CHECKS: Mapping[str, _Check] = {
    "top_p": _number(0, 1), "max_tokens": _whole(1), "extra_body": _MAP}
_OPENAI_CHECKS: Mapping[str, _Check] = {
    **_COMMON_CHECKS, "temperature": _number(0, 2), "max_completion_tokens": _whole(1),
    "seed": _whole(), "frequency_penalty": _number(-2, 2), "presence_penalty": _number(-2, 2),
    "logit_bias": _MAP, "logprobs": _FLAG, "top_logprobs": _whole(0, 20),
    "reasoning_effort": _TEXT, "service_tier": _TEXT, "user": _TEXT,
    "parallel_tool_calls": _FLAG, "verbosity": _TEXT, "store": _FLAG, "metadata": _MAP,
    "prompt_cache_key": _TEXT, "safety_identifier": _TEXT}
#: an OpenAI-compatible server (`base_url`) may take values the OpenAI API does not
#: (a temperature above 2): its numbers are only checked for being numbers
_COMPATIBLE_CHECKS: Mapping[str, _Check] = {
    **_OPENAI_CHECKS, "temperature": _number(0), "frequency_penalty": _number(),
    "presence_penalty": _number()}
_VALUE_CHECKS: Mapping[str, Mapping[str, _Check]] = {
    "openai": _OPENAI_CHECKS,
    "azure_openai": _OPENAI_CHECKS,
    "anthropic": {**_COMMON_CHECKS, "temperature": _number(0, 1), "top_k": _whole(0),
                  "thinking": _MAP, "metadata": _MAP, "service_tier": _TEXT},
    "google": {**_COMMON_CHECKS, "temperature": _number(0, 2), "top_k": _number(0),
               "max_output_tokens": _whole(1), "seed": _whole(), "presence_penalty": _number(),
               "frequency_penalty": _number(), "safety_settings": _LIST,
               "thinking_config": _MAP, "candidate_count": _whole(1),
               "response_mime_type": _TEXT, "embedding_model": _TEXT},
    "echo": {**_COMMON_CHECKS, "temperature": _number(0, 2), "latency": _duration,
             "failure_rate": _number(0, 1),
             "seed": _typed((int, str), "a whole number or a string", "e.g. seed: 7"),
             "reply": _TEXT},
}


def option_problems(kind: str, options: Mapping[str, Any], *, has_base_url: bool = False,
                    rendered: bool = False) -> list[OptionProblem]:
    """What is wrong with the values of `options` for a provider of `kind` (`has_base_url`:
    the provider sets `base_url`, which makes an `openai` one an OpenAI-compatible server's,
    with laxer checks). Unknown names are not reported
    here (KNOWN_OPTIONS is), nor are null values (not set); nor, unless `rendered` (a run's
    values), texts holding `${{ }}`: they are rendered, then checked, at run time."""
    checks = _COMPATIBLE_CHECKS if has_base_url and kind == "openai" else \
        _VALUE_CHECKS.get(kind)
    if not checks or not isinstance(options, Mapping):
        return []
    problems = []
    for name, value in options.items():
        check = checks.get(name) if isinstance(name, str) else None
        if check is None or value is None or (
                not rendered and isinstance(value, str) and "${{" in value):
            continue
        found = check(value)
        if found is not None:
            problems.append(OptionProblem(name, f"option {name}{found[0]}", found[1]))
    return problems



# ---------------------------------------------------------------- what `plait validate` says


@dataclass(frozen=True, slots=True)
class OptionIssue:
    """A problem with one option of a provider's or a step's `options:`."""

    option: str
    message: str
    hint: str | None
    #: located at the option's name (an unknown option), else at its value
    key: bool


def option_issues(name: str, provider: Any, options: Any, *,
                  via: str | None = None) -> list[OptionIssue]:
    """Option names that the kind of provider `name` does not know (a typo would otherwise
    fail the first call, or be ignored), and values it cannot take (a run refuses them).
    `via`: the step's own provider, when `name` is one of its fallbacks (a run sends a step's
    options to whichever provider of the chain it calls, see engine.providers.run)."""
    kind = provider.get("kind") if isinstance(provider, Mapping) else None
    known = KNOWN_OPTIONS.get(kind) if isinstance(kind, str) else None
    if known is None or not isinstance(options, Mapping):
        return []
    found = []
    for key in options:
        if not isinstance(key, str) or key in known:
            continue
        if via is not None:
            found.append(OptionIssue(
                key, f"fallback provider {name!r} ({kind}) of provider {via!r} has no option "
                f"{key!r}, and a step's options are sent to its provider's fallbacks too",
                _fallback_hint(via, key), key=True))
            continue
        hint = did_you_mean(key, known, what="option") or ""
        if kind != "echo":
            hint += " (vendor-specific fields go under options.extra_body)"
        found.append(OptionIssue(key, f"{kind} providers have no option {key!r}", hint,
                                 key=True))
    has_base_url = provider.get("base_url") is not None
    for problem in option_problems(str(kind), options, has_base_url=has_base_url):
        if via is None:
            found.append(OptionIssue(problem.option, f"provider {name!r} ({kind}): "
                                     f"{problem.message}", problem.hint, key=False))
            continue
        hint = _fallback_hint(via, problem.option)
        found.append(OptionIssue(
            problem.option, f"fallback provider {name!r} ({kind}) of provider {via!r}: "
            f"{problem.message} (a step's options are sent to its provider's fallbacks too)",
            f"{problem.hint}, or {hint}" if problem.hint else hint, key=False))
    return found


def _fallback_hint(provider: str, option: str) -> str:
    return (f"set {option} in providers.{provider}.options instead (a provider's own options "
            "are not sent to its fallbacks), or use an option every provider of the chain "
            "takes")
