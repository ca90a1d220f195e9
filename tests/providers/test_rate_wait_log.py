"""A call that waits for its provider's rate budget longer than a second says so on the
`plait.providers` logger (which the CLI prints on stderr), instead of a run that looks hung;
the wait still does not count against the step's timeout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

#: echo counts len(prompt)//4+1 input and len("echo: " + prompt)//4+1 output tokens: 306 +
#: 307 = 613 against a budget of 600 a minute (10 a second) estimated at 306, so the next
#: call (1 token) waits about 1.4 s for the budget to refill
WORKFLOW = """\
version: 1
name: budget
providers:
  e: {kind: echo, rate_limit: {tokens_per_minute: 600}}
steps:
  big:
    llm: e
    prompt: "%s"
  small:
    llm: e
    prompt: hi
    needs: [big]
    timeout: 1s
"""


@pytest.mark.anyio
async def test_a_long_wait_for_the_token_budget_is_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = WORKFLOW % ("x" * 1220)
    with caplog.at_level(logging.WARNING, logger="plait.providers"):
        result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                    record_state=False)
    # the wait (longer than the step's timeout) is the limit's, not the step's
    assert result.steps["small"].status == "succeeded", result.steps["small"].error
    [record] = [r for r in caplog.records if r.name == "plait.providers"]
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert message.startswith("provider 'e': a call waits 1.")
    assert "rate_limit tokens_per_minute (600; the budget is at -" in message
    assert message.endswith("; the wait does not count against the step's timeout")


@pytest.mark.anyio
async def test_a_short_wait_is_not_logged(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    text = WORKFLOW % ("x" * 1180)  # 296 + 297 = 593: the next call fits the budget
    with caplog.at_level(logging.WARNING, logger="plait.providers"):
        result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                    record_state=False)
    assert result.status == "succeeded"
    assert not [r for r in caplog.records if r.name == "plait.providers"]


def test_plait_run_prints_the_wait_on_stderr(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "w.yaml").write_text(WORKFLOW % ("x" * 1220))
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "w.yaml",
                          "--no-record"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(root)}, check=False)
    assert out.returncode == 0, out.stderr
    assert "provider 'e': a call waits 1." in out.stderr
    assert "provider 'e'" not in out.stdout


def _anthropic(url: str, limit: str) -> str:
    return f"""\
version: 1
name: budget
providers:
  a: {{kind: anthropic, base_url: "{url}/anthropic", model: claude-haiku-4-5,
       api_key: k{limit}}}
steps:
  ask:
    llm: a
    prompt: hello
    stream: true
    retry: {{attempts: 2, initial: 0s}}
"""


@pytest.mark.anyio
async def test_tokens_a_broken_stream_reported_are_taken_from_the_budget(
        srv: Servers, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # message_start reports 620 input tokens, then an error event: the retry (estimated at
    # 2 tokens) waits about 2.2 s for the 600-a-minute budget to refill, as after a whole
    # reply. A first run without the limit loads what the error path imports, so its time
    # does not refill the budget in the measured run
    for limit in ("", ", rate_limit: {tokens_per_minute: 600}"):
        srv.anthropic.push("claude-haiku-4-5",
                           Action(text="part of a reply", usage=(620, 5),
                                  stream_error="overloaded_error"),
                           Action(text="whole", usage=(3, 2)))
        with caplog.at_level(logging.WARNING, logger="plait.providers"):
            result = await run_workflow(load_text(_anthropic(srv.url, limit),
                                                  str(tmp_path / "w.yaml")), {},
                                        record_state=False, listeners=[lambda _event: None])
        step = result.steps["ask"]
        assert step.status == "succeeded", step.error
        assert step.usage["input_tokens"] == 623
    [record] = [r for r in caplog.records if r.name == "plait.providers"]
    assert "rate_limit tokens_per_minute (600; the budget is at -" in record.getMessage()
