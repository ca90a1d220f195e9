"""Engine overhead per LLM call, side by side with a bare SDK call, in one run.

    PYTHONPATH=. python bench/providers.py [--calls 2000] [--concurrent 1000]

1. The same local OpenAI-wire server (tests/providers/servers) answers both: a bare
   ``AsyncOpenAI`` call and ``run_llm`` through the registry (mapping, limits, cost), in
   alternation so drift hits both alike. The overhead is the difference of the medians.
2. ``run_llm`` on the offline echo provider: the per-step cost the executor pays.
3. 1,000 concurrent ``run_llm`` calls through one pooled client: errors must be 0.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from typing import Any

import anyio
import uvicorn

from engine.providers import LLMRequest, Message, ProviderRegistry, run_llm
from engine.spec.models import ProviderSpec
from tests.providers.servers import openai_server


def _serve() -> tuple[str, uvicorn.Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(openai_server.app, host="127.0.0.1", port=port,
                            log_level="error", lifespan="off", backlog=4096)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    for _ in range(1000):
        if server.started:
            break
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}/v1", server


async def side_by_side(base_url: str, calls: int) -> dict[str, float]:
    import httpx2
    import openai

    http = httpx2.AsyncClient(limits=httpx2.Limits(max_connections=1000))
    bare = openai.AsyncOpenAI(api_key="k", base_url=base_url, max_retries=0, http_client=http)
    spec = ProviderSpec(kind="openai", model="gpt-test", api_key="k", base_url=base_url)
    limited = spec.model_copy(update={"max_concurrency": 64})
    registry = ProviderRegistry.from_specs({"oa": spec, "lim": limited}, env={})
    request = LLMRequest([Message("user", "hello")])
    times: dict[str, list[float]] = {"bare": [], "engine": [], "engine+limits": []}

    async def bare_call() -> Any:
        return await bare.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hello"}])

    for _ in range(50):  # warm up both pools
        await bare_call()
        await run_llm(registry, "oa", request)
        await run_llm(registry, "lim", request)
    for _ in range(calls):
        t0 = time.perf_counter()
        await bare_call()
        t1 = time.perf_counter()
        await run_llm(registry, "oa", request)
        t2 = time.perf_counter()
        await run_llm(registry, "lim", request)
        t3 = time.perf_counter()
        times["bare"].append(t1 - t0)
        times["engine"].append(t2 - t1)
        times["engine+limits"].append(t3 - t2)
    await registry.aclose()
    await bare.close()
    await http.aclose()
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


async def echo_cost(calls: int) -> dict[str, float]:
    registry = ProviderRegistry.from_specs({"e": ProviderSpec(kind="echo")}, env={})
    provider = registry.get("e")
    request = LLMRequest([Message("user", "hello")])
    t0 = time.perf_counter()
    for _ in range(calls):
        await provider.generate(request)
    t1 = time.perf_counter()
    for _ in range(calls):
        await run_llm(registry, "e", request)
    t2 = time.perf_counter()
    return {"echo.generate": (t1 - t0) / calls * 1e6, "run_llm(echo)": (t2 - t1) / calls * 1e6}


async def concurrent(base_url: str, count: int) -> dict[str, Any]:
    spec = ProviderSpec(kind="openai", model="gpt-test", api_key="k", base_url=base_url)
    registry = ProviderRegistry.from_specs({"oa": spec}, env={})
    openai_server.SCRIPT.reset()
    openai_server.SCRIPT.default_delay = 0.05
    errors: list[str] = []

    async def one(i: int) -> None:
        try:
            await run_llm(registry, "oa", LLMRequest([Message("user", str(i))]))
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(count):
            tg.start_soon(one, i)
    wall = time.perf_counter() - t0
    await registry.aclose()
    return {"calls": count, "errors": len(errors), "first_error": errors[:1],
            "wall_s": round(wall, 2), "server_max_in_flight": openai_server.SCRIPT.max_in_flight}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=1000)
    args = parser.parse_args()
    base_url, server = _serve()
    medians = anyio.run(side_by_side, base_url, args.calls)
    print(f"median per call over {args.calls} calls (ms): "
          + ", ".join(f"{k} {v:.3f}" for k, v in medians.items()))
    print(f"engine overhead: {medians['engine'] - medians['bare']:.3f} ms "
          f"(with max_concurrency: {medians['engine+limits'] - medians['bare']:.3f} ms)")
    echo = anyio.run(echo_cost, 20000)
    print("echo per call (us): " + ", ".join(f"{k} {v:.1f}" for k, v in echo.items()))
    print("concurrent:", anyio.run(concurrent, base_url, args.concurrent))
    server.should_exit = True


if __name__ == "__main__":
    main()
