"""The ``replay`` provider: answers from a recorded cassette.

Placeholder: cassette recording and replay belong to the tracing/testing work, which will
fill this class in. Until then any use raises a ConfigError that says what is needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from engine.errors import ConfigError
from engine.providers.types import LLMRequest, LLMResponse, LLMStreamChunk


class ReplayProvider:
    kind = "replay"

    def __init__(self, name: str, *, path: str | None = None) -> None:
        self.name = name
        self.path = path

    def refusal(self) -> ConfigError:
        return ConfigError(f"replay provider {self.name!r} needs --replay DIR",
                           hint="run with `plait run --replay DIR` (or `plait test` with a "
                                "cassette)", provider=self.name)

    async def generate(self, req: LLMRequest) -> LLMResponse:
        raise self.refusal()

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        raise self.refusal()
        yield LLMStreamChunk()  # pragma: no cover  (makes this an async generator)

    async def health_check(self) -> bool:
        return False

    async def aclose(self) -> None:
        return None
