"""Record a run, replay it offline: identical outputs and step records, for every provider
kind (echo, and openai/anthropic/google against the wire-level fake servers) and MCP tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.cassettes import collect_reports, read_cassette
from engine.errors import SandboxError
from engine.executor import run_workflow
from engine.executor.context import RunOptions
from engine.executor.services import Services
from engine.providers import ReplayProvider
from engine.secrets import Redactor
from engine.spec.loader import load
from tests.cassettes.conftest import ROOT, comparable, write_workflow

pytestmark = pytest.mark.anyio

KEY = "sk-cassette-secret-key-0123456789"
DEAD = "http://127.0.0.1:9"


def _vendor_workflow(kind: str, url: str) -> str:
    base = {"openai": f"{url}/openai/v1", "anthropic": f"{url}/anthropic",
            "google": f"{url}/google"}[kind]
    env = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
           "google": "GOOGLE_API_KEY"}[kind]
    return f"""
version: 1
name: rt-{kind}
secrets: [{env}]
providers:
  p: {{kind: {kind}, model: test-model, base_url: "{base}", api_key: "${{{{ secrets.{env} }}}}"}}
steps:
  plain:
    llm: p
    prompt: "Say hello"
  shaped:
    llm: p
    prompt: "Classify: ${{{{ steps.plain.output }}}}"
    output_schema:
      type: object
      required: [label]
      properties: {{label: {{type: string}}}}
  streamed:
    llm: p
    stream: true
    prompt: "Stream: ${{{{ steps.plain.output }}}}"
outputs:
  plain: ${{{{ steps.plain.output }}}}
  label: ${{{{ steps.shaped.output.label }}}}
  streamed: ${{{{ steps.streamed.output }}}}
""", env


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
async def test_vendor_round_trip(kind: str, srv: Any, tmp_path: Path) -> None:
    from tests.providers.servers.common import Action

    text, env = _vendor_workflow(kind, srv.url)
    wf = load(write_workflow(tmp_path, text))
    script = getattr(srv, kind)
    script.push("test-model", Action(text="hello there"), Action(json={"label": "greeting"}))
    tape = tmp_path / "tape"
    recorded = await run_workflow(wf, record_dir=tape, record_state=False,
                                  listeners=[lambda event: None], environ={env: KEY})
    assert recorded.ok, recorded.error
    sent = script.count()
    assert sent == 3

    file_text = (tape / f"rt-{kind}.cassette.yaml").read_text()
    assert KEY not in file_text and "Authorization" not in file_text
    kinds = [i["kind"] for i in read_cassette(tape / f"rt-{kind}.cassette.yaml")["interactions"]]
    assert sorted(kinds) == ["llm", "llm", "llm_stream"]

    # offline: no key in the environment (a real client would be refused by the key check)
    replayed = await run_workflow(wf, replay_dir=tape, record_state=False,
                                  listeners=[lambda event: None], environ={})
    assert script.count() == sent  # nothing reached the server

    # what the run's steps are handed under replay: a replay provider, no SDK client
    services = Services(wf, RunOptions(replay_dir=tape, record_state=False), {})
    async with services:
        provider = services.providers().get("p")
        assert isinstance(provider, ReplayProvider) and provider.model == "test-model"
        assert not hasattr(provider, "client")
    assert json.dumps(comparable(replayed), sort_keys=True) == \
        json.dumps(comparable(recorded), sort_keys=True)


ECHO = """
version: 1
name: rt-echo
secrets: [TOKEN]
providers:
  main: {kind: echo, model: m1, options: {failure_rate: 0.5, seed: 3}, fallback: [spare]}
  spare: {kind: echo, model: m2}
defaults:
  retry: {attempts: 3, backoff: constant, initial: 10ms}
steps:
  items:
    foreach: ${{ range(6) | list }}
    llm: main
    prompt: "item ${{ item }} with ${{ secrets.TOKEN }}"
  shaped:
    llm: spare
    prompt: "shape ${{ steps.items.output | length }}"
    output_schema: {type: object, required: [n], properties: {n: {type: integer}}}
  streamed:
    llm: spare
    stream: true
    prompt: "stream it"
