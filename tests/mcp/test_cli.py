"""`plait mcp tools | call | import` through click, against a real stdio server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.spec.loader import load
from engine.spec.models import MCPServerSpec
from runners.cli.main import cli
from runners.cli.mcp import group
from tests.mcp.conftest import ROOT


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha")
    doc = {"version": 1, "name": "t", "mcp_servers": {"files": {
        "command": sys.executable,
        "args": ["-m", "engine.mcp.servers.files", "--root", "./data"],
        "env": {"PYTHONPATH": str(ROOT)}}},
        "steps": {"ls": {"tool": "files.list_directory"}}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tools_table_and_json(workflow: Path) -> None:
    result = CliRunner().invoke(group, ["tools", str(workflow)])
    assert result.exit_code == 0, result.output
    assert "files.read_file" in result.output and "Read a text file" in result.output
    result = CliRunner().invoke(group, ["tools", str(workflow), "files", "--json"])
    names = [t["name"] for t in json.loads(result.output)]
    assert names == ["files.list_directory", "files.read_file", "files.search_files",
                     "files.write_file"]


def test_call_ok_and_failures(workflow: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(group, ["call", str(workflow), "files.read_file",
                               "--args", '{"path": "a.txt"}'])
    assert (ok.exit_code, ok.output.strip()) == (0, "alpha")
    bad = runner.invoke(group, ["call", str(workflow), "files.read_file",
                                "--args", '{"path": "../wf.yaml"}'])
    assert bad.exit_code == 1 and "outside the server's root" in bad.output
    typo = runner.invoke(group, ["call", str(workflow), "files.read_fil", "--args", "{}"])
    assert typo.exit_code == 2 and "did you mean 'read_file'" in typo.output
    no_server = runner.invoke(group, ["call", str(workflow), "nope.x"])
    assert no_server.exit_code == 2 and "unknown MCP server 'nope'" in no_server.output
    listing = runner.invoke(group, ["tools", str(workflow), "nope"])
    assert listing.exit_code == 2 and "unknown MCP server 'nope'" in listing.output
    usage = runner.invoke(group, ["call", str(workflow), "files.read_file", "--args", "[1"])
    assert usage.exit_code == 2 and "not valid JSON" in usage.output


def test_arguments_that_do_not_fit_the_schema_are_a_usage_error(workflow: Path) -> None:
    """The server never sees the call (docs/mcp.md: nothing called, exit 2), unlike a tool
    that runs and fails (exit 1)."""
    runner = CliRunner()
    wrong_type = runner.invoke(group, ["call", str(workflow), "files.read_file",
                                       "--args", '{"path": 3}'])
    assert wrong_type.exit_code == 2, wrong_type.output
    assert "do not match its input schema at path" in wrong_type.output
    missing = runner.invoke(group, ["call", str(workflow), "files.read_file"])
    assert missing.exit_code == 2 and "'path' is a required property" in missing.output
    failed = runner.invoke(group, ["call", str(workflow), "files.read_file",
                                   "--args", '{"path": "nope.txt"}'])
    assert failed.exit_code == 1 and "is not a file" in failed.output


def test_call_checks_the_arguments_against_the_servers_policy(workflow: Path) -> None:
    """`plait mcp call` started the server without its policy: a run refuses these
    arguments (PolicyViolation), the CLI passed them to the server. Refused, nothing is
    called: exit 2, as for arguments that do not fit the schema."""
    doc = yaml.safe_load(workflow.read_text())
    doc["mcp_servers"]["files"]["args"] = ["-m", "engine.mcp.servers.files", "--root", "."]
    doc["mcp_servers"]["files"]["policy"] = "reader"
    doc["policies"] = {"reader": {"level": "medium", "filesystem": {"read": ["data"]},
                                 "allowed_extensions": [".txt"]}}
    workflow.write_text(yaml.safe_dump(doc))
    runner = CliRunner()
    ok = runner.invoke(group, ["call", str(workflow), "files.read_file",
                               "--args", '{"path": "data/a.txt"}'])
    assert (ok.exit_code, ok.output.strip()) == (0, "alpha")
    refused = runner.invoke(group, ["call", str(workflow), "files.read_file",
                                    "--args", '{"path": "wf.yaml"}'])
    assert refused.exit_code == 2, refused.output
    assert "policy 'reader' (medium): path 'wf.yaml' resolves to" in refused.output
    assert "outside the read roots" in refused.output


def test_import_claude_config(tmp_path: Path) -> None:
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {
        "file system": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-fs"],
                        "env": {"API_TOKEN": "literal-secret"}},
        "remote": {"type": "sse", "url": "http://127.0.0.1:9/sse"},
        "http": {"url": "http://127.0.0.1:9/mcp", "headers": {"X-A": "b"}}}}))
    result = CliRunner().invoke(group, ["import", str(config)])
    assert result.exit_code == 0, result.output
    assert "literal-secret" not in result.output
    doc = yaml.safe_load(result.output)
    assert doc["secrets"] == ["API_TOKEN"]
    servers = doc["mcp_servers"]
    assert servers["file_system"]["env"] == {"API_TOKEN": "${{ secrets.API_TOKEN }}"}
    assert servers["remote"] == {"url": "http://127.0.0.1:9/sse", "transport": "sse"}
    for spec in servers.values():
        MCPServerSpec.model_validate(spec)


def test_imported_yaml_validates_with_sanitised_secrets_and_header_secrets(
        tmp_path: Path) -> None:
    config = tmp_path / "claude.json"
    config.write_text(json.dumps({"mcpServers": {
        "weird.name": {"command": "x", "env": {"my-token": "v1", "MY_TOKEN": "v2",
                                               "API_KEY": "${HOME}"}},
        "remote": {"url": "http://127.0.0.1:9/mcp",
                   "headers": {"Authorization": "Bearer abc123", "X-Api-Key": "k-456",
                               "Accept": "application/json"}}}}))
    result = CliRunner().invoke(group, ["import", str(config)])
    assert result.exit_code == 0, result.output
    for value in ("v1", "v2", "abc123", "k-456"):
        assert value not in result.output.split()
    doc = yaml.safe_load(result.output)
    assert doc["secrets"] == ["API_KEY", "MY_TOKEN", "MY_TOKEN_2", "REMOTE_AUTHORIZATION",
                              "REMOTE_X_API_KEY"]
    assert doc["mcp_servers"]["weird_name"]["env"] == {
        "my-token": "${{ secrets.MY_TOKEN }}",
        "MY_TOKEN": "${{ secrets.MY_TOKEN_2 }}", "API_KEY": "${{ secrets.API_KEY }}"}
    assert doc["mcp_servers"]["remote"]["headers"] == {
        "Authorization": "Bearer ${{ secrets.REMOTE_AUTHORIZATION }}",
        "X-Api-Key": "${{ secrets.REMOTE_X_API_KEY }}", "Accept": "application/json"}
    assert "#   MY_TOKEN: the value of env var my-token" in result.output
    assert "REMOTE_AUTHORIZATION: the Authorization header of server remote after 'Bearer'" \
        in result.output
    workflow = tmp_path / "imported.yaml"
    workflow.write_text(result.output + "\nversion: 1\nname: imported\n"
                        "steps:\n  a: {run: 'true'}\n")
    load(workflow)  # what `plait validate` runs: raises SpecError on any problem
    kept = CliRunner().invoke(group, ["import", str(config), "--keep-values"])
    assert "Bearer abc123" in kept.output and "secrets:" not in kept.output


def test_import_rejects_config_without_servers(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text("{}")
    result = CliRunner().invoke(group, ["import", str(config)])
    assert result.exit_code == 2 and "no `mcpServers`" in result.output


def test_tools_of_a_missing_command_prints_no_empty_table(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    doc["mcp_servers"] = {name: {"command": "no-such-mcp-server-xyz"}
                          for name in doc["mcp_servers"]}
    workflow.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(group, ["tools", str(workflow)])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and "name" not in result.output.split()
    assert "'no-such-mcp-server-xyz' was not found" in result.output


def test_tools_lists_healthy_servers_when_one_is_broken(workflow: Path) -> None:
    doc = yaml.safe_load(workflow.read_text())
    doc["mcp_servers"]["broken"] = {"command": "no-such-mcp-server-xyz"}
    workflow.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(group, ["tools", str(workflow)])
    assert result.exit_code == 1
    assert "files.read_file" in result.output
    assert "'no-such-mcp-server-xyz' was not found" in result.output


def test_a_server_that_prints_a_secret_and_dies_is_quoted_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-9d41c3e07b5a2f68"
    monkeypatch.setenv("MY_TOKEN", secret)
    doc = {"version": 1, "name": "t", "secrets": ["MY_TOKEN"], "mcp_servers": {"dies": {
        "command": sys.executable,
        "args": ["-c", "import os, sys; print('boom', os.environ['TOK'], file=sys.stderr); "
                       "sys.exit(1)"],
        "env": {"TOK": "${{ secrets.MY_TOKEN }}"}}},
        "steps": {"ls": {"tool": "dies.anything"}}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(group, ["tools", str(path), "dies"])
    assert result.exit_code == 1
    assert "boom ***" in result.output and secret not in result.output


def described(tmp_path: Path, description: str, name: str = "wf.yaml") -> Path:
    """A workflow whose server `f` (the faulty test server) describes its `pid` tool with
    `description`, a server's own text."""
    doc = {"version": 1, "name": "t", "mcp_servers": {"f": {
        "command": sys.executable,
        "args": [str(ROOT / "tests" / "mcp" / "faulty_server.py"), "--pid-description",
                 description],
        "env": {"PYTHONPATH": str(ROOT)}}},
        "steps": {"p": {"tool": "f.pid"}}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tools_table_shows_a_servers_descriptions_as_they_are(tmp_path: Path) -> None:
    """A tool description is the server's text: rich markup in it is shown, not obeyed (a
    stray closing tag crashed `plait mcp tools` with a MarkupError), and escape codes are
    shown as escapes, not sent to the terminal."""
    path = described(tmp_path, "[bold]pid[/bold] of the server [/oops] \x1b[2Jcleared")
    result = CliRunner().invoke(group, ["tools", str(path), "f"])
    assert result.exit_code == 0, result.output
    assert "[bold]pid[/bold] of the server [/oops]" in result.output
    assert "\x1b" not in result.output and "\\x1b[2Jcleared" in result.output


def test_a_servers_text_cannot_issue_github_workflow_commands(tmp_path: Path,
                                                             workflow: Path) -> None:
    """Under GitHub Actions, a tool description or a tool's result (a third-party server's
    text) that holds `::error::` or `##[add-mask]` is printed, not obeyed by the runner."""
    env = {"GITHUB_ACTIONS": "true"}
    path = described(tmp_path, "::error::pwned ##[add-mask]secret", "gh.yaml")
    table = CliRunner().invoke(group, ["tools", str(path), "f"], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith("::stop-commands::") and lines[-1] == f"::{lines[0][17:]}::"
    listed = CliRunner().invoke(group, ["tools", str(path), "f", "--json"], env=env)
    assert listed.exit_code == 0 and "##[" not in listed.output
    descriptions = {t["name"]: t["description"] for t in json.loads(listed.output)}
    assert descriptions["f.pid"] == "::error::pwned ##[add-mask]secret"
    (workflow.parent / "data" / "evil.txt").write_text("::error::pwned\n##[add-mask]x")
    called = CliRunner().invoke(group, ["call", str(workflow), "files.read_file",
                                        "--args", '{"path": "evil.txt"}'], env=env)
    assert called.exit_code == 0, called.output
    lines = called.output.splitlines()
    assert lines[0].startswith("::stop-commands::") and lines[1] == "::error::pwned"
    assert lines[-1] == f"::{lines[0][17:]}::"
    plain = CliRunner().invoke(group, ["call", str(workflow), "files.read_file",
                                       "--args", '{"path": "evil.txt"}'])
    assert plain.output == "::error::pwned\n##[add-mask]x\n"  # outside GitHub: as it is


def test_without_the_mcp_sdk_a_run_is_refused_naming_the_extra(workflow: Path) -> None:
    """Without the `mcp` extra a workflow with MCP servers is refused before any step runs
    (exit 2), naming the extra to install, not failed step by step with "No module named
    'mcp'" and a hint to run the server by hand; `plait mcp serve` says the same instead of
    a traceback. A replay starts no server: it still runs."""
    recorded = CliRunner().invoke(cli, ["run", str(workflow), "--record",
                                        str(workflow.parent / "tape")])
    assert recorded.exit_code == 0, recorded.output
    code = ("import sys; sys.modules['mcp'] = None\n"  # the SDK is not installed
            "from runners.cli.main import main\n"
            "sys.argv[0] = 'plait'\n"
            "main()\n")

    def plait(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], cwd=workflow.parent,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              stdin=subprocess.DEVNULL)

    for args in (["run", "wf.yaml"], ["mcp", "tools", "wf.yaml"], ["mcp", "serve", "wf.yaml"]):
        out = plait(*args)
        assert out.returncode == 2, out.stderr
        assert "mcp is not installed (hint: pip install 'plait[mcp]')" in out.stderr
        assert "started" not in out.stderr  # no step ran
    replayed = plait("run", "wf.yaml", "--replay", "tape", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["status"] == "succeeded"
