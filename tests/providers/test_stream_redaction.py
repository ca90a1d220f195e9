"""Streamed model text is redacted over a window: a secret the server sends split across
chunks is masked in the StepChunk events, not only in the step's final output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.executor.events import StepChunk
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action, split_text

SECRET = "sk-stream-secret-987654"


def workflow(url: str) -> str:
    return f"""\
version: 1
name: streamed
secrets: [STREAM_KEY]
providers:
  o: {{kind: openai, base_url: "{url}/openai/v1", model: stream-model,
       api_key: "${{{{ secrets.STREAM_KEY }}}}"}}
steps:
  talk: {{llm: o, prompt: "say it", stream: true}}
"""


@pytest.mark.anyio
async def test_a_secret_split_across_streamed_chunks_is_masked(
        srv: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAM_KEY", SECRET)
    reply = f"the key is {SECRET} and it ends here"
    # the fake server streams 4-character pieces: the secret spans several of them
    assert not any(SECRET in piece for piece in split_text(reply))
    srv.openai.push("stream-model", Action(text=reply))
    seen: list[Any] = []
    wf = load_text(workflow(srv.url), str(tmp_path / "streamed.yaml"))
    result = await run_workflow(wf, {}, listeners=[seen.append], record_state=False)
    assert result.status == "succeeded", result.steps["talk"].error
    chunks = [e.text for e in seen if isinstance(e, StepChunk)]
    assert len(chunks) > 1
    joined = "".join(chunks)
    assert SECRET not in joined
    assert joined == "the key is *** and it ends here"
