"""resolve_policy: per-level defaults, environment defaults, critical refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.policy import LEVEL_DEFAULTS, resolve_policy
from engine.spec.models import FilesystemSpec, PolicySpec


@pytest.mark.parametrize("level", ["low", "medium", "high", "critical"])
def test_level_defaults_apply(level: str, tmp_path: Path) -> None:
    policy = resolve_policy(PolicySpec(level=level), name="p", base_dir=tmp_path, env={})
    defaults = LEVEL_DEFAULTS[level]  # type: ignore[index]
    assert policy.level == level
    assert policy.network is defaults.network
    assert policy.max_execution_time == defaults.max_execution_time
    assert policy.max_memory_mb == defaults.max_memory_mb
    assert policy.max_processes == defaults.max_processes
    assert policy.max_output_bytes == defaults.max_output_bytes


def test_no_spec_uses_security_default_level(tmp_path: Path) -> None:
    env = {"SECURITY_DEFAULT_LEVEL": "high", "SECURITY_MAX_EXECUTION_TIME": "7s",
           "SECURITY_MAX_MEMORY_MB": "300"}
    policy = resolve_policy(None, name=None, base_dir=tmp_path, env=env)
    assert (policy.name, policy.level, policy.network) == ("default", "high", False)
    assert (policy.max_execution_time, policy.max_memory_mb) == (7.0, 300)


def test_explicit_fields_beat_environment_defaults(tmp_path: Path) -> None:
    env = {"SECURITY_DEFAULT_LEVEL": "low", "SECURITY_MAX_EXECUTION_TIME": "7",
           "SECURITY_MAX_MEMORY_MB": "300"}
    spec = PolicySpec(level="medium", max_execution_time=3, max_memory_mb=64)
    policy = resolve_policy(spec, name="p", base_dir=tmp_path, env=env)
    assert (policy.level, policy.max_execution_time, policy.max_memory_mb) == ("medium", 3, 64)


def test_bad_environment_default_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECURITY_DEFAULT_LEVEL"):
        resolve_policy(None, name=None, base_dir=tmp_path, env={"SECURITY_DEFAULT_LEVEL": "x"})


def test_paths_are_resolved_against_the_workflow_dir(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    spec = PolicySpec(filesystem=FilesystemSpec(read=["./link"], write=["out"]),
                      allowed_extensions=["TXT", ".md"])
    policy = resolve_policy(spec, name="p", base_dir=tmp_path, env={})
    assert policy.read_paths == (tmp_path.resolve() / "real",)
    assert policy.write_paths == (tmp_path.resolve() / "out",)
    assert policy.allowed_extensions == frozenset({".txt", ".md"})


@pytest.mark.parametrize("spec", [
    PolicySpec(level="critical", network=True),
    PolicySpec(level="critical", filesystem=FilesystemSpec(read=["."])),
])
def test_critical_refuses_network_and_filesystem(spec: PolicySpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="critical"):
        resolve_policy(spec, name="p", base_dir=tmp_path, env={})


def test_invalid_rule_regex_is_a_config_error(tmp_path: Path) -> None:
    spec = PolicySpec.model_validate({"rules": [{"name": "bad", "pattern": "("}]})
    with pytest.raises(ConfigError, match="bad"):
        resolve_policy(spec, name="p", base_dir=tmp_path, env={})


@pytest.mark.parametrize("raw", ["nan", "inf", "bogus", "1e400"])
def test_a_memory_limit_that_is_not_a_finite_number_is_a_config_error(tmp_path: Path,
                                                                      raw: str) -> None:
    """SECURITY_MAX_MEMORY_MB=nan passed the check (NaN <= 0 is false) and crashed the run
    later (ValueError: cannot convert float NaN to integer, as a raw ExceptionGroup); inf
    passed too; bogus was explained as "could not convert string to float"."""
    with pytest.raises(ConfigError) as info:
        resolve_policy(None, name=None, base_dir=tmp_path,
                       env={"SECURITY_MAX_MEMORY_MB": raw})
    assert str(info.value).startswith(f"SECURITY_MAX_MEMORY_MB={raw!r} is not a number"), \
        str(info.value)
    assert info.value.hint == "give a number of megabytes, e.g. 512"
