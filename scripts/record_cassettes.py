"""Re-record the cassettes and snapshots of the example workflows in workflows/.

    python scripts/record_cassettes.py [--check]

Nothing real is called: the bundled MCP servers run from this checkout (through small
launchers put first on PATH), and the agent recipe's OpenAI provider talks to the local fake
OpenAI-compatible server of the test suite (tests/providers/servers), scripted with a
tool-calling conversation. Files the recipe writes while recording are removed afterwards.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVERS = {"plait-mcp-files": "files", "plait-mcp-data": "data", "plait-mcp-web": "web"}
RECIPE_MODEL = "gpt-4.1-mini"


def launchers(directory: Path) -> None:
    """`plait-mcp-*` commands that run the bundled servers of this checkout."""
    for command, module in SERVERS.items():
        path = directory / command
        path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                        f"from engine.mcp.servers.{module} import main\nmain()\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


@contextmanager
def fake_openai() -> Iterator[str]:
    import uvicorn

    sys.path.insert(0, str(ROOT))
    from tests.providers.servers import openai_server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(openai_server.app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake OpenAI server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def script_recipe() -> None:
    """The triage conversation: list, read both notes, write TRIAGE.md, answer."""
    from tests.providers.servers.common import Action
    from tests.providers.servers.openai_server import SCRIPT

    SCRIPT.reset()
    SCRIPT.push(
        RECIPE_MODEL,
        Action(tool_calls=[("files__list_directory", {"path": "."})], usage=(120, 12)),
        Action(tool_calls=[("files__read_file", {"path": "ideas.md"}),
                           ("files__read_file", {"path": "standup.md"})], usage=(180, 20)),
        Action(tool_calls=[("files__write_file", {
            "path": "TRIAGE.md",
            "content": "- standup.md: follow up on the blocked deploy\n"})], usage=(260, 30)),
        Action(text="Wrote TRIAGE.md: one note (standup.md) needs action.", usage=(300, 14)))


def main() -> int:
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from runners.cli.test_cmd import execute

    with tempfile.TemporaryDirectory(prefix="plait-launchers-") as bin_dir, fake_openai() as url:
        launchers(Path(bin_dir))
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        os.environ["OPENAI_BASE_URL"] = url
        os.environ["OPENAI_API_KEY"] = "sk-fake-local-key-for-recording"
        script_recipe()
        if "--check" in sys.argv:
            return execute([ROOT / "workflows"])
        code = execute([ROOT / "workflows"], record=True, update=True)
    (ROOT / "workflows" / "agent-recipe" / "notes" / "TRIAGE.md").unlink(missing_ok=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
