"""call_with_retry (which errors retry, what a timeout becomes) and the run totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import StepTimeout
from engine.executor.retry import call_with_retry
from engine.spec.models import RetrySpec


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_timeout_error_from_inside_without_a_deadline_passes_through() -> None:
    async def fn() -> None:
        raise TimeoutError("the library's own deadline")

    with pytest.raises(TimeoutError, match="the library's own deadline") as caught:
        await call_with_retry(fn, None, step_id="s")
    assert not isinstance(caught.value, StepTimeout)


@pytest.mark.anyio
async def test_our_deadline_becomes_a_step_timeout_and_retries() -> None:
    import anyio

    calls = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) < 2:
            await anyio.sleep(5)
        return "ok"

    policy = RetrySpec(attempts=2, initial=0, on=["timeout"])
    assert await call_with_retry(fn, policy, timeout=0.05, step_id="s") == "ok"
    assert len(calls) == 2
    with pytest.raises(StepTimeout, match=r"timed out after 0\.05s"):
        calls.clear()
        await call_with_retry(fn, RetrySpec(attempts=1), timeout=0.05, step_id="s")


def test_summarise_adds_up_usage_and_cost_in_a_stable_key_order() -> None:
    from engine.executor.result import StepResult
    from engine.executor.scheduler import summarise

    results = {
        "a": StepResult("a", "llm", "succeeded", cost=0.5,
                        usage={"input_tokens": 3, "output_tokens": 4, "cached_input_tokens": 1}),
        "b": StepResult("b", "run", "succeeded"),
        "c": StepResult("c", "llm", "failed", cost=0.25,
                        usage={"output_tokens": 2, "zeta_units": 7, "input_tokens": 5}),
    }
    usage, cost = summarise(results)
    assert list(usage.items()) == [("input_tokens", 8), ("output_tokens", 6),
                                   ("cached_input_tokens", 1), ("zeta_units", 7)]
    assert cost == 0.75
    assert summarise({}) == ({}, 0)


@pytest.mark.parametrize("value", ["bogus", "nan", "-1", "inf"])
def test_a_bad_retry_after_cap_is_refused_before_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    import anyio

    from engine.errors import ConfigError
    from engine.executor import run_workflow
    from engine.spec.loader import load_text

    monkeypatch.setenv("PLAIT_RETRY_AFTER_CAP", value)
    marker = tmp_path / "ran"
    wf = load_text(f"version: 1\nname: r\npolicies:\n  open: {{level: low}}\ndefaults:\n"
                   f"  policy: open\nsteps:\n  a:\n    run: touch {marker}\n",
                   str(tmp_path / "r.yaml"))
    with pytest.raises(ConfigError, match="PLAIT_RETRY_AFTER_CAP"):
        anyio.run(lambda: run_workflow(wf, {}, record_state=False))
    assert not marker.exists()
