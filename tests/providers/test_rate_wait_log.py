"""A call that waits for its provider's rate budget longer than a second says so on the
`plait.providers` logger (which the CLI prints on stderr), instead of a run that looks hung;
the wait still does not count against the step's timeout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text

pytestmark = pytest.mark.anyio

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


async def test_a_short_wait_is_not_logged(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    text = WORKFLOW % ("x" * 1180)  # 296 + 297 = 593: the next call fits the budget
    with caplog.at_level(logging.WARNING, logger="plait.providers"):
        result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                    record_state=False)
    assert result.status == "succeeded"
    assert not [r for r in caplog.records if r.name == "plait.providers"]
