"""MCP settings read from the environment (seed design names), with sane defaults."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_HEALTH_INTERVAL_S = 30.0
DEFAULT_STARTUP_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
        if not math.isfinite(value):  # nan passes `value < minimum`; int(inf) overflows
            raise ValueError(raw)
    except ValueError:
        raise ConfigError(f"environment variable {name}={raw!r} is not a number",
                          hint=f"set {name} to a number such as {default:g}, or unset it") from None
    if value < minimum:
        raise ConfigError(f"environment variable {name}={raw!r} must be at least {minimum:g}",
                          hint=f"set {name} to a number such as {default:g}, or unset it")
    return value


@dataclass(frozen=True)
class MCPSettings:
    """Defaults that apply where the workflow file says nothing."""

    call_timeout_s: float = DEFAULT_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: 0 disables the health check loop
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    max_restarts: int = 3
    #: "auto" (2026-07-28, falling back to the 2025-era handshake) or "legacy" (handshake only)
    protocol_mode: str = "auto"
    #: where stdio servers' stderr is kept (`<server>.stderr.log`); None: a temporary file
    log_dir: Path | None = None
    #: the largest message taken from a server whose spec sets no `max_message_bytes`
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    @classmethod
    def from_env(cls) -> MCPSettings:
        return cls(
            call_timeout_s=_number("MCP_SERVER_TIMEOUT", DEFAULT_TIMEOUT_S, minimum=0.001),
            max_connections=int(_number("MCP_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS,
                                        minimum=1)),
            health_interval_s=_number("MCP_HEALTH_CHECK_INTERVAL", DEFAULT_HEALTH_INTERVAL_S,
                                      minimum=0),
            max_message_bytes=int(_number("MCP_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES,
                                          minimum=1024)),
        )
