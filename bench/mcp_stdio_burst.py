"""Many small messages from a stdio server: plait's reader (`engine.mcp._stdio`) vs the MCP
SDK's `stdio_client`, on asyncio and trio.

    PYTHONPATH=. python bench/mcp_stdio_burst.py [--messages 200000] [--repeat 3]

A child process writes N `notifications/message` lines (~90 bytes each) in one burst; the
transport parses them into SessionMessages, which are counted. Wall time from start to the
last message, transport exit included (the child exits as its stdin closes). Runs alternate
plait/SDK; medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))

WRITER = """
import json, sys
line = json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                   "params": {"level": "info", "data": "x"}}).encode() + b"\\n"
sys.stdout.buffer.write(line * int(sys.argv[1]))
sys.stdout.buffer.flush()
sys.stdin.read()
"""


async def _count(transport: object, n: int) -> float:
    start = time.perf_counter()
    seen = 0
    async with transport as (read, _write):  # type: ignore[attr-defined]
        async for _ in read:
            seen += 1
            if seen >= n:
                break
    assert seen == n, seen
    return time.perf_counter() - start


async def plait(script: str, n: int) -> float:
    from engine.mcp._limits import MessageCap
    from engine.mcp._stdio import stdio_transport

    with open(os.devnull, "w") as err:
        return await _count(stdio_transport([sys.executable, script, str(n)], env={},
                                            cwd=str(ROOT), errlog=err,
                                            cap=MessageCap("bench", 16 << 20)), n)


async def sdk(script: str, n: int) -> float:
    from mcp.client.stdio import StdioServerParameters, stdio_client

    with open(os.devnull, "w") as err:
        params = StdioServerParameters(command=sys.executable, args=[script, str(n)])
        return await _count(stdio_client(params, errlog=err), n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = str(Path(tmp) / "writer.py")
        Path(script).write_text(WRITER)
        for backend in ("asyncio", "trio"):
            times: dict[str, list[float]] = {"plait": [], "sdk": []}
            for _ in range(args.repeat):
                for name, run in (("plait", plait), ("sdk", sdk)):
                    times[name].append(anyio.run(run, script, args.messages, backend=backend))
            print(f"{backend}: {args.messages} messages, median of {args.repeat}: "
                  + ", ".join(f"{name} {statistics.median(t):.2f} s"
                              for name, t in times.items()))


if __name__ == "__main__":
    main()
