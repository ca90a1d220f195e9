"""Tokens a streamed attempt reported before it failed part-way are counted (the vendor bills
them), in the step's record and the run's totals, failed step or retried one; a stream that
never reported its usage is noted on the step instead of passing for 0 tokens. Each case runs
the real SDK against the fake vendor server over a socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

pytestmark = pytest.mark.anyio
#: per kind: a priced model, the provider's address on the fake server, and a fault that
#: breaks a stream after the vendor reported tokens (anthropic: input tokens in
#: message_start, then an error event; gemini: usage in every chunk, then the connection
#: drops)
VENDORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "anthropic": ("claude-haiku-4-5", "/anthropic", {"stream_error": "overloaded_error"}),
    "google": ("gemini-2.5-flash", "/google/", {"abort": True}),
}
LONG = "a reply long enough to come in many chunks before the stream breaks off " * 2


def _workflow(srv: Servers, kind: str, model: str, base: str, retry: str) -> str:
    return f"""\
version: 1
name: usage
providers:
  p: {{kind: {kind}, base_url: "{srv.url}{base}", model: {model}, api_key: k}}
steps:
  ask:
    llm: p
    prompt: hello
    stream: true
    {retry}
"""


async def _run(srv: Servers, kind: str, tmp_path: Path, retry: str = "") -> Any:
    model, base, _fault = VENDORS.get(kind, ("gpt-4o-mini", "/openai/v1", {}))
    text = _workflow(srv, kind, model, base, retry)
    return await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                              record_state=False, listeners=[lambda _event: None])


def _notes(step: Any, event: str) -> list[dict[str, Any]]:
    return [n for n in step.notes if n["event"] == event]


@pytest.mark.parametrize("kind", sorted(VENDORS))
async def test_tokens_a_broken_stream_reported_count_on_the_retried_step(
        srv: Servers, kind: str, tmp_path: Path) -> None:
    model, _base, fault = VENDORS[kind]
    getattr(srv, kind).push(model, Action(text=LONG, usage=(1000, 50), **fault),
                            Action(text="whole", usage=(11, 7)))
    result = await _run(srv, kind, tmp_path, "retry: {attempts: 2, initial: 0s}")
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert step.output == "whole" and step.attempts == 2
    # the broken attempt's input tokens were reported (anthropic: in message_start; its
    # output tokens come only at the end), so they are billed and counted
    assert step.usage["input_tokens"] == 1011
    assert result.usage["input_tokens"] == 1011
    alone = 11 * 0.3e-6 + 7 * 2.5e-6  # what the answering call alone costs, at most
    assert step.cost is not None and step.cost > alone and result.cost == step.cost
    [note] = _notes(step, "usage_partial")
    assert note["provider"] == "p" and note["counted"]["input_tokens"] == 1000
    assert "may bill" in note["message"]


@pytest.mark.parametrize("kind", sorted(VENDORS))
async def test_a_step_whose_stream_broke_keeps_the_tokens_it_reported(
        srv: Servers, kind: str, tmp_path: Path) -> None:
    model, _base, fault = VENDORS[kind]
    getattr(srv, kind).push(model, Action(text=LONG, usage=(1000, 50), **fault))
    result = await _run(srv, kind, tmp_path, "retry: {attempts: 1}")
    step = result.steps["ask"]
    assert step.status == "failed"
    assert step.usage["input_tokens"] == 1000 and result.usage["input_tokens"] == 1000
    assert step.cost and step.cost > 0 and result.cost == step.cost
    assert _notes(step, "usage_partial")


async def test_an_openai_stream_without_its_usage_chunk_is_noted(srv: Servers,
                                                                 tmp_path: Path) -> None:
    srv.openai.push("gpt-4o-mini", Action(text="whole", no_usage=True))
    result = await _run(srv, "openai", tmp_path)
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert step.output == "whole" and not any(step.usage.values())
    [note] = _notes(step, "usage_unknown")
    assert note["provider"] == "p" and "did not report" in note["message"]


async def test_an_openai_stream_broken_before_any_usage_is_noted(srv: Servers,
                                                                 tmp_path: Path) -> None:
    srv.openai.push("gpt-4o-mini", Action(text=LONG, abort=True), Action(text="whole"))
    result = await _run(srv, "openai", tmp_path, "retry: {attempts: 2, initial: 0s}")
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert step.usage["input_tokens"] == 11  # the answering call; the broken one is unknown
    [note] = _notes(step, "usage_unknown")
    assert "broke off" in note["message"]
    assert not _notes(step, "usage_partial")


async def test_a_whole_stream_adds_no_usage_note(srv: Servers, tmp_path: Path) -> None:
    result = await _run(srv, "openai", tmp_path)
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert step.usage["input_tokens"] == 11
    assert not _notes(step, "usage_unknown") and not _notes(step, "usage_partial")


async def test_a_rerun_conversation_keeps_the_broken_attempts_usage_and_note(
        srv: Servers, tmp_path: Path) -> None:
    # output_schema with retry.on output_invalid: each attempt is a whole conversation
    srv.anthropic.push("claude-haiku-4-5",
                       Action(text=LONG, usage=(1000, 50), stream_error="overloaded_error"),
                       Action(json={"risk": "low"}, usage=(11, 7)))
    model, base, _fault = VENDORS["anthropic"]
    text = _workflow(srv, "anthropic", model, base,
                     "output_schema: {type: object, properties: {risk: {type: string}}}\n"
                     "    retry: {attempts: 2, initial: 0s, on: [output_invalid, unavailable]}")
    result = await run_workflow(load_text(text, str(tmp_path / "w.yaml")), {},
                                record_state=False, listeners=[lambda _event: None])
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert step.output == {"risk": "low"} and step.attempts == 2
    assert step.usage["input_tokens"] == 1011
    assert [n["counted"]["input_tokens"] for n in _notes(step, "usage_partial")] == [1000]
