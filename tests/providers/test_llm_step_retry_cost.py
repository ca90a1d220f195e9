"""An llm step with output_schema, run by the executor against the fake OpenAI server: a retry
policy that lists output_invalid reruns the whole conversation, and what a step spent is in its
record even when it failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

BAD = Action(text='{"risk": 3}', usage=(10, 5))
GOOD = Action(json={"risk": "low"}, usage=(10, 5))


def workflow(url: str, retry: str, model: str = "gpt-4o-mini") -> str:
    return f"""\
version: 1
name: schema
providers:
  o: {{kind: openai, base_url: "{url}/openai/v1", model: {model}, api_key: k}}
steps:
  judge:
    llm: o
    prompt: "rate it"
    output_schema: {{type: object, properties: {{risk: {{type: string}}}}, required: [risk]}}
    {retry}
"""


@pytest.mark.anyio
async def test_retry_on_output_invalid_reruns_the_conversation(
        srv: Servers, tmp_path: Path) -> None:
    # the first conversation: the reply and its two re-asks all fail the schema
    srv.openai.push("gpt-4o-mini", BAD, BAD, BAD, GOOD)
    text = workflow(srv.url, "retry: {attempts: 2, initial: 0s, on: [output_invalid]}")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    step = result.steps["judge"]
    assert step.status == "succeeded", step.error
    assert step.output == {"risk": "low"}
    assert step.attempts == 2  # conversations, not model calls
    assert srv.openai.count() == 4
    assert [n["event"] for n in step.notes].count("retry") == 1
    # both conversations were paid for
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (40, 20)
    assert step.cost is not None and step.cost > 0


@pytest.mark.anyio
async def test_without_output_invalid_in_retry_the_step_fails_after_the_reasks(
        srv: Servers, tmp_path: Path) -> None:
    srv.openai.push("gpt-4o-mini", BAD, BAD, BAD, GOOD)
    text = workflow(srv.url, "retry: {attempts: 2, initial: 0s, on: [rate_limit]}")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    step = result.steps["judge"]
    assert step.status == "failed" and step.error["kind"] == "output_invalid"
    assert srv.openai.count() == 3
    # the three calls it made are spent, failed or not: in the step and in the run's totals
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (30, 15)
    assert step.cost is not None and step.cost > 0
    assert result.usage["input_tokens"] == 30 and result.cost == step.cost


@pytest.mark.anyio
async def test_a_run_out_of_retries_records_every_conversation_it_paid_for(
        srv: Servers, tmp_path: Path) -> None:
    srv.openai.push("gpt-4o-mini", *[BAD] * 6)
    text = workflow(srv.url, "retry: {attempts: 2, initial: 0s, on: [output_invalid]}")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    step = result.steps["judge"]
    assert step.status == "failed" and step.attempts == 2
    assert (step.usage["input_tokens"], result.usage["input_tokens"]) == (60, 60)


@pytest.mark.anyio
async def test_a_model_with_no_known_price_has_no_cost_not_zero(
        srv: Servers, tmp_path: Path) -> None:
    srv.openai.push("house-model-x", GOOD)
    srv.openai.push("gpt-4o-mini", GOOD)
    text = workflow(srv.url, "", model="house-model-x") + """\
  priced:
    llm: o
    model: gpt-4o-mini
    prompt: "rate it"
"""
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    judge, priced = result.steps["judge"], result.steps["priced"]
    assert judge.status == priced.status == "succeeded"
    assert judge.cost is None and judge.usage["input_tokens"] == 10
    assert priced.cost is not None and priced.cost > 0
    # the run's cost is the known part, and says which steps it leaves out
    assert result.cost == priced.cost and result.cost_unknown == ("judge",)
    data = result.to_dict()
    assert data["steps"]["judge"]["cost"] is None and data["cost_unknown"] == ["judge"]


@pytest.mark.anyio
async def test_a_rerun_that_times_out_keeps_what_the_earlier_conversations_spent(
        srv: Servers, tmp_path: Path) -> None:
    """The second conversation hangs past the step timeout; the retry wrapper raises a fresh
    StepTimeout, which must still carry what the first conversation spent."""
    srv.openai.push("gpt-4o-mini", BAD, BAD, BAD, Action(delay=2.0, json={"risk": "low"}))
    text = workflow(srv.url, "retry: {attempts: 2, initial: 0s, on: [output_invalid]}\n"
                             "    timeout: 500ms")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    step = result.steps["judge"]
    assert step.status == "failed" and step.error["kind"] == "timeout", step.error
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (30, 15)
    assert result.usage["input_tokens"] == 30


@pytest.mark.anyio
async def test_a_step_timeout_mid_conversation_keeps_what_the_answered_calls_spent(
        srv: Servers, tmp_path: Path) -> None:
    # with output_invalid in retry.on a whole conversation is one attempt, and the step's
    # timeout cancels it from outside: before, the reply already paid for was lost ({}, 0.0)
    # while the same step without that retry policy kept it
    srv.openai.push("gpt-4o-mini", BAD, Action(json={"risk": "low"}, delay=3.0))
    text = workflow(srv.url, "retry: {attempts: 2, initial: 0s, on: [output_invalid]}\n"
                             "    timeout: 500ms")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False)
    step = result.steps["judge"]
    assert step.status == "failed" and step.error["kind"] == "timeout"
    assert srv.openai.count() == 2  # the reply that failed the schema, and its re-ask
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (10, 5)
    assert step.cost is not None and step.cost > 0
    assert result.usage["input_tokens"] == 10
