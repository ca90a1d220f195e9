"""How plait's stdio transport splits a real server's stdout into messages, as the SDK's
transport did: a message written a byte at a time (a UTF-8 character split across reads),
CRLF line ends, blank lines between messages, and a burst of many short messages in one
write all arrive whole and in order, on asyncio and trio."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.mcp._limits import MessageCap
from engine.mcp._stdio import stdio_transport

pytestmark = pytest.mark.anyio

WRITER = textwrap.dedent("""
    import json, sys, time
    out = sys.stdout.buffer
    def note(text, end=b"\\n"):
        return json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                           "params": {"level": "info", "data": text}},
                          ensure_ascii=False).encode() + end
    slow = note("h\u00e9llo \u20ac \U0001d11e")
    for i in range(len(slow)):  # a byte at a time: every character split somewhere
        out.write(slow[i:i + 1])
        out.flush()
        time.sleep(0.001)
    out.write(note("crlf-1", b"\\r\\n") + b"\\r\\n\\n" + note("crlf-2", b"\\r\\n"))
    out.write(b"".join(note(f"burst-{n}") for n in range(5000)))
    out.flush()
    sys.stdin.read()
""")


async def test_messages_arrive_whole_however_the_pipe_cuts_them(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    texts: list[Any] = []
    with open(os.devnull, "w") as errlog, anyio.fail_after(30):
        async with stdio_transport([sys.executable, str(script)], env={}, cwd=str(tmp_path),
                                   errlog=errlog, cap=MessageCap("w", 1 << 20)) as (read, _):
            async for message in read:
                assert not isinstance(message, Exception), message
                texts.append(message.message.params["data"])
                if len(texts) == 5003:
                    break
    assert texts[:3] == ["h\u00e9llo \u20ac \U0001d11e", "crlf-1", "crlf-2"]
    assert texts[3:] == [f"burst-{n}" for n in range(5000)]
