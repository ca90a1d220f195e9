"""The offline ``echo`` provider: a deterministic reply built from the request.

Options: ``latency`` (a duration: ``10ms``, ``0.5``), ``failure_rate`` (0..1, raises
Unavailable), ``seed`` (for the failures), ``reply`` (a fixed reply text). With an
``output_schema`` it returns a deterministic object matching the schema. It is on the hot
path of the executor benchmark, so ``generate`` does as little as possible.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio

from engine.errors import ConfigError, Unavailable
from engine.providers._schema import example_for
from engine.providers.types import LLMRequest, LLMResponse, LLMStreamChunk, Usage
from engine.spec.durations import parse_duration
from engine.spec.provider_options import KNOWN_OPTIONS

ECHO_OPTIONS = KNOWN_OPTIONS["echo"]


class EchoProvider:
    kind = "echo"

    def __init__(self, name: str = "echo", *, model: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.model = model or "echo"
        opts = dict(options or {})
        unknown = sorted(set(opts) - ECHO_OPTIONS)
        if unknown:
            raise ConfigError(f"provider {name!r} (echo): unknown option(s) {unknown}",
                              hint=f"echo knows {sorted(ECHO_OPTIONS)}", provider=name)
        try:
            self.latency = parse_duration(opts.get("latency", 0))
        except ValueError as exc:
            raise ConfigError(f"provider {name!r} (echo): option latency: {exc}",
                              provider=name) from None
        rate = opts.get("failure_rate", 0.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) \
                or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"provider {name!r} (echo): option failure_rate must be a number "
                              f"within 0..1, got {rate!r}", provider=name,
                              hint="e.g. failure_rate: 0.2 fails one call in five")
        self.failure_rate = float(rate)
        self.reply: str | None = opts.get("reply")
        if self.reply is not None and not isinstance(self.reply, str):
            raise ConfigError(f"provider {name!r} (echo): option reply must be a string, got "
                              f"{self.reply!r}", provider=name, hint="quote it")
        seed = opts.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int | str):
            raise ConfigError(f"provider {name!r} (echo): option seed must be a whole number "
                              f"or a string, got {seed!r}", provider=name, hint="e.g. seed: 7")
        self._random = random.Random(seed)
        self.calls = 0

    async def generate(self, req: LLMRequest) -> LLMResponse:
        self.calls += 1
        if self.latency > 0:
            await anyio.sleep(self.latency)
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise Unavailable(f"echo provider {self.name!r}: simulated failure",
                              provider=self.name, model=self.model)
        text = self.reply if self.reply is not None else "echo: " + req.last_user_text()
        parsed = None
        if req.output_schema is not None:
            parsed = example_for(req.output_schema, text=text)
            text = json.dumps(parsed)
        sent = sum([len(m.text) for m in req.messages]) if len(req.messages) != 1 else \
            len(req.messages[0].text)
        usage = Usage(sent // 4 + 1, len(text) // 4 + 1)
        return LLMResponse(text, (), usage, "stop", req.model or self.model, None, parsed)

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        response = await self.generate(req)
        pieces = response.text.split(" ")
        for i, piece in enumerate(pieces):
            yield LLMStreamChunk(text_delta=piece if i == 0 else " " + piece)
        yield LLMStreamChunk(usage=response.usage, finish_reason="stop", model=response.model)

    async def health_check(self) -> bool:
        return True

    async def aclose(self) -> None:
        return None
