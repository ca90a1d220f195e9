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

from engine.errors import BadRequest, ConfigError, Unavailable
from engine.providers._kinds import check_option_values
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
        check_option_values(name, "echo", opts)  # the check `plait validate` makes too

        def given(key: str, default: Any) -> Any:
            value = opts.get(key)
            return default if value is None else value

        self.latency = parse_duration(given("latency", 0))
        self.failure_rate = float(given("failure_rate", 0.0))
        self.reply: str | None = opts.get("reply")
        seed = given("seed", 0)
        self._random = random.Random(seed)
        self.calls = 0

    async def generate(self, req: LLMRequest) -> LLMResponse:
        self.calls += 1
        if req.options:  # a step's options, rendered: checked as `plait validate` does
            check_option_values(self.name, "echo", req.options, error=BadRequest)
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
