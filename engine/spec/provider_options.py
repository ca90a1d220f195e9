"""The options each provider kind knows (`providers.<name>.options`, a step's `options`).

Plain data, here rather than in engine.providers, so `plait validate` can check option names
without importing the provider layer.
"""

from __future__ import annotations

from collections.abc import Mapping

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
