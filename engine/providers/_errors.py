"""Turning an HTTP failure of any vendor into plait's ProviderError tree.

Vendor modules extract (status, headers, message) from their SDK's exception and call
:func:`from_status`. The message is cut short and stripped of anything key-like, because a
server may echo the key in its error body (SECURITY-NOTES). Retry-After is parsed and capped:
the engine owns the deadline, never the server.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import Mapping
from typing import Any

from engine.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProviderError,
    RateLimited,
    Timeout,
    Unavailable,
)
from engine.secrets import MIN_SECRET_LENGTH

#: a server's Retry-After is never honoured beyond this many seconds
MAX_RETRY_AFTER = 60.0
_MAX_MESSAGE = 300
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{10,}|"
                      r"(?i:bearer)\s+[A-Za-z0-9._\-]{6,}|[A-Za-z0-9_\-]{32,})")
_CONTEXT_MARKERS = ("context_length", "context length", "too many tokens", "maximum context",
                    "prompt is too long", "exceeds the maximum number of tokens",
                    "input token count")
_CREDIT_CODES = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active")
#: (not "exceeded your current quota": Gemini says it of a per-minute limit, to wait out)
_CREDIT_MARKERS = ("credit balance is too low",)
#: how to retry an Unavailable error, in its hint
_RETRY_HINT = "give the step retry: {attempts: 3} (unavailable is retried by default)"


def provider_text(provider: str, model: str | None) -> str:
    """How an error message names a provider, and its model when known."""
    return f"provider {provider!r}" + (f" (model {model})" if model else "")


def clean_message(text: str, secret: str | None = None) -> str:
    """A server message safe to show: no key, no long token-like strings, bounded length."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:  # a shorter one would mask every "e"
        text = text.replace(secret, "[redacted]")
    text = _KEYLIKE.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``retry-after`` (seconds or HTTP date), capped; None
    when neither header holds a value that can be read (``5s``, ``soon``, ``nan``, a date
    that does not exist): a bad header must not turn a 429 into a crash."""
    if not headers:
        return None
    value = _seconds(headers.get("retry-after-ms"), 1000.0)
    raw = headers.get("retry-after")
    if value is None and raw:
        value = _seconds(raw, 1.0)
        if value is None and _looks_like_date(raw):
            value = _until(raw)
    if value is None:
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER)


def _seconds(raw: str | None, per_second: float) -> float | None:
    try:
        value = float(raw) / per_second if raw is not None else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value  # inf: capped below


def _until(raw: str) -> float | None:
    """Seconds until an HTTP date (always GMT, RFC 9110, when it names no zone)."""
    try:
        parsed = email.utils.parsedate_to_datetime(raw)
    except (ValueError, TypeError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp() - time.time()


def _looks_like_date(raw: str) -> bool:
    return any(ch.isalpha() for ch in raw)


def from_status(status: int, message: str, *, headers: Mapping[str, str] | None = None,
                provider: str, model: str | None, secret: str | None = None,
                code: str | None = None, how: str | None = None,
                address: str | None = None) -> ProviderError:
    """The ProviderError for an HTTP status from a vendor (``how`` names where the error
    came from when it was not that HTTP status, e.g. an error event in a stream; ``address``
    the URL asked, shown when it was not found: a base_url with /v1 twice shows there)."""
    text = clean_message(message, secret)
    label = how or f"HTTP {status}"
    where = provider_text(provider, model)
    ctx: dict[str, Any] = {"provider": provider, "model": model,
                           "status": None if how else status}
    if 300 <= status < 400:
        location = (headers or {}).get("location")
        to = f" to {_without_secrets(location)}" if location else ""
        return BadRequest(f"{where}: the server redirected ({label}){to}; plait does not "
                          "follow redirects (the key would go along)",
                          hint="set base_url (or endpoint) to the address it points to",
                          **ctx)
    if status == 402 or _out_of_credit(message, code):
        return AuthError(f"{where}: the account of the key is out of quota or credit "
                         f"({label}): {text}",
                         hint="add credit or raise the quota in the vendor's billing settings "
                              "(retrying cannot help), or give the provider a fallback:",
                         **ctx)
    if status == 429:
        wait = retry_after(headers)
        return RateLimited(f"{where} is rate limiting ({label}): {text}", retry_after=wait,
                           hint="lower max_concurrency or set rate_limit on the provider", **ctx)
    if status in (401, 403):
        return AuthError(f"{where} refused the credentials ({label}): {text}",
                         hint="check the API key (api_key: or the kind's env var)", **ctx)
    if status in (408, 504):
        return Timeout(f"{where} timed out ({label}): {text}", **ctx)
    if status >= 500 or status == 529:
        return Unavailable(f"{where} is unavailable ({label}): {text}",
                           retry_after=retry_after(headers),
                           hint=f"a failure on the server's side: {_RETRY_HINT} or the "
                                "provider a fallback:", **ctx)
    lowered = (message + " " + (code or "")).lower()
    if status in (400, 413) and any(m in lowered for m in _CONTEXT_MARKERS):
        return ContextTooLong(f"{where}: the request is too long for the model's context "
                              f"({label}): {text}",
                              hint="shorten the prompt or use a model with a larger context",
                              **ctx)
    at = f" at {address}" if address and status in (404, 405) else ""
    if status == 404:
        return BadRequest(f"{where}: not found ({label}){at}: {text}",
                          hint="check the model name (or the deployment / base_url)", **ctx)
    return BadRequest(f"{where} rejected the request ({label}){at}: {text}", **ctx)


def _out_of_credit(message: str, code: str | None) -> bool:
    """Whether an error says the account has no quota or credit left (OpenAI's 429
    insufficient_quota, Anthropic's 400 "credit balance is too low"): not a rate limit to
    wait out nor a request to fix."""
    if code in _CREDIT_CODES:
        return True
    lowered = message.lower()
    return any(marker in lowered for marker in _CREDIT_MARKERS)


#: what the type of an error event in a stream says, as the HTTP status it stands for
_EVENT_STATUS = (("rate_limit", 429), ("overloaded", 529), ("authentication", 401),
                 ("invalid_api_key", 401), ("permission", 403), ("not_found", 404),
                 ("too_large", 413), ("timeout", 504), ("invalid_request", 400))


def stream_error(error_type: str | None, message: str, *, provider: str, model: str | None,
                 secret: str | None = None) -> ProviderError:
    """The ProviderError for an error event inside a stream that began with HTTP 200
    (OpenAI's ``error`` chunk, Anthropic's ``event: error``): its type decides the kind,
    and a type it does not name is a server error."""
    lowered = (error_type or "").lower()
    status = next((s for marker, s in _EVENT_STATUS if marker in lowered), 500)
    return from_status(status, message, provider=provider, model=model, secret=secret,
                       code=error_type, how=f"an error event in the stream: {error_type}"
                       if error_type else "an error event in the stream")


def reply_problem(reply: Any, missing: str, *, provider: str, model: str | None,
                  secret: str | None = None) -> ProviderError:
    """The error for an HTTP 200 reply without the field a reply must have (``missing``):
    the error the body holds instead (some OpenAI-compatible servers and gateways answer
    ``{"error": {...}}`` with 200), mapped by its type or code, else a malformed reply."""
    error = reply.get("error") if isinstance(reply, Mapping) else getattr(reply, "error", None)
    if isinstance(error, str) and error.strip():
        error = {"message": error}
    if not isinstance(error, Mapping):
        what = (f"the reply has no {missing}" if reply is not None and not isinstance(reply, list)
                else "the reply is not a JSON object")
        return malformed(ValueError(what), provider=provider, model=model)
    kind = error.get("type") or error.get("status")
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code < 600 else next(
        (s for marker, s in _EVENT_STATUS if marker in f"{kind} {code}".lower()), 500)
    how = "HTTP 200 with an error instead of a reply" + (f": {kind}" if kind else "")
    message = error.get("message")
    return from_status(status, message if isinstance(message, str) else str(dict(error)),
                       provider=provider, model=model, secret=secret,
                       code=str(kind or code or ""), how=how)


def connection_error(exc: BaseException, *, provider: str, model: str | None,
                     timed_out: bool, timeout: float | None = None) -> ProviderError:
    where = provider_text(provider, model)
    detail = clean_message(str(exc) or type(exc).__name__)
    if timed_out:
        within = f"within {timeout:g}s (its timeout)" if timeout else "in time"
        return Timeout(f"{where} did not answer {within}: {detail}",
                       hint="raise the provider's timeout, or retry on timeout",
                       provider=provider, model=model)
    if not _connecting(exc):
        return Unavailable(f"{where}: the connection broke off mid-reply: {detail}",
                           hint=f"the server or the network dropped it: {_RETRY_HINT}",
                           provider=provider, model=model)
    address = _address(exc)
    at = f" at {address}" if address else ""
    return Unavailable(f"{where} could not be reached{at}: {detail}",
                       hint="check that the server is running and the provider's base_url "
                            "(or endpoint) and network", provider=provider, model=model)


def _address(exc: BaseException) -> str | None:
    """Where the failed request went, from the transport error or the SDK error around it."""
    for err in (exc, exc.__cause__, exc.__context__):
        address = request_address(err)
        if address:
            return address
    return None


def _without_secrets(url: str) -> str:
    """A URL from a server (a redirect's Location) as it may be shown: no user, password or
    query, and cut short."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        return "(an address that cannot be read)"
    shown = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return clean_message(shown)


def request_address(holder: Any) -> str | None:
    """The URL of the request behind ``holder`` (an httpx2 error or response): scheme, host,
    port and path, never a user, password or query (which can hold a key)."""
    try:
        url = holder.request.url
        scheme, host, port, path = url.scheme, url.host, url.port, url.path
    except (AttributeError, RuntimeError):  # httpx2 raises when no request was set
        return None
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}{f':{port}' if port else ''}{path}"


def _connecting(exc: BaseException) -> bool:
    """Whether a transport error happened before the server was reached (not after)."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - every SDK-backed kind brings httpx2
        return True
    if isinstance(exc, httpx2.TransportError):
        return isinstance(exc, httpx2.ConnectError | httpx2.ProxyError | httpx2.UnsupportedProtocol)
    return True


def malformed(exc: BaseException, *, provider: str, model: str | None,
              secret: str | None = None) -> ProviderError:
    where = provider_text(provider, model)
    return Unavailable(f"{where} returned a malformed reply: "
                       f"{clean_message(str(exc) or type(exc).__name__, secret)}",
                       hint="the server does not speak this provider kind's API; check "
                            "base_url: it must point at the API, not a web page",
                       provider=provider, model=model)


def not_json(body: object, *, provider: str, model: str | None,
             secret: str | None = None) -> ProviderError:
    """The SDKs hand back the body as a string when the server did not answer JSON."""
    start = clean_message(str(body), secret)[:80]
    return malformed(ValueError(f"the body is not JSON (it starts with {start!r})"),
                     provider=provider, model=model)


def cut_off(*, provider: str, model: str | None) -> ProviderError:
    """A stream that ended without a finish reason: the reply is incomplete."""
    where = provider_text(provider, model)
    return Unavailable(f"{where}: the streamed reply was cut off (the stream ended before "
                       "the model finished)",
                       hint=f"the server or the connection broke off mid-reply: {_RETRY_HINT}",
                       provider=provider, model=model)
