"""The public names of the security modules exist (an `__all__` lock)."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "engine.policy": {"Policy", "resolve_policy", "check_tool_arguments", "check_command"},
    "engine.sandbox": {"PlainRunner", "LimitedRunner", "BwrapRunner", "runner_for",
                       "check_enforceable", "Runner", "minimal_env"},
    "engine.commands": {"run_command", "AuditRecord", "CommandOutcome"},
    "engine.secrets": {"Redactor", "load_secrets", "parse_dotenv"},
}


@pytest.mark.parametrize("module", sorted(EXPECTED))
def test_all_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    assert EXPECTED[module] <= set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), name
