"""What the SDK-backed providers share: configuration, one pooled client, error mapping.

Each vendor subclass builds its SDK client in ``_make_client`` around one ``httpx2``
connection pool (created on first use, closed by ``aclose``) with the SDK's own retries off,
and maps its SDK's exceptions in ``_map_error``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from engine.errors import (
    AuthError,
    MissingDependencyError,
    PlaitError,
    ProviderError,
    Timeout,
)
from engine.providers._errors import connection_error, cut_off, malformed, not_json
from engine.providers._kinds import (
    KEY_ENV,
    check_option_values,
    check_options,
    merged_options,
)
from engine.providers.types import LLMRequest, LLMResponse, LLMStreamChunk, Message

DEFAULT_TIMEOUT = 120.0
#: connections per provider pool; above it calls queue in the pool (no pool timeout)
POOL_CONNECTIONS = 1000


def alternating_turns(messages: Sequence[Message], *, assistant: str, key: str,
                      convert: Callable[[Message], list[dict[str, Any]]],
                      ) -> list[dict[str, Any]]:
    """Messages as the strictly alternating user/assistant turns Anthropic and Gemini want:
    system messages left out (they travel separately), tool results sent as user turns, and
    consecutive messages of one side merged into one turn (``key`` holds its blocks)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = assistant if m.role == "assistant" else "user"
        blocks = convert(m)
        if out and out[-1]["role"] == role:
            out[-1][key].extend(blocks)
        else:
            out.append({"role": role, key: blocks})
    return out


def import_sdk(module: str, package: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(package, extra) from None


def new_http_client(timeout: float, headers: Mapping[str, str] | None = None) -> Any:
    """One httpx2 pool for one provider config, shared by all its calls."""
    httpx2 = import_sdk("httpx2", "httpx2", "openai")
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0), pool=None),
        limits=httpx2.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=100),
        # no redirects: httpx2 drops only Authorization on the way to another host, so
        # x-api-key (Anthropic), x-goog-api-key (Gemini) and api-key (Azure) would follow,
        # and a 301/302 would turn the POST into a GET; from_status says where it pointed
        headers=dict(headers or {}), follow_redirects=False)


