"""Fixtures of the security suite: policies, a canary listener, process checks."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.security.sec_helpers import Canary

HAVE_BWRAP = shutil.which("bwrap") is not None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="bubblewrap is not installed (apt-get install bubblewrap)")
    for item in items:
        if "bwrap" in item.keywords and not HAVE_BWRAP:
            item.add_marker(skip)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_bwrap_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLAIT_BWRAP", raising=False)


@pytest.fixture
def canary() -> Iterator[Canary]:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    tcp.settimeout(0.1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    result = Canary(tcp.getsockname()[1], udp.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = tcp.accept()
                with conn:
                    conn.settimeout(1)
                    result.received.append(b"tcp:" + conn.recv(1024))
            except (TimeoutError, OSError):
                pass
            try:
                data, _ = udp.recvfrom(1024)
                result.received.append(b"udp:" + data)
            except (TimeoutError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield result
    stop.set()
    thread.join(5)
    tcp.close()
    udp.close()
