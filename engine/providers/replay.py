"""The ``replay`` provider: answers from a recorded cassette, never from a model.

``kind: replay`` with ``path: DIR`` (relative to the workflow) answers from the cassette that
``plait run --record DIR`` wrote for this workflow; under ``plait run --replay DIR`` every
provider of the run is replaced by one of these, so no vendor client is built and no key is
needed. Calls are matched on the normalised request (see engine.cassettes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import CassetteError, ConfigError
from engine.providers.types import LLMRequest, LLMResponse, LLMStreamChunk

if TYPE_CHECKING:
    from engine.cassettes import Cassette


class ReplayProvider:
    kind = "replay"

    def __init__(self, name: str, *, path: str | None = None, model: str | None = None,
                 cassette: Cassette | None = None, workflow: Any = None) -> None:
        self.name = name
        self.path = path
        self.model = model
        self.workflow = workflow
        self._cassette = cassette
        self._owned = False
        self.calls = 0

    def refusal(self) -> ConfigError:
        return ConfigError(f"replay provider {self.name!r} needs a cassette",
                           hint="set `path:` on the provider, or run with `plait run --replay "
                                "DIR` (or `plait test` with a cassette)", provider=self.name)

    def cassette(self) -> Cassette:
        if self._cassette is None:
            if self.path is None or self.workflow is None:
                raise self.refusal()
            from engine.cassettes import open_cassette

            # recorded with the provider's real kind, so from another version of the
            # workflow by design: not reported as stale (a changed call still misses)
            self._cassette = open_cassette(self.workflow, record_dir=None,
                                           replay_dir=Path(self.path), versioned=False)
            self._owned = True
        return self._cassette

    def open(self, written: str) -> None:
        """Open the cassette at `path` now (before a run's first step); `written` is the
        `path:` as the workflow gives it. CassetteError, naming this provider, when it
        cannot be used."""
        try:
            self.cassette()
        except CassetteError as exc:
            hint = exc.hint
            if exc.message.startswith("no cassette at"):
                hint = ("record it with the provider's real kind: `plait run WORKFLOW "
                        "--record DIR`, then set `path: DIR` on this provider")
            raise CassetteError(f"provider {self.name!r} (replay, path: {written}): "
                                f"{exc.message}", hint=hint, provider=self.name) from None

    def close(self) -> None:
        """Release a cassette this provider opened."""
        if self._owned and self._cassette is not None:
            from engine.cassettes import release

            cassette, self._cassette, self._owned = self._cassette, None, False
            release(cassette)

    async def generate(self, req: LLMRequest) -> LLMResponse:
        self.calls += 1
        return self.cassette().replay_generate(self.name, self.model, req)

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        self.calls += 1
        for chunk in self.cassette().replay_stream(self.name, self.model, req):
            yield chunk

    async def health_check(self) -> bool:
        return self._cassette is not None or self.path is not None

    async def aclose(self) -> None:
        self.close()
