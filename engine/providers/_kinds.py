"""What each provider kind needs from its configuration: key env vars and known options.

No SDK is imported here, so a workflow can be checked without the vendor extras installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.errors import ConfigError, PlaitError
from engine.spec.provider_options import KNOWN_OPTIONS, option_problems

#: the env vars tried, in order, for a kind's API key
KEY_ENV: Mapping[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "azure_openai": ("AZURE_OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GOOGLE_API_KEY", "GEMINI_API_KEY"),
}


def check_options(name: str, kind: str, options: Mapping[str, Any], *,
                  error: type[PlaitError] = ConfigError) -> None:
    """Raise ``error`` naming any option the kind does not know."""
    known = KNOWN_OPTIONS.get(kind)
    if known is None or kind == "echo":  # echo checks its own, with its own message
        return
    unknown = sorted(set(options) - known)
    if unknown:
        raise error(f"provider {name!r} ({kind}): unknown option(s) {', '.join(unknown)}",
                    hint=f"known options: {', '.join(sorted(known))}; "
                         "vendor-specific fields go under options.extra_body")


def check_option_values(name: str, kind: str, options: Mapping[str, Any], *,
                        has_base_url: bool = False,
                        error: type[PlaitError] = ConfigError) -> None:
    """Raise ``error`` naming every option whose value cannot work (engine.spec's
    option_problems: the check `plait validate` makes, with the same words), on values as a
    run has them (rendered: a text holding `${{` is a text like any other here)."""
    problems = option_problems(kind, options, has_base_url=has_base_url, rendered=True)
    if problems:
        hints = [p.hint for p in problems if p.hint]
        raise error(f"provider {name!r} ({kind}): " + "; ".join(p.message for p in problems),
                    hint="; ".join(dict.fromkeys(hints)) or None, provider=name,
                    field=f"options.{problems[0].option}")


def merged_options(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    if not override:
        return dict(base)
    return {**base, **override}
