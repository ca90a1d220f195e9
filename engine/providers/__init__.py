"""LLM providers behind one interface: types, the registry, run_llm and the offline echo.

Vendor modules (openai, anthropic, google) are imported only when a provider of that kind
is first used, so importing this package never imports a vendor SDK.
"""

from __future__ import annotations

from engine.providers.build import build_request
from engine.providers.echo import EchoProvider
from engine.providers.limits import ProviderLimiter
from engine.providers.pricing import BUILTIN_PRICES, Price, PriceTable
from engine.providers.registry import ProviderRegistry
from engine.providers.replay import ReplayProvider
from engine.providers.run import LLMEvent, LLMResult, ToolCallRecord, run_llm
from engine.providers.types import (
    ImagePart,
    LLMProvider,
    LLMRequest,
    LLMResponse,
    LLMStreamChunk,
    Message,
    Part,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolCaller,
    ToolDefinition,
    ToolOutput,
    Usage,
)

__all__ = (
    "BUILTIN_PRICES",
    "EchoProvider",
    "ImagePart",
    "LLMEvent",
    "LLMProvider",
    "LLMRequest",
    "LLMResponse",
    "LLMResult",
    "LLMStreamChunk",
    "Message",
    "Part",
    "Price",
    "PriceTable",
    "ProviderLimiter",
    "ProviderRegistry",
    "ReplayProvider",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallRecord",
    "ToolCaller",
    "ToolDefinition",
    "ToolOutput",
    "Usage",
    "build_request",
    "run_llm",
)