outputs:
  items: ${{ steps.items.output }}
  n: ${{ steps.shaped.output.n }}
  streamed: ${{ steps.streamed.output }}
"""


async def test_echo_round_trip_with_failures_retries_and_secrets(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, ECHO))
    tape = tmp_path / "tape"
    env = {"TOKEN": "tok-very-secret-value"}
    recorded = await run_workflow(wf, record_dir=tape, record_state=False,
                                  listeners=[lambda event: None], environ=env)
    assert recorded.ok
    text = (tape / "rt-echo.cassette.yaml").read_text()
    assert "tok-very-secret-value" not in text and "***" in text
    assert "Unavailable" in text  # the simulated failures were recorded, and replay them
    replayed = await run_workflow(wf, replay_dir=tape, record_state=False,
                                  listeners=[lambda event: None], environ=env)
    assert replayed.outputs == recorded.outputs  # run outputs are redacted either way
    # a reply that echoed the secret is replayed masked: secrets never enter a cassette
    masked = Redactor(["tok-very-secret-value"]).redact_obj(comparable(recorded))
    assert json.dumps(comparable(replayed), sort_keys=True) == json.dumps(masked, sort_keys=True)


def _files_workflow(root: Path) -> str:
    return f"""
version: 1
name: rt-mcp
providers:
  agent: {{kind: echo, model: e}}
mcp_servers:
  files:
    command: {json.dumps(sys.executable)}
    args: [-m, engine.mcp.servers.files, --root, data]
    env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  ls:
    tool: files.list_directory
    with: {{path: .}}
  read:
    foreach: ${{{{ steps.ls.output.entries | map(attribute='name') | sort | list }}}}
    tool: files.read_file
    with: {{path: "${{{{ item }}}}"}}
  missing:
    tool: files.read_file
    with: {{path: nope.txt}}
    retry: {{attempts: 1}}
  agent:
    llm: agent
    prompt: "look"
    tools: [files.read_file]
outputs:
  names: ${{{{ steps.ls.output.entries | map(attribute='name') | sort | list }}}}
  texts: ${{{{ steps.read.output }}}}
  missing: ${{{{ steps.missing.status }}}}
"""


async def test_mcp_round_trip_starts_no_server_on_replay(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("alpha\n")
    (data / "b.md").write_text("beta\n")
    wf = load(write_workflow(tmp_path, _files_workflow(data)))
    tape = tmp_path / "tape"
    recorded = await run_workflow(wf, record_dir=tape, record_state=False, keep_going=True)
    assert recorded.steps["missing"].status == "failed"
    assert recorded.steps["read"].output == ["alpha\n", "beta\n"]

    # the server cannot even start now (its root is gone): replay must not need it
    for path in data.iterdir():
        path.unlink()
    data.rmdir()
    options = RunOptions(replay_dir=tape, record_state=False, keep_going=True)
    services = Services(wf, options, {})
    replayed = await run_workflow(wf, services=services, replay_dir=tape, record_state=False,
                                  keep_going=True)
    runtime = await services.mcp()
    assert runtime.stats()["servers"]["files"]["spawns"] == 0
    assert json.dumps(comparable(replayed), sort_keys=True) == \
        json.dumps(comparable(recorded), sort_keys=True)


async def test_replay_provider_kind_answers_from_path(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    text = """
version: 1
name: rp
providers:
  p: {kind: echo, model: m}
steps:
  a: {llm: p, prompt: "one"}
  b: {llm: p, prompt: "two ${{ steps.a.output }}"}
outputs:
  b: ${{ steps.b.output }}
"""
    live = await run_workflow(load(write_workflow(tmp_path, text)), record_state=False,
                              record_dir=tmp_path / "tapes")
    offline = text.replace("{kind: echo, model: m}", "{kind: replay, model: m, path: tapes}")
    result = await run_workflow(load(write_workflow(tmp_path, offline)), record_state=False)
    assert result.ok, result.error
    assert result.outputs == live.outputs == {"b": "echo: two echo: one"}
    # the provider's kind was switched after recording, as docs/providers/replay.md says to:
    # that is no stale cassette (it warned "recorded from another version ... re-record it")
    assert "another version" not in caplog.text
    changed = offline.replace('prompt: "one"', 'prompt: "uno"')
    missed = await run_workflow(load(write_workflow(tmp_path, changed)), record_state=False)
    assert not missed.ok and "no recorded LLM call matches" in str(missed.error)


def _demo_workflow() -> str:
    return f"""
