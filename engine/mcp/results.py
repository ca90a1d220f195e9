"""Tool results normalised from the SDK's CallToolResult into plain data."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ToolError


@dataclass(frozen=True)
class ToolResult:
    """What a tool call returned, as plain Python data.

    `text` joins every text block; `structured` is the server's structured content (if any);
    `images` and `resources` hold those content blocks as dicts; `content` keeps every block.
    """

    server: str
    tool: str
    text: str = ""
    structured: Any = None
    images: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    content: list[dict[str, Any]] = field(default_factory=list)
    is_error: bool = False
    duration_s: float = 0.0

    @property
    def value(self) -> Any:
        """The step output: structured content, else the text parsed as JSON, else the text.

        Structured content that is exactly ``{"result": x}`` is unwrapped to ``x``: that is how
        SDK servers (MCPServer, FastMCP) wrap results that are not objects."""
        if self.structured is not None:
            if isinstance(self.structured, dict) and list(self.structured) == ["result"]:
                return self.structured["result"]
            return self.structured
        stripped = self.text.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except ValueError:
                return self.text
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {"server": self.server, "tool": self.tool, "text": self.text,
                "structured": self.structured, "images": self.images,
                "resources": self.resources, "is_error": self.is_error}


def _block_dict(block: Any) -> dict[str, Any]:
    dump = getattr(block, "model_dump", None)
    if callable(dump):
        data = dump(mode="json", by_alias=True, exclude_none=True)
        if isinstance(data, dict):
            return data
    if isinstance(block, dict):
        return dict(block)
    raise ToolError(f"the server returned a content block that is not an object: {block!r}")


def normalise(server: str, tool: str, result: Any, duration_s: float = 0.0) -> ToolResult:
    """Turn an SDK CallToolResult (or anything shaped like one) into a ToolResult."""
    content = getattr(result, "content", None)
    if not isinstance(content, list):
        raise ToolError(f"tool '{server}.{tool}' returned a malformed result (no content list)",
                        server=server, tool=tool)
    blocks = [_block_dict(block) for block in content]
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind in ("image", "audio"):
            images.append(block)
        elif kind in ("resource", "resource_link"):
            resources.append(block)
            inner = block.get("resource")
            if isinstance(inner, dict) and "text" in inner:
                texts.append(str(inner["text"]))
    return ToolResult(server=server, tool=tool, text="\n".join(texts),
                      structured=getattr(result, "structured_content", None),
                      images=images, resources=resources, content=blocks,
                      is_error=bool(getattr(result, "is_error", False)), duration_s=duration_s)
