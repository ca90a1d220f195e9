"""Every PolicyViolation says how to fix it: a hint that names the policy field to change (or,
for a step without a policy, that one must be declared), and a refused command is quoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import PolicyViolation
from engine.policy import check_command, check_tool_arguments, resolve_policy
from engine.spec.models import PolicySpec
from tests.security.sec_helpers import make_policy


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("hello")
    return tmp_path


def _refused(call: object, *args: object, **kwargs: object) -> PolicyViolation:
    with pytest.raises(PolicyViolation) as excinfo:
        call(*args, **kwargs)  # type: ignore[operator]
    return excinfo.value


def test_a_path_outside_the_roots_names_the_field_to_change(tree: Path) -> None:
    policy = make_policy("medium", tree, filesystem={"read": ["data"]})
    exc = _refused(check_tool_arguments, policy, "files.read", {"path": "/etc/passwd"}, cwd=tree)
    assert exc.hint == ("use a path under those roots, or set a `filesystem.read` root that "
                        "holds it in policy 'medium-test'")
    assert "(hint: use a path under those roots" in str(exc)


def test_a_write_with_no_write_roots_says_none_are_declared(tree: Path) -> None:
    """Read roots but no write roots: not "outside the write roots (nothing (no roots
    declared))" with a hint to use a path under roots there are none of."""
    policy = make_policy("medium", tree, filesystem={"read": ["data"]})
    exc = _refused(check_command, policy, "echo hi > data/out.txt", cwd=tree)
    assert exc.message.endswith("outside the write roots (none declared)")
    assert exc.hint == "set a `filesystem.write` root that holds it in policy 'medium-test'"


def test_the_default_policy_says_to_declare_one(tree: Path) -> None:
    policy = resolve_policy(PolicySpec(filesystem={"read": ["data"]}), name=None, base_dir=tree,
                            env={})
    exc = _refused(check_command, policy, ["cat", "/etc/passwd"], cwd=tree)
    assert exc.context["rule"] == "filesystem"
    assert exc.hint is not None and "declare it under `policies:`" in exc.hint


def test_a_dangerous_pattern_quotes_the_command_and_says_what_to_do(tree: Path) -> None:
    policy = make_policy("medium", tree)
    exc = _refused(check_command, policy, "grep -c 'x; rm -rf ~' notes.txt", cwd=tree)
    assert exc.context["rule"] == "dangerous.rm-root"
    assert exc.message.endswith(
        """dangerous pattern 'rm-root': "grep -c 'x; rm -rf ~' notes.txt\"""")
    assert exc.hint is not None and "`stdin:` or `env:`" in exc.hint


def test_a_long_command_is_quoted_by_its_head_and_tail(tree: Path) -> None:
    policy = make_policy("medium", tree)
    text = "echo " + "a" * 1000 + " ; rm -rf /"
    exc = _refused(check_command, policy, text, cwd=tree)
    assert " ... " in exc.message and len(exc.message) < 400
    assert exc.message.rstrip("'").endswith("rm -rf /")


@pytest.mark.parametrize(("spec", "command", "rule", "hint"), [
    ({"blocked_operations": ["rm"]}, "rm data/notes.txt", "blocked_operations",
     "remove it from the command, or 'rm' from `blocked_operations` of policy 'medium-test'"),
    ({"allowed_extensions": [".md"]}, "cat data/notes.txt", "allowed_extensions",
     "use a file with one of those extensions, or set its extension in `allowed_extensions` "
     "in policy 'medium-test'"),
    ({"rules": [{"name": "no-prod", "pattern": "prod"}]}, "echo prod", "rules.no-prod",
     "the workflow's rule 'no-prod' of policy 'medium-test' refuses it: change the value, or "
     "the rule"),
    ({}, "shutdown -h now", "dangerous.command",
     "run it under a policy of level low if you really mean to"),
    ({}, "echo 'unclosed", "unparseable",
     "fix the shell syntax, or write `run:` as a list (one argv word an item, no shell)"),
])
def test_each_rule_has_a_hint(tree: Path, spec: dict[str, object], command: str, rule: str,
                              hint: str) -> None:
    policy = make_policy("medium", tree, **spec)
    exc = _refused(check_command, policy, command, cwd=tree)
    assert (exc.context["rule"], exc.hint) == (rule, hint)


def test_a_too_large_argument(tree: Path) -> None:
    policy = resolve_policy(PolicySpec(level="medium", max_file_size_mb=1), name="p",
                            base_dir=tree, env={})
    exc = _refused(check_tool_arguments, policy, "t", {"text": "x" * (2 << 20)}, cwd=tree)
    assert exc.hint == "pass a smaller value, or set a larger `max_file_size_mb` in policy 'p'"
