"""Suite-wide guards: no test reaches a real provider, and plait's state stays in tmp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: pytester drives the pytest plugin's tests (tests/cassettes); it must be enabled here, at
#: the top level of the suite
pytest_plugins = ("pytester",)

#: Where every vendor SDK would go by default: a closed port on loopback, so a test that
#: forgot to point a client at its local server fails at once instead of calling a vendor.
_DEAD = "http://127.0.0.1:9"
_HERMETIC = {
    "OPENAI_BASE_URL": _DEAD + "/v1",
    "ANTHROPIC_BASE_URL": _DEAD,
    "GOOGLE_GEMINI_BASE_URL": _DEAD,
    "OTEL_SDK_DISABLED": "true",
}
_KEYS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY",
         "GEMINI_API_KEY", "PLAIT_STATE_URL")


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in _KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in _HERMETIC.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary directory that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