version: 1
name: rt-demo
mcp_servers:
  demo:
    command: {json.dumps(sys.executable)}
    args: [-m, tests.cassettes.demo_server]
    env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}
policies:
  low: {{level: low}}
defaults: {{policy: low, retry: {{attempts: 1}}}}
steps:
  add: {{tool: demo.add, with: {{a: 2, b: 3}}}}
  profile: {{tool: demo.profile, with: {{name: plait}}}}
  picture: {{tool: demo.picture}}
  fails: {{tool: demo.fail, with: {{reason: boom}}}}
  memo: {{resource: demo, uri: "memo://greeting"}}
  prompt: {{mcp_prompt: demo.review, with: {{topic: cassettes}}}}
outputs:
  sum: ${{{{ steps.add.output }}}}
  profile: ${{{{ steps.profile.output }}}}
"""


async def test_tool_results_resources_prompts_and_errors_replay(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, _demo_workflow()))
    tape = tmp_path / "tape"
    recorded = await run_workflow(wf, record_dir=tape, record_state=False, keep_going=True)
    assert recorded.steps["fails"].status == "failed"
    assert recorded.steps["memo"].status == "succeeded", recorded.steps["memo"].error
    assert recorded.steps["prompt"].status == "succeeded", recorded.steps["prompt"].error
    kinds = sorted(i["kind"] for i in read_cassette(tape / "rt-demo.cassette.yaml")
                   ["interactions"])
    assert kinds == ["prompt", "resource", "tool", "tool", "tool", "tool"]

    options = RunOptions(replay_dir=tape, record_state=False, keep_going=True)
    services = Services(wf, options, {})
    replayed = await run_workflow(wf, services=services, replay_dir=tape, record_state=False,
                                  keep_going=True)
    runtime = await services.mcp()
    assert runtime.stats()["servers"]["demo"]["spawns"] == 0
    assert json.dumps(comparable(replayed), sort_keys=True, default=str) == \
        json.dumps(comparable(recorded), sort_keys=True, default=str)


async def test_sub_workflows_share_one_cassette_per_workflow(tmp_path: Path) -> None:
    write_workflow(tmp_path, """
version: 1
name: child
inputs:
  n: {type: integer}
providers:
  p: {kind: echo, model: c}
steps:
  say: {llm: p, prompt: "child ${{ inputs.n }}"}
outputs:
  said: ${{ steps.say.output }}
""", "child.yaml")
    parent = load(write_workflow(tmp_path, """
version: 1
name: parent
providers:
  p: {kind: echo, model: m}
steps:
  kids:
    foreach: ${{ [1, 2, 3] }}
    workflow: child.yaml
    with: {n: "${{ item }}"}
  sum: {llm: p, prompt: "sum ${{ steps.kids.output | map(attribute='said') | join(',') }}"}
outputs:
  sum: ${{ steps.sum.output }}
