"""`policy:` on a step that makes no command or MCP request of its own (an `llm:` step
without `tools:`, a `workflow:` step) is a spec error at the key, found in review: it loaded
and did nothing, so a user who wrote it believed the step was confined."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text
from tests.cli.test_cli import plait

HEAD = """\
version: 1
name: step-policy
providers:
  e: {kind: echo}
mcp_servers:
  files: {command: plait-mcp-files, args: [--root, .], policy: open}
policies:
  open: {level: low}
  strict: {level: medium, filesystem: {read: [./data]}}
steps:
"""
CHILD = ("version: 1\nname: child\nproviders:\n  e: {kind: echo}\n"
         "steps:\n  s: {llm: e, prompt: hi}\n")


def test_policy_on_an_llm_step_without_tools_is_refused_at_the_key() -> None:
    text = HEAD + "  talk:\n    llm: e\n    prompt: hi\n    policy: strict\n"
    with pytest.raises(SpecError) as info:
        load_text(text, "wf.yaml")
    [issue] = info.value.issues
    assert (issue.location.line, issue.location.column) == (14, 5)
    assert issue.message.startswith("`policy:` has no effect on an `llm:` step without "
                                    "`tools:`: a step's policy applies to `run:`, `tool:`, "
                                    "`resource:` and `mcp_prompt:` steps and to the tool calls "
                                    "of an `llm:` step with `tools:`"), issue.message
    assert issue.hint == ("remove it, or give the step `tools:`: its policy then checks each "
                          "call the model makes")
    # where a step policy checks something, it loads; so does `defaults.policy`, which is a
    # default, not a claim about the llm step
    for step in ("  ask: {llm: e, prompt: hi, tools: [files.read_file], policy: strict}\n",
                 "  read: {tool: files.read_file, with: {path: data/a.md}, policy: strict}\n",
                 "  doc: {resource: files, uri: 'file:///x', policy: strict}\n",
                 "  ask: {mcp_prompt: files.review, policy: strict}\n",
                 "  sh: {run: 'true', policy: strict}\n"):
        assert load_text(HEAD + step, "wf.yaml").spec.steps, step
    defaults = HEAD.replace("steps:\n", "defaults: {policy: strict}\nsteps:\n")
    assert load_text(defaults + "  talk: {llm: e, prompt: hi}\n", "wf.yaml").spec.steps


def test_policy_on_a_workflow_step_is_refused_by_plait_validate(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "wf.yaml").write_text(
        HEAD + "  sub:\n    workflow: child.yaml\n    policy: strict\n")
    out = plait("validate", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith("wf.yaml:13:5: `policy:` has no effect on a `workflow:` step: "
                                 "a step's policy applies to"), out.stderr
    assert "set them there, with `policy:` on its steps or its `defaults.policy`" in out.stderr


def test_max_turns_on_an_llm_step_without_tools_is_refused_at_the_key() -> None:
    """Found in review: it loaded and did nothing, so an agent recipe that lost its
    `tools:` (or never had them) ran as one plain call, its max_turns silently unused."""
    for step in ("  talk:\n    llm: e\n    prompt: hi\n    max_turns: 3\n",
                 "  talk:\n    llm: e\n    prompt: hi\n    tools: []\n    max_turns: 3\n"):
        with pytest.raises(SpecError) as info:
            load_text(HEAD + step, "wf.yaml")
        [issue] = info.value.issues
        line = HEAD.count("\n") + step.count("\n")  # max_turns is the last line
        assert (issue.location.line, issue.location.column) == (line, 5), step
        assert issue.message == "max_turns is set on an `llm:` step without `tools:`"
        assert issue.hint == ("it bounds the model turns of an agent loop, which only "
                              "`tools:` starts; give the step `tools:` (e.g. [files.*]), or "
                              "remove max_turns")
    agent = "  ask: {llm: e, prompt: hi, tools: [files.read_file], max_turns: 3}\n"
    assert load_text(HEAD + agent, "wf.yaml").spec.steps
