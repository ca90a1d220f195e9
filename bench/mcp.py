"""MCP benchmarks: ToolExecutor overhead over a raw SDK call, and fan-out spawn count.

    PYTHONPATH=. python bench/mcp.py [--calls 2000]

1. Overhead: on ONE open session, alternate a raw SDK `client.call_tool(...)` and
   `MCPRuntime.call_tool(...)` (registry lookup, schema validation, rate/timeout handling,
   normalisation, stats) and compare medians. Run over stdio (a real subprocess) and
   in-process (no pipe: shows the pure Python overhead).
2. Fan-out: 200 concurrent tool calls against one stdio server; count spawns.
3. Large results (`--large`): raw SDK `client.call_tool` of a tool returning 1 MiB, 4 MiB
   and 7 MiB of text over stdio (the message is about twice that: the text is in
   `content` and `structuredContent`), median of a few calls: what reading one big message
   off the pipe costs.
4. HTTP (`--http CALLS`): raw SDK `client.call_tool` over streamable HTTP (the bench server
   behind uvicorn on 127.0.0.1, in a thread): `add` (CALLS calls) and a 4 MiB text (20
   calls), medians: what the HTTP client plait builds costs per response.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# this file is named mcp.py: keep its folder off sys.path so `import mcp` finds the SDK
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))


def build_server() -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("bench", log_level="ERROR")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def blob(size: int) -> str:
        """A text of `size` characters."""
        return "x" * size

    return server


async def overhead(label: str, runtime: Any, calls: int) -> dict[str, float]:
    client = await runtime.manager.client("s")
    await runtime.call_tool("s", "add", {"a": 1, "b": 2})  # list tools, warm caches
    await client.call_tool("add", {"a": 1, "b": 2})
    raw: list[float] = []
    ours: list[float] = []
    for i in range(calls):
        t0 = time.perf_counter()
        await client.call_tool("add", {"a": i, "b": 2})
        t1 = time.perf_counter()
        await runtime.call_tool("s", "add", {"a": i, "b": 2})
        t2 = time.perf_counter()
        raw.append(t1 - t0)
        ours.append(t2 - t1)
    raw_ms = statistics.median(raw) * 1000
    ours_ms = statistics.median(ours) * 1000
    print(f"{label:10s} raw median {raw_ms:.3f} ms | ToolExecutor median {ours_ms:.3f} ms | "
          f"overhead {ours_ms - raw_ms:+.3f} ms  ({calls} calls each)")
    return {"raw_ms": raw_ms, "executor_ms": ours_ms, "overhead_ms": ours_ms - raw_ms}


async def main(calls: int) -> None:
    from engine.mcp import MCPRuntime, MCPSettings
    from engine.spec.models import MCPServerSpec

    settings = MCPSettings(health_interval_s=0)
    stdio = MCPServerSpec(command=sys.executable, args=[str(Path(__file__).resolve()), "--serve"],
                          env={"PYTHONPATH": str(ROOT)})
    async with MCPRuntime({"s": stdio}, base_dir=ROOT, settings=settings) as runtime:
        await overhead("stdio", runtime, calls)
    async with MCPRuntime({}, base_dir=ROOT, settings=settings,
                          in_process={"s": build_server()}) as runtime:
        await overhead("in-process", runtime, calls)
    async with MCPRuntime({"s": stdio}, base_dir=ROOT, settings=settings) as runtime:
        t0 = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(runtime.call_tool, "s", "add", {"a": i, "b": 1})
        elapsed = time.perf_counter() - t0
        stats = runtime.stats()["servers"]["s"]
        print(f"fan-out    200 concurrent calls: spawns={stats['spawns']} calls={stats['calls']} "
              f"errors={stats['errors']} wall={elapsed:.2f}s (incl. one server start)")


async def large(repeats: int) -> None:
    from engine.mcp import MCPRuntime, MCPSettings
    from engine.spec.models import MCPServerSpec

    stdio = MCPServerSpec(command=sys.executable, args=[str(Path(__file__).resolve()), "--serve"],
                          env={"PYTHONPATH": str(ROOT)})
    async with MCPRuntime({"s": stdio}, base_dir=ROOT,
                          settings=MCPSettings(health_interval_s=0)) as runtime:
        client = await runtime.manager.client("s")
        await client.call_tool("blob", {"size": 10})
        for mib in (1, 4, 7):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                await client.call_tool("blob", {"size": mib * 1024 * 1024})
                times.append(time.perf_counter() - t0)
            median_ms = statistics.median(times) * 1000
            print(f"large      {mib:2d} MiB text over stdio: median {median_ms:.1f} ms "
                  f"({repeats} calls)")


async def http(calls: int) -> None:
    import threading

    import uvicorn

    from engine.mcp import MCPRuntime, MCPSettings
    from engine.spec.models import MCPServerSpec

    server = uvicorn.Server(uvicorn.Config(build_server().streamable_http_app(),
                                           host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        await anyio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    spec = MCPServerSpec(url=f"http://127.0.0.1:{port}/mcp")
    try:
        async with MCPRuntime({"s": spec}, base_dir=ROOT,
                              settings=MCPSettings(health_interval_s=0)) as runtime:
            client = await runtime.manager.client("s")
            await client.call_tool("add", {"a": 1, "b": 2})
            for label, name, args, n in (("add", "add", {"a": 1, "b": 2}, calls),
                                         ("4 MiB text", "blob", {"size": 4 << 20}, 20)):
                times = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    await client.call_tool(name, args)
                    times.append(time.perf_counter() - t0)
                print(f"http       {label} over streamable HTTP: median "
                      f"{statistics.median(times) * 1000:.3f} ms ({n} calls)")
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--large", type=int, default=0, metavar="REPEATS",
                        help="only the large-result benchmark, REPEATS calls per size")
    parser.add_argument("--http", type=int, default=0, metavar="CALLS",
                        help="only the streamable HTTP benchmark, CALLS calls of `add`")
    opts = parser.parse_args()
    if opts.serve:
        build_server().run("stdio")
    elif opts.http:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
        anyio.run(http, opts.http)
    elif opts.large:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
        anyio.run(large, opts.large)
    else:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
        anyio.run(main, opts.calls)
