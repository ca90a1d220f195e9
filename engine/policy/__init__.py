"""Security policies: the effective policy of a step, and argument validation (pure)."""

from __future__ import annotations

from engine.policy._check import (
    DANGEROUS_COMMANDS,
    DANGEROUS_PATTERNS,
    check_command,
    check_path,
    check_prompt_arguments,
    check_tool_arguments,
)
from engine.policy._command import SimpleCommand, parse_command
from engine.policy._resolve import (
    LEVEL_DEFAULTS,
    LEVELS,
    Level,
    LevelDefaults,
    Policy,
    Rule,
    check_planted_roots,
    resolve_policy,
)
from engine.policy._resource import check_resource_uri

__all__ = (
    "DANGEROUS_COMMANDS",
    "DANGEROUS_PATTERNS",
    "LEVELS",
    "LEVEL_DEFAULTS",
    "Level",
    "LevelDefaults",
    "Policy",
    "Rule",
    "SimpleCommand",
    "check_command",
    "check_path",
    "check_planted_roots",
    "check_prompt_arguments",
    "check_resource_uri",
    "check_tool_arguments",
    "parse_command",
    "resolve_policy",
)