class SDKProvider:
    """Base of the openai, anthropic and google providers."""

    kind = "?"

    def __init__(self, name: str, spec: Any, *, api_key: str | None) -> None:
        self.name = name
        self.spec = spec
        self.model: str | None = getattr(spec, "deployment", None) or spec.model
        self.options: dict[str, Any] = dict(spec.options)
        self._has_base_url = getattr(spec, "base_url", None) is not None
        check_option_values(name, self.kind, self.options, has_base_url=self._has_base_url)
        self.timeout = float(spec.timeout) if spec.timeout is not None else DEFAULT_TIMEOUT
        self.api_key = api_key
        self._client: Any = None
        self._http: Any = None

    # ------------------------------------------------------------ client lifecycle

    @property
    def client(self) -> Any:
        if self._client is None:
            self._http = new_http_client(self.timeout, self.spec.headers)
            try:
                self._client = self._make_client(self._http)
            except (PlaitError, ImportError):
                raise
            except Exception as exc:
                from engine.errors import ConfigError
                from engine.providers._errors import clean_message

                raise ConfigError(
                    f"provider {self.name!r} ({self.kind}): cannot create the client: "
                    f"{clean_message(str(exc), self.api_key)}",
                    hint="check the provider's settings and credentials",
                    provider=self.name) from None
        return self._client

    def _make_client(self, http: Any) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        client, http = self._client, self._http
        self._client = self._http = None
        if client is not None and hasattr(client, "close"):
            result = client.close()
            if hasattr(result, "__await__"):
                await result
        if http is not None:
            await http.aclose()

    # ------------------------------------------------------------ helpers for subclasses

    def model_for(self, req: LLMRequest) -> str:
        model = req.model or self.model
        if not model:
            from engine.errors import ConfigError

            raise ConfigError(f"provider {self.name!r}: no model given",
                              hint="set model: on the provider or the step", provider=self.name)
        return model

    def options_for(self, req: LLMRequest) -> dict[str, Any]:
        from engine.errors import BadRequest

        opts = merged_options(self.options, req.options)
        if req.options:  # a step's options, rendered: checked as `plait validate` does
            check_options(self.name, self.kind, req.options, error=BadRequest)
            check_option_values(self.name, self.kind, req.options,
                                has_base_url=self._has_base_url, error=BadRequest)
        return opts

    def map_error(self, exc: BaseException, model: str | None) -> BaseException:
        """The plait error for any exception raised by the SDK during a call."""
        if isinstance(exc, PlaitError):
            return exc
        mapped = self._map_error(exc, model)
        if (isinstance(mapped, AuthError) and self.kind in KEY_ENV and not self.spec.vertex
                and (mapped.hint or "").startswith("check the API key")):
            names = " or ".join(KEY_ENV[self.kind])
            mapped.hint = f"check the API key (the provider's api_key:, else {names})"
            if not self.api_key:  # an OpenAI-compatible base_url may be called without one
                mapped.hint = (f"no API key was given: {names} is not set and the provider "
                               "has no api_key: (a CI job may not be given the secret, e.g. "
                               "on a pull request from a fork)")
        if mapped is not None:
            return mapped
        httpx2 = import_sdk("httpx2", "httpx2", "openai")
        if isinstance(exc, httpx2.TimeoutException | TimeoutError):
            return connection_error(exc, provider=self.name, model=model, timed_out=True,
                                    timeout=self.timeout)
        if isinstance(exc, httpx2.TransportError | ConnectionError):
            return connection_error(exc, provider=self.name, model=model, timed_out=False)
        if isinstance(exc, json.JSONDecodeError):
            return not_json(exc.doc, provider=self.name, model=model,
                            secret=self.api_key)
        if isinstance(exc, ValueError | KeyError | TypeError | AttributeError | IndexError):
            return malformed(exc, provider=self.name, model=model, secret=self.api_key)
        return exc

    def _map_error(self, exc: BaseException, model: str | None) -> ProviderError | None:
        raise NotImplementedError

    # ------------------------------------------------------------ the protocol

    @contextmanager
    def mapped_errors(self, model: str | None) -> Iterator[None]:
        """Any SDK or transport error inside becomes its engine.errors ProviderError."""
        try:
            yield
        except Exception as exc:
            mapped = self.map_error(exc, model)
            if mapped is exc:
                raise
            raise mapped from None

    async def generate(self, req: LLMRequest) -> LLMResponse:
        model = self.model_for(req)
        with self.mapped_errors(model):
            return await self._generate(req, model)

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        model = self.model_for(req)
        finished = started = False
        try:
            with self.mapped_errors(model):
                async for chunk in self._stream(req, model):
                    started = True
                    finished = finished or chunk.finish_reason is not None
                    yield chunk
        except Timeout as exc:
            if not started:
                raise
            raise Timeout(f"provider {self.name!r} (model {model}) stopped sending mid-reply: "
                          f"nothing came for {self.timeout:g}s (its timeout)",
                          hint="raise the provider's timeout, or retry on timeout",
                          provider=self.name, model=model) from exc
        if not finished:  # every vendor ends a whole reply with a finish (stop) reason
            raise cut_off(provider=self.name, model=model)

    async def _generate(self, req: LLMRequest, model: str) -> LLMResponse:
        raise NotImplementedError

    def _stream(self, req: LLMRequest, model: str) -> AsyncIterator[LLMStreamChunk]:
        raise NotImplementedError

    async def health_check(self) -> bool:
        """Whether a cheap authenticated call works; if not, `health_error` says why."""
        self.health_error: str | None = None
        try:
            with self.mapped_errors(self.model):
                await self._health()
        except Exception as exc:
            from engine.providers._errors import clean_message

            # a mapped error's message is already cleaned (and a short key such as "k" would
            # otherwise mask every k of the text)
            self.health_error = str(exc) if isinstance(exc, PlaitError) else clean_message(
                f"{type(exc).__name__}: {exc}", self.api_key)
            return False
        return True

    async def _health(self) -> None:
        """A cheap authenticated call (OpenAI and Anthropic both list their models)."""
        await self.client.models.list()
