"""Retries with backoff and per-attempt timeouts. The engine owns the deadline: a server's
Retry-After is honoured but capped (SDKs trust it blindly; see SECURITY-NOTES)."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from engine.deadlines import attempt_scope
from engine.errors import (
    ConfigError,
    InputError,
    PlaitError,
    PolicyViolation,
    SpecError,
    StepTimeout,
)
from engine.spec.models import RetrySpec

T = TypeVar("T")

#: Errors that no retry policy retries: retrying cannot fix them.
NEVER_RETRY = (SpecError, PolicyViolation, InputError, ConfigError)
#: Their kinds, and a refused key's: a `workflow:` step whose child run failed on one of them
#: (`child_kind` in its error) is not retried either, whatever its `on`: the child would only
#: fail the same way (an expression error or a rejected request may depend on a model's
#: reply, which a new child run may change: `on: [step]` still retries those)
NEVER_RETRY_KINDS = frozenset(("spec", "policy", "input", "config", "cassette", "auth"))
#: The longest a Retry-After header may make plait wait, whatever the server says (seconds;
#: PLAIT_RETRY_AFTER_CAP overrides it).
RETRY_AFTER_CAP = 60.0


def retry_after_cap() -> float:
    """PLAIT_RETRY_AFTER_CAP, else 60 s; a value that is not a number of seconds >= 0 is a
    ConfigError (checked when a run starts, before anything runs)."""
    text = os.environ.get("PLAIT_RETRY_AFTER_CAP", "").strip()
    if not text:
        return RETRY_AFTER_CAP
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"PLAIT_RETRY_AFTER_CAP={text!r} is not a number of seconds",
                          hint="set it to the longest wait a Retry-After may ask for, e.g. "
                               "60, or unset it")
    return value

OnRetry = Callable[[int, float, BaseException], None]


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, PlaitError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


def should_retry(policy: RetrySpec, exc: BaseException, attempt: int) -> bool:
    if attempt >= policy.attempts or isinstance(exc, NEVER_RETRY):
        return False
    if isinstance(exc, PlaitError) and exc.context.get("child_kind") in NEVER_RETRY_KINDS:
        return False
    return error_kind(exc) in policy.on


def backoff_delay(policy: RetrySpec, attempt: int, exc: BaseException | None = None,
                  rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1` (attempt counts from 1)."""
    delay = policy.initial if policy.backoff == "constant" else policy.initial * 2 ** (attempt - 1)
    delay = min(delay, policy.max)
    if policy.jitter and delay > 0:
        delay *= (rng or random).uniform(0.5, 1.0)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        delay = max(delay, min(float(retry_after), retry_after_cap()))
    return delay


async def call_with_retry(fn: Callable[[], Awaitable[T]], policy: RetrySpec | None, *,
                          timeout: float | None = None, on_retry: OnRetry | None = None,
                          step_id: str | None = None) -> T:
    """Call `fn` until it succeeds or the policy gives up. Each attempt gets `timeout`."""
    policy = policy or _ONCE
    attempt = 0
    while True:
        attempt += 1
        try:
            if timeout is None:
                return await fn()
            return await _timed(fn, timeout)
        except TimeoutError as exc:
            error: BaseException = exc
            if timeout is not None and not isinstance(exc, PlaitError):
                # our deadline passed (a TimeoutError from inside fn without one passes as is)
                error = StepTimeout(f"timed out after {timeout:g}s", step=step_id,
                                    attempt=attempt,
                                    hint="raise the step's `timeout:` (or `defaults.timeout`)"
                                         "; it applies to each attempt")
                error.__cause__ = exc
        except Exception as exc:
            error = exc
        if not should_retry(policy, error, attempt):
            raise error
        delay = backoff_delay(policy, attempt, error)
        if on_retry is not None:
            on_retry(attempt, delay, error)
        await anyio.sleep(delay)


async def _timed(fn: Callable[[], Awaitable[T]], timeout: float) -> T:
    """`fn()` within `timeout` seconds, less the time it waits for capacity (see
    engine.deadlines); a TimeoutError like anyio.fail_after's when it runs out."""
    with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
        token = attempt_scope.set(scope)
        try:
            return await fn()
        finally:
            attempt_scope.reset(token)
    # only its deadline cancels this scope (nothing else holds it): that deadline passed
    raise TimeoutError


_ONCE = RetrySpec(attempts=1)
