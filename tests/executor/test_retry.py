"""call_with_retry: which errors retry, and what a timeout becomes."""

from __future__ import annotations

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