"""))
    tape = tmp_path / "tape"
    recorded = await run_workflow(parent, record_dir=tape, record_state=False)
    assert recorded.ok, recorded.error
    child = read_cassette(tape / "child.cassette.yaml")["interactions"]
    assert sorted(i["request"]["messages"][0]["content"] for i in child) == \
        ["child 1", "child 2", "child 3"]
    assert len(read_cassette(tape / "parent.cassette.yaml")["interactions"]) == 1
    replayed = await run_workflow(parent, replay_dir=tape, record_state=False)
    assert replayed.outputs == recorded.outputs


async def test_replay_needs_no_sandbox_for_servers_that_never_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server under a `critical` policy needs bwrap to start; replay never starts it, so
    it replays on a machine without bwrap too (a `run:` step's policy is still checked)."""
    text = _files_workflow(tmp_path / "data")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha\n")
    wf = load(write_workflow(tmp_path, text))
    tape = tmp_path / "tape"
    recorded = await run_workflow(wf, record_dir=tape, record_state=False, keep_going=True)
    strict = load(write_workflow(tmp_path, text.replace(
        "  low: {level: low}", "  low: {level: low}\n  locked: {level: critical}").replace(
        "    env: {PYTHONPATH", "    policy: locked\n    env: {PYTHONPATH"), "strict.yaml"))
    monkeypatch.setenv("PLAIT_BWRAP", str(tmp_path / "no-such-bwrap"))  # as if not installed
    with pytest.raises(SandboxError, match="needs level critical"):
        await run_workflow(strict, record_state=False)  # a live run refuses (fail closed)
    replayed = await run_workflow(strict, replay_dir=tape, record_state=False,
                                  keep_going=True)
    assert replayed.outputs == recorded.outputs


@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "not-streamed"])
async def test_streaming_is_display_only_under_replay(kind: str, streamed: bool, srv: Any,
                                                      tmp_path: Path) -> None:
    """A call recorded streamed (`plait run --stream`) replays for a call that is not (`plait
    test`, which does not stream), and the other way round: the same outputs and records."""
    from tests.providers.servers.common import Action

    text, env = _vendor_workflow(kind, srv.url)
    wf = load(write_workflow(tmp_path, text))
    getattr(srv, kind).push("test-model", Action(text="hello there"),
                            Action(json={"label": "greeting"}))
    tape = tmp_path / "tape"

    def options(stream: bool) -> dict[str, Any]:  # streaming needs a listener
        return {"stream": stream, "listeners": [lambda event: None] if stream else []}

    recorded = await run_workflow(wf, record_dir=tape, record_state=False,
                                  environ={env: KEY}, **options(streamed))
    assert recorded.ok, recorded.error
    kinds = {i["kind"] for i in read_cassette(tape / f"rt-{kind}.cassette.yaml")["interactions"]}
    assert kinds == ({"llm_stream"} if streamed else {"llm"})
    with collect_reports() as reports:
        replayed = await run_workflow(wf, replay_dir=tape, record_state=False, environ={},
                                      **options(not streamed))
    assert replayed.ok, replayed.steps
    assert [r.unused for r in reports] == [[]]
    assert json.dumps(comparable(replayed), sort_keys=True) == \
        json.dumps(comparable(recorded), sort_keys=True)


async def test_a_step_policy_refusal_is_recorded_and_replayed_as_it_happened(
        tmp_path: Path) -> None:
    """A request a step's own `policy:` refuses is recorded as the refusal (nothing was sent)
    and replayed from the cassette as a server policy's refusal is: the same record."""
    text = _demo_workflow().replace("  low: {level: low}\n", """\
  low: {level: low}
  no-boom:
    level: medium
    rules:
      - {name: no-boom, pattern: 'boom|greeting', applies_to: arguments}
""").replace("  fails: {tool: demo.fail, with: {reason: boom}}\n",
             "  fails: {tool: demo.fail, with: {reason: boom}, policy: no-boom}\n").replace(
        '  memo: {resource: demo, uri: "memo://greeting"}\n',
        '  memo: {resource: demo, uri: "memo://greeting", policy: no-boom}\n')
    wf = load(write_workflow(tmp_path, text))
    tape = tmp_path / "tape"
    recorded = await run_workflow(wf, record_dir=tape, record_state=False, keep_going=True)
    for sid in ("fails", "memo"):
        step = recorded.steps[sid]
        assert step.status == "failed" and step.error is not None
        assert step.error["type"] == "PolicyViolation" and step.error["policy"] == "no-boom"
        assert [(a["decision"], a["policy"], a["rule"]) for a in step.audit] == [
            ("denied", "no-boom", "rules.no-boom")]
    replayed = await run_workflow(wf, replay_dir=tape, record_state=False, keep_going=True)
    assert json.dumps(comparable(replayed), sort_keys=True, default=str) == \
        json.dumps(comparable(recorded), sort_keys=True, default=str)
