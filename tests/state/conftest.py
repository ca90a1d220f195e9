from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_state_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAIT_STATE_URL", raising=False)
    monkeypatch.delenv("PLAIT_STATE_SYNC", raising=False)
