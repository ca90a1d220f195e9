"""The provider registry: providers by name, built lazily from the workflow's specs.

``from_specs`` only records configuration; the vendor SDK is imported and its client (one
pooled HTTP client per provider) created on the first ``get``. ``check`` finds every missing
key and bad option before a step runs. ``aclose`` closes all clients at the end of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.errors import ConfigError
from engine.providers._errors import clean_message
from engine.providers._kinds import KEY_ENV, check_option_values, check_options
from engine.providers.limits import ProviderLimiter
from engine.providers.pricing import PriceTable
from engine.providers.types import LLMProvider
from engine.spec.models import PriceSpec, ProviderSpec
from engine.spec.provider_options import endpoint_problem


@dataclass(slots=True)
class _Entry:
    name: str
    kind: str
    priority: int
    fallback: tuple[str, ...] = ()
    spec: Any = None
    api_key: str | None = None
    provider: LLMProvider | None = None
    limiter: ProviderLimiter = field(default_factory=ProviderLimiter)
    healthy: bool = True
    #: why the last health check failed
    health_error: str | None = None
    #: `provider` as the registry's wrappers (tracing, recording, replay) see it
    wrapped: LLMProvider | None = None
    #: set by `substitute`: a stand-in (cassette replay) that needs no key and no client
    substituted: bool = False


ProviderWrapper = Callable[[str, LLMProvider], LLMProvider]


class ProviderRegistry:
    def __init__(self, *, pricing: Mapping[str, Any] | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._env: dict[str, str] = {}
        self.prices = PriceTable(pricing)
        self._wrappers: list[ProviderWrapper] = []

    # ------------------------------------------------------------ building

    @classmethod
    def from_specs(cls, specs: Mapping[str, ProviderSpec], *, env: Mapping[str, str],
                   pricing: Mapping[str, PriceSpec | Mapping[str, float]] | None = None,
                   ) -> ProviderRegistry:
        """A registry of ``ProviderSpec`` by name; keys come from ``api_key`` or ``env``."""
        registry = cls(pricing=pricing)
        for name, spec in specs.items():
            rate = spec.rate_limit
            limiter = ProviderLimiter(
                max_concurrency=spec.max_concurrency,
                requests_per_minute=rate.requests_per_minute if rate else None,
                tokens_per_minute=rate.tokens_per_minute if rate else None, name=name)
            key = spec.api_key or _key_from_env(spec.kind, env)
            registry._entries[name] = _Entry(name, spec.kind, spec.priority,
                                             tuple(spec.fallback), spec, key, None, limiter)
        registry._env = dict(env)
        return registry

    def register(self, name: str, provider: LLMProvider, priority: int = 0, *,
                 fallback: tuple[str, ...] = (),
                 limiter: ProviderLimiter | None = None) -> None:
        """Add a ready provider object (e.g. a test double) under ``name``."""
        if limiter is not None and limiter.name is None:
            limiter.name = name
        self._entries[name] = _Entry(name, provider.kind, priority, tuple(fallback), None,
                                     None, provider, limiter or ProviderLimiter(name=name))

    # ------------------------------------------------------------ lookup

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)) or "none"
            raise ConfigError(f"unknown provider {name!r}", hint=f"known providers: {known}")
        return entry

    def add_wrapper(self, wrapper: ProviderWrapper) -> None:
        """Wrap every provider this registry hands out: ``wrapper(name, provider)`` returns a
        provider that delegates to the one it gets (tracing, cassette record and replay)."""
        self._wrappers.append(wrapper)
        for entry in self._entries.values():
            entry.wrapped = None

    def substitute(self, make: Callable[[str, Any], LLMProvider],
                   kinds: tuple[str, ...] | None = None) -> None:
        """Replace every configured provider (of ``kinds``, default all) by ``make(name,
        spec)`` before any client is built: cassette replay answers without a vendor client
        and without a key. ``check`` skips substituted providers."""
        for entry in self._entries.values():
            if entry.spec is None or (kinds is not None and entry.kind not in kinds):
                continue
            entry.provider = make(entry.name, entry.spec)
            entry.substituted = True
            entry.wrapped = None

    def get(self, name: str) -> LLMProvider:
        """The provider called ``name``, created (SDK imported, client built) on first use."""
        entry = self._entry(name)
        if entry.wrapped is not None:
            return entry.wrapped
        if entry.provider is None:
            entry.provider = _create(name, entry.spec, entry.api_key, self._env)
        provider = entry.provider
        for wrapper in self._wrappers:
            provider = wrapper(name, provider)
        entry.wrapped = provider
        return provider

    def route(self, name: str) -> tuple[LLMProvider, ProviderLimiter, tuple[str, ...]]:
        """Provider, limiter and fallbacks of ``name`` in one lookup (run_llm's hot path)."""
        entry = self._entries.get(name) or self._entry(name)
        provider = entry.wrapped or self.get(name)
        return provider, entry.limiter, entry.fallback

    def limiter(self, name: str) -> ProviderLimiter:
        return self._entry(name).limiter

    def fallbacks(self, name: str) -> tuple[str, ...]:
        return self._entry(name).fallback

    def spec(self, name: str) -> Any:
        return self._entry(name).spec

    def best(self, kind: str) -> LLMProvider:
        """The highest-priority provider of ``kind`` that was healthy at the last check."""
        candidates = [e for e in self._entries.values() if e.kind == kind and e.healthy]
        if not candidates:
            raise ConfigError(f"no healthy provider of kind {kind!r}",
                              hint="add one under `providers:` or check health_check_all()")
        best = max(candidates, key=lambda e: e.priority)
        return self.get(best.name)

    # ------------------------------------------------------------ checks and lifecycle

    def check(self) -> None:
        """Raise one ConfigError listing every provider that cannot work as configured."""
        problems = self.problems()
        if problems:
            raise ConfigError("; ".join(problems))

    def problems(self) -> list[str]:
        """What is wrong with each provider that cannot work as configured, one entry each."""
        problems: list[str] = []
        for entry in self._entries.values():
            if entry.spec is None or entry.substituted:
                continue
            try:
                _check_entry(entry, self._env)
            except ConfigError as exc:
                problems.append(str(exc))
            for other in entry.fallback:
                if other not in self._entries:
                    problems.append(f"provider {entry.name!r}: fallback {other!r} is not a "
                                    "provider")
        return problems

    async def health_check_all(self) -> dict[str, bool]:
        results: dict[str, bool] = {}

        async def one(entry: _Entry) -> None:
            entry.health_error = None
            try:
                ok = await self.get(entry.name).health_check()
            except Exception as exc:  # the message may quote a key: cleaned as the SDK's are
                ok, entry.health_error = False, clean_message(f"{type(exc).__name__}: {exc}",
                                                              entry.api_key)
            else:  # the reason is kept by the provider itself, under any wrappers
                entry.health_error = getattr(entry.provider, "health_error", None)
            if not ok and not entry.health_error:
                entry.health_error = "the health check failed (no reason given)"
            entry.healthy = results[entry.name] = ok

        async with anyio.create_task_group() as tg:
            for entry in self._entries.values():
                tg.start_soon(one, entry)
        return results

    def health_error(self, name: str) -> str | None:
        """Why the last health check of `name` failed (None: it passed, or never ran)."""
        entry = self._entry(name)
        return None if entry.healthy else entry.health_error

    async def aclose(self) -> None:
        """Close every client the registry created (providers given to ``register`` belong to
        the caller and are left open)."""
        for entry in self._entries.values():
            if entry.provider is not None and entry.spec is not None:
                await entry.provider.aclose()
                entry.provider = None
                entry.wrapped = None


def _key_from_env(kind: str, env: Mapping[str, str]) -> str | None:
    for var in KEY_ENV.get(kind, ()):
        if env.get(var):
            return env[var]
    return None


def _check_entry(entry: _Entry, env: Mapping[str, str]) -> None:
    spec = entry.spec
    check_options(entry.name, entry.kind, spec.options)
    if entry.kind == "echo":  # checks its option values itself, as `plait validate` does
        from engine.providers.echo import EchoProvider

        EchoProvider(entry.name, model=spec.model, options=spec.options)
        return
    if entry.kind == "replay":
        from engine.providers.replay import ReplayProvider

        if spec.path is None:
            raise ReplayProvider(entry.name).refusal()
        return
    check_option_values(entry.name, entry.kind, spec.options,
                        has_base_url=spec.base_url is not None)
    _check_sdk(entry)
    fields = {"base_url": spec.base_url, "endpoint": spec.endpoint,
              "api_version": spec.api_version}
    if entry.kind == "azure_openai":  # what the SDK falls back to
        fields = {"base_url": spec.base_url,
                  "endpoint": spec.endpoint or env.get("AZURE_OPENAI_ENDPOINT"),
                  "api_version": spec.api_version or env.get("OPENAI_API_VERSION")}
    for name, value in fields.items():
        problem = endpoint_problem(name, value)
        if problem is not None:
            raise ConfigError(f"provider {entry.name!r} ({entry.kind}): {problem[0]}",
                              hint=problem[1], provider=entry.name, field=name)
    _check_key(entry, env)
    missing = _missing(entry, env)
    if len(missing) == 1:  # its own words
        raise ConfigError(f"provider {entry.name!r} ({missing[0].kind}) {missing[0].alone}",
                          hint=missing[0].hint, provider=entry.name)
    if missing:  # every setting it lacks at once: fixing one would only reveal the next
        what = [m.what for m in missing]
        raise ConfigError(f"provider {entry.name!r} ({missing[0].kind}) needs "
                          f"{', '.join(what[:-1])} and {what[-1]}",
                          hint="; ".join(m.hint for m in missing), provider=entry.name)


def _check_key(entry: _Entry, env: Mapping[str, str]) -> None:
    """A key an HTTP header cannot carry as it is (a newline that `echo` left at its end, a
    space, a non-ASCII letter) fails every call, as an error about the connection or the
    reply that retrying cannot fix: say so before a step runs (without showing the key)."""
    key = entry.api_key
    if key is not None and entry.kind == "google":
        key = key.strip()  # google-genai strips the key itself
    if key is None or "${{" in key or all("!" <= ch <= "~" for ch in key):
        return  # (an expression not rendered yet, as in a check of the spec alone)
    source = "api_key:" if entry.spec.api_key else next(
        (var for var in KEY_ENV.get(entry.kind, ()) if env.get(var) == entry.api_key),
        "the key")
    if key != key.strip():
        what = "ends with a line break" if key[-1:] in "\r\n" else (
            "starts or ends with whitespace")
        hint = ("remove it (a file written with `echo` ends with a newline: write it with "
                "printf '%s', or strip it where the secret is set)")
    else:
        what = "holds a space, a control character or a non-ASCII letter"
        hint = "copy the key again: an API key is printable ASCII only"
    raise ConfigError(f"provider {entry.name!r} ({entry.kind}): the API key ({source}) "
                      f"{what}, which cannot be sent in an HTTP header", hint=hint,
                      provider=entry.name, field="api_key")


#: kind -> (module, package, extra) of the vendor SDK its client is built with
_SDKS: Mapping[str, tuple[str, str, str]] = {
    "openai": ("openai", "openai", "openai"),
    "azure_openai": ("openai", "openai", "openai"),
    "anthropic": ("anthropic", "anthropic", "anthropic"),
    "google": ("google.genai", "google-genai", "google"),
}


def _check_sdk(entry: _Entry) -> None:
    """A provider whose SDK is not installed is refused before any step runs (and by `plait
    providers check`), rather than failing each of its steps. The SDK is found, not imported,
    so the check stays cheap."""
    import importlib.util

    module, package, extra = _SDKS[entry.kind]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or blocked in sys.modules
        found = False
    if not found:
        raise ConfigError(f"provider {entry.name!r} ({entry.kind}) needs the {package} SDK, "
                          "which is not installed", hint=f"pip install 'plait[{extra}]'",
                          provider=entry.name)


@dataclass(frozen=True, slots=True)
class _Missing:
    """A setting a provider lacks: as one of several (`what`), alone (`alone`), and how to
    give it (`hint`)."""

    kind: str
    what: str
    alone: str
    hint: str


def _missing(entry: _Entry, env: Mapping[str, str]) -> list[_Missing]:
    """Every setting `entry` needs but has neither in its spec nor in the environment."""
    spec, kind = entry.spec, entry.kind
    out: list[_Missing] = []
    if kind == "azure_openai":
        if not (spec.endpoint or spec.base_url or env.get("AZURE_OPENAI_ENDPOINT")):
            out.append(_Missing(kind, "`endpoint`", "needs `endpoint`",
                                "set endpoint: https://<resource>.openai.azure.com or "
                                "AZURE_OPENAI_ENDPOINT"))
        if not (spec.api_version or env.get("OPENAI_API_VERSION")):
            out.append(_Missing(kind, "`api_version`", "needs `api_version`",
                                "set api_version (e.g. 2024-10-21) or OPENAI_API_VERSION"))
    if kind == "google" and spec.vertex and entry.api_key is None and not (
            spec.project or env.get("GOOGLE_CLOUD_PROJECT")):
        out.append(_Missing("google, vertex", "`project`", "needs `project`",
                            "set project: and location: (or GOOGLE_CLOUD_PROJECT and "
                            "GOOGLE_CLOUD_LOCATION), or an api_key for Vertex express mode"))
    if not (spec.model or spec.deployment):
        out.append(_Missing(kind, "`model`", "has no `model`",
                            "set model: on the provider (or on each llm step)"))
    if entry.api_key is None and _needs_key(spec):
        names = " or ".join(KEY_ENV[kind])
        out.append(_Missing(kind, f"an API key ({names} is not set)",
                            f"has no API key: {names} is not set",
                            f"export {KEY_ENV[kind][0]}=... or set api_key: "
                            "${{ secrets.NAME }} on the provider"))
    return out


def _needs_key(spec: Any) -> bool:
    if spec.kind == "openai":
        return spec.base_url is None  # local OpenAI-compatible servers often take no key
    if spec.kind == "google":
        return not spec.vertex  # Vertex uses Google Cloud credentials
    return True


def _create(name: str, spec: Any, api_key: str | None, env: Mapping[str, str]) -> LLMProvider:
    factory = _FACTORIES.get(spec.kind)
    if factory is None:
        raise ConfigError(f"provider {name!r}: unknown kind {spec.kind!r}")
    return factory(name, spec, api_key, env)


def _echo(name: str, spec: Any, api_key: str | None, env: Mapping[str, str]) -> LLMProvider:
    from engine.providers.echo import EchoProvider

    return EchoProvider(name, model=spec.model, options=spec.options)


def _replay(name: str, spec: Any, api_key: str | None, env: Mapping[str, str]) -> LLMProvider:
    from engine.providers.replay import ReplayProvider

    return ReplayProvider(name, path=spec.path)


def _openai(name: str, spec: Any, api_key: str | None, env: Mapping[str, str]) -> LLMProvider:
    from engine.providers.openai import OpenAIProvider

    return OpenAIProvider(name, spec, api_key=api_key, env=env)


def _anthropic(name: str, spec: Any, api_key: str | None,
               env: Mapping[str, str]) -> LLMProvider:
    from engine.providers.anthropic import AnthropicProvider

    return AnthropicProvider(name, spec, api_key=api_key)


def _google(name: str, spec: Any, api_key: str | None, env: Mapping[str, str]) -> LLMProvider:
    from engine.providers.google import GoogleProvider

    return GoogleProvider(name, spec, api_key=api_key, env=env)


_FACTORIES: dict[str, Callable[[str, Any, str | None, Mapping[str, str]], LLMProvider]] = {
    "echo": _echo, "replay": _replay, "openai": _openai, "azure_openai": _openai,
    "anthropic": _anthropic, "google": _google,
}
