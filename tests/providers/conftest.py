from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

from tests.providers.servers import anthropic_server, google_server, openai_server
from tests.providers.servers.common import Script


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Servers:
    url: str
    openai: Script
    anthropic: Script
    google: Script


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _moved(request: Request) -> RedirectResponse:
    """`/moved/<vendor>/...` answers 307 to the same path on another origin (localhost instead
    of 127.0.0.1: the same server, another host to the client)."""
    rest = request.path_params["rest"]
    return RedirectResponse(f"http://localhost:{request.url.port}/{rest}", status_code=307)


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    app = Starlette(routes=[Route("/moved/{rest:path}", _moved, methods=["GET", "POST"]),
                           Mount("/openai", app=openai_server.app),
                           Mount("/anthropic", app=anthropic_server.app),
                           Mount("/google", app=google_server.app)])
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", backlog=2048, timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the fake vendor server did not start"
        time.sleep(0.01)
    yield Servers(f"http://127.0.0.1:{port}", openai_server.SCRIPT, anthropic_server.SCRIPT,
                  google_server.SCRIPT)
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def srv(servers: Servers) -> Servers:
    for script in (servers.openai, servers.anthropic, servers.google):
        script.reset()
    return servers


#: provider registries a test opened: the `closes_registries` fixture closes them after it
OPEN_REGISTRIES: list[Any] = []


@pytest.fixture
async def closes_registries() -> AsyncIterator[None]:
    yield
    while OPEN_REGISTRIES:
        await OPEN_REGISTRIES.pop().aclose()
