"""check_resource_uri / check_prompt_arguments: a resource read's URI judged as a read path
(file: URIs and bare paths) and by the rules (every URI), a prompt get's arguments as a tool
call's. The end-to-end run over a real MCP server is tests/mcp/test_resource_prompt_policy.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import PolicyViolation
from engine.policy import Policy, check_prompt_arguments, check_resource_uri
from tests.security.sec_helpers import make_policy


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("data", "outside"):
        (tmp_path / name).mkdir()
    (tmp_path / "data" / "notes.md").write_text("hello")
    (tmp_path / "outside" / "secret.md").write_text("TOP SECRET")
    (tmp_path / ".env").write_text("TOKEN=x")
    return tmp_path


def _medium(tree: Path, **kw: Any) -> Policy:
    return make_policy("medium", tree, filesystem={"read": ["data"]}, **kw)


def _refused(policy: Policy, uri: str, cwd: Path) -> dict[str, Any]:
    with pytest.raises(PolicyViolation) as excinfo:
        check_resource_uri(policy, uri, cwd=cwd)
    assert excinfo.value.hint
    return excinfo.value.context


@pytest.mark.parametrize("uri", [
    "file:///etc/shadow", "FILE:///etc/shadow", "file:/etc/shadow",
    "file://localhost/etc/shadow", "file:///%65tc/shadow",  # percent-encoded: /etc/shadow
    "{data}/../outside/secret.md", "{data}/%2e%2e/outside/secret.md", "/etc/passwd",
    "../outside/secret.md",  # a bare path, resolved against the server's base
    " file:///etc/shadow", "fi\tle:///etc/shadow\n",  # what a URL parser strips
])
def test_file_uris_and_bare_paths_out_of_the_roots_are_refused(tree: Path, uri: str) -> None:
    uri = uri.format(data=(tree / "data").as_uri())
    with pytest.raises(PolicyViolation) as excinfo:
        check_resource_uri(_medium(tree), uri, cwd=tree / "data")
    context = excinfo.value.context
    assert context["rule"] == "filesystem" and context["policy"] == "medium-test"
    assert "outside the read roots" in excinfo.value.message and excinfo.value.hint
    if "file:" in uri.lower():  # the message quotes the URI whose path it judged
        assert f"the resource URI {uri!r}: path " in excinfo.value.message


def test_file_uris_inside_the_roots_are_allowed(tree: Path) -> None:
    policy = _medium(tree)
    check_resource_uri(policy, (tree / "data" / "notes.md").as_uri(), cwd=tree)
    check_resource_uri(policy, "notes.md", cwd=tree / "data")
    check_resource_uri(policy, "https://example.test/a/b?c=1", cwd=tree)  # not a file


def test_a_file_uri_naming_a_host_is_refused(tree: Path) -> None:
    # `file://data/notes.md` is a host `data` and a path `/notes.md`, or a relative path
    # `data/notes.md`: which one the server reads is its guess; refused even when the path
    # part is under a root
    for uri in ("file://data/notes.md", f"file://elsewhere{tree}/data/notes.md",
                "file://[::1/etc/passwd"):
        with pytest.raises(PolicyViolation, match=r"names the host|malformed") as excinfo:
            check_resource_uri(_medium(tree), uri, cwd=tree)
        assert excinfo.value.context["rule"] == "filesystem"


def test_the_workflows_own_files_and_extensions(tree: Path) -> None:
    wide = make_policy("medium", tree, filesystem={"read": ["."]}, allowed_extensions=["md"])
    assert _refused(wide, (tree / ".env").as_uri(), tree)["rule"] == "filesystem"
    check_resource_uri(wide, (tree / "data" / "notes.md").as_uri(), cwd=tree)
    (tree / "data" / "x.py").write_text("")
    assert _refused(wide, (tree / "data" / "x.py").as_uri(), tree)["rule"] == \
        "allowed_extensions"


def test_other_schemes_refuse_dot_segments_only_when_paths_are_confined(tree: Path) -> None:
    for uri in ("notes://../secret.md", "notes://a/..", "notes://a/%2E%2E/b",
                "notes://a\\..\\b"):
        assert _refused(_medium(tree), uri, tree)["rule"] == "filesystem", uri
    check_resource_uri(_medium(tree), "notes://a..b/c", cwd=tree)
    # medium without roots does not confine paths: neither a file: URI nor a template
    open_medium = make_policy("medium", tree)
    check_resource_uri(open_medium, "notes://../secret.md", cwd=tree)
    check_resource_uri(open_medium, "file:///etc/hostname", cwd=tree)


def test_rules_search_the_uri_as_written_and_decoded(tree: Path) -> None:
    policy = make_policy("medium", tree, rules=[
        {"name": "no-shadow", "pattern": "shadow", "applies_to": "arguments"},
        {"name": "cmd-only", "pattern": "notes", "applies_to": "command"}])
    for uri in ("wiki://pages/shadow", "wiki://pages/%73hadow"):
        context = _refused(policy, uri, tree)
        assert context["rule"] == "rules.no-shadow"
    check_resource_uri(policy, "wiki://notes", cwd=tree)  # a command rule does not apply


def test_size_limit_applies_to_the_uri(tree: Path) -> None:
    policy = make_policy("medium", tree, max_file_size_mb=1)
    assert _refused(policy, "wiki://" + "a" * (1024 * 1024), tree)["rule"] == \
        "max_file_size_mb"


def test_low_checks_no_uri_and_no_prompt_argument(tree: Path) -> None:
    low = make_policy("low", tree, filesystem={"read": ["data"]}, rules=[
        {"name": "no-shadow", "pattern": "shadow"}])
    check_resource_uri(low, "file:///etc/shadow", cwd=tree)
    check_resource_uri(low, "notes://../../etc/shadow", cwd=tree)
    check_prompt_arguments(low, "wiki.review", {"file": "/etc/shadow"}, cwd=tree)


def test_prompt_arguments_are_checked_as_tool_arguments(tree: Path) -> None:
    policy = _medium(tree, rules=[{"name": "no-prod", "pattern": r"prod\.example",
                                   "applies_to": "arguments"}])
    with pytest.raises(PolicyViolation) as excinfo:
        check_prompt_arguments(policy, "wiki.review", {"file": "../outside/secret.md"},
                               cwd=tree / "data")
    assert excinfo.value.context["rule"] == "filesystem"
    assert excinfo.value.context["prompt"] == "wiki.review"
    with pytest.raises(PolicyViolation) as excinfo:
        check_prompt_arguments(policy, "wiki.review", {"topic": "see prod.example"}, cwd=tree)
    assert excinfo.value.context["rule"] == "rules.no-prod"
    with pytest.raises(PolicyViolation) as excinfo:
        check_prompt_arguments(policy, "wiki.review", {"command": "rm -rf /"}, cwd=tree)
    assert excinfo.value.context["rule"] == "dangerous.rm-root"
    check_prompt_arguments(policy, "wiki.review", {"topic": "the readme", "n": "3",
                                                   "file": "notes.md"}, cwd=tree / "data")


def test_a_list_or_mapping_prompt_argument_is_checked_inside_its_json(tree: Path) -> None:
    # a list or dict argument is sent as JSON: `{"path": "/etc/shadow"}` has a space, so the
    # text itself does not look like a path; its values are checked under their keys
    with pytest.raises(PolicyViolation) as excinfo:
        check_prompt_arguments(_medium(tree), "wiki.review",
                               {"opts": '{"path": "/etc/shadow"}'}, cwd=tree)
    assert excinfo.value.context["value"] == "/etc/shadow"
    with pytest.raises(PolicyViolation):
        check_prompt_arguments(_medium(tree), "wiki.review",
                               {"files": '["a b", "/etc/shadow"]'}, cwd=tree)
    check_prompt_arguments(_medium(tree), "wiki.review", {"opts": '{"n": 3, "x": "a b"}',
                                                          "raw": "{not json"}, cwd=tree)
