"""The options each provider kind knows (`providers.<name>.options`, a step's `options`).

Plain data, here rather than in engine.providers, so `plait validate` can check option names
without importing the provider layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

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
