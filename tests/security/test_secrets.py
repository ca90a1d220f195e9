"""Secrets: loading (env, .env) and redaction of raw and encoded forms."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.secrets import MASK, LineRedactor, Redactor, load_secrets, parse_dotenv
from tests.security.sec_helpers import make_runner

SECRET = "sk-test/AbC+123=xyz"


def test_parse_dotenv() -> None:
    text = ("# comment\nexport A=1\nB = 'two words' \nC=\"line\\nbreak\"\nD=plain # note\n"
            "not a line\nE=\n")
    assert parse_dotenv(text) == {"A": "1", "B": "two words", "C": "line\nbreak", "D": "plain",
                                  "E": ""}


def test_load_secrets_env_wins_over_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("TOKEN=from-file\nOTHER=from-file\n")
    values = load_secrets(["TOKEN", "OTHER"], env={"TOKEN": "from-env"}, dotenv_path=dotenv)
    assert values == {"TOKEN": "from-env", "OTHER": "from-file"}


def test_missing_secret_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SEARCH_TOKEN") as excinfo:
        load_secrets(["SEARCH_TOKEN"], env={}, dotenv_path=tmp_path / ".env")
    assert "export SEARCH_TOKEN" in str(excinfo.value)


@pytest.mark.parametrize("form", [
    SECRET,
    base64.b64encode(SECRET.encode()).decode(),
    base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("="),
    urllib.parse.quote(SECRET, safe=""),
    urllib.parse.quote_plus(SECRET),
    json.dumps(SECRET)[1:-1],
])
def test_every_form_is_redacted(form: str) -> None:
    redactor = Redactor([SECRET])
    text = redactor.redact(f"before {form} after")
    assert text == f"before {MASK} after"


@pytest.mark.parametrize("prefix", [b"u:", b"us:", b"use:"])
def test_base64_of_a_longer_string_hides_the_secret(prefix: bytes) -> None:
    blob = base64.b64encode(prefix + SECRET.encode() + b"!").decode()
    redacted = Redactor([SECRET]).redact(blob)
    assert MASK in redacted
    # what is left encodes the prefix, the suffix and at most a byte or two of the secret
    assert len(redacted.replace(MASK, "")) <= 12, redacted


def test_short_values_are_not_redacted() -> None:
    assert Redactor(["abc"]).redact("abcabc") == "abcabc"


def test_line_redactor_masks_a_secret_split_across_writes() -> None:
    lines = LineRedactor(Redactor([SECRET]))
    out = [lines.feed(chunk) for chunk in ("start ", SECRET[:6], SECRET[6:] + " ok\nnext ",
                                           SECRET[:3])]
    assert out == ["", "", f"start {MASK} ok\n", ""]
    out.append(lines.feed(SECRET[3:]))
    out.append(lines.flush())
    assert "".join(out) == f"start {MASK} ok\nnext {MASK}" and lines.flush() == ""


@pytest.mark.parametrize("offset", [0, 1, 7, 12, 18])
def test_line_redactor_releases_a_long_line_without_cutting_a_secret(offset: int) -> None:
    """A partial line over max_pending is written early: never a piece of a secret, wherever
    the secret falls relative to the cut."""
    redactor = Redactor([SECRET])
    lines = LineRedactor(redactor)
    lines.max_pending = 40
    text = "x" * (41 - len(SECRET) + offset) + SECRET + "y" * 30
    written = [lines.feed(char) for char in text]
    written.append(lines.flush())
    assert "".join(written) == redactor.redact(text)
    assert any(written[:-1]), "nothing was released before the end of the line"
    for piece in written:
        assert not any(SECRET[:n] in piece[-n:] for n in range(2, len(SECRET)))


def test_redact_obj_and_exceptions() -> None:
    redactor = Redactor.from_env(["MY_TOKEN"], env={"MY_TOKEN": SECRET,
                                                    "OPENAI_API_KEY": "sk-openai-key-1"})
    obj = {"headers": {"Authorization": f"Bearer {SECRET}"}, "list": [SECRET, 3, None],
           SECRET: ("sk-openai-key-1",)}
    assert redactor.redact_obj(obj) == {"headers": {"Authorization": f"Bearer {MASK}"},
                                        "list": [MASK, 3, None], MASK: (MASK,)}
    error = RuntimeError(f"401: invalid key {SECRET} echoed by server")
    assert SECRET not in redactor.redact_exception(error)


@pytest.mark.anyio
async def test_command_output_that_encodes_a_secret_is_redacted(tmp_path: Path) -> None:
    _, runner = make_runner("medium", tmp_path)
    result = await runner.run(["sh", "-c", 'printf %s "$TOKEN" | base64; echo "$TOKEN" >&2'],
                              env={"TOKEN": SECRET})
    redactor = Redactor([SECRET])
    assert SECRET in result.stderr  # the declared value really reached the command
    assert SECRET not in redactor.redact(result.stderr)
    assert redactor.redact(result.stdout).strip() == MASK


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_workflow_secret_values(tmp_path: Path) -> None:
    from engine.secrets import workflow_secret_values
    from engine.spec.models import WorkflowSpec

    (tmp_path / ".env").write_text("SEARCH_TOKEN=tok-from-dotenv\n")
    spec = WorkflowSpec.model_validate({
        "version": 1, "name": "w", "secrets": ["SEARCH_TOKEN"],
        "providers": {"p": {"kind": "openai", "api_key": "sk-literal-key",
                            "headers": {"X-Api-Key": "hdr-secret", "X-Trace": "visible"}}},
        "mcp_servers": {"s": {"url": "http://127.0.0.1:1/mcp",
                              "headers": {"Authorization": "Bearer mcp-bearer-token",
                                          "X-Other": "${{ secrets.SEARCH_TOKEN }}"}}},
        "steps": {"a": {"run": "true"}}})
    values = workflow_secret_values(spec, env={"ANTHROPIC_API_KEY": "sk-ant-123"},
                                    dotenv_path=tmp_path / ".env")
    assert set(values) == {"tok-from-dotenv", "sk-ant-123", "sk-literal-key", "hdr-secret",
                           "Bearer mcp-bearer-token", "mcp-bearer-token"}
    assert Redactor(values).redact("visible mcp-bearer-token") == f"visible {MASK}"


QUOTED = "pa'ss-word-123"


@pytest.mark.parametrize("form", [
    QUOTED,
    "pa'\"'\"'ss-word-123",  # in a shell word: what `| shquote` writes
    "pa\\'ss-word-123",  # repr() of a text holding both quotes
    "pa\\'\"\\'\"\\'ss-word-123",  # repr() of a command holding the shell word
    json.dumps("pa'\"'\"'ss-word-123")[1:-1],
])
def test_quoted_forms_are_redacted(form: str) -> None:
    assert Redactor([QUOTED]).redact(f"before {form} after") == f"before {MASK} after"


@pytest.mark.anyio
async def test_a_shell_quoted_secret_is_masked_in_the_run_error(tmp_path: Path) -> None:
    """shquote, the way the docs give to paste a value into a command, split a secret that
    holds a quote into pieces the redactor did not know; the failed command's message (in
    the result and the run record) showed it."""
    from engine.executor import run_workflow
    from engine.spec.loader import load_text

    text = ("version: 1\nname: quoted\nsecrets: [PASS]\npolicies:\n  open: {level: low}\n"
            "defaults:\n  policy: open\nsteps:\n  login:\n"
            "    run: false ${{ secrets.PASS | shquote }}\n")
    workflow = load_text(text, str(tmp_path / "w.yaml"))
    result = await run_workflow(workflow, {}, environ={"PASS": QUOTED, "PATH": "/usr/bin:/bin"})
    assert not result.ok
    message = json.dumps(result.error)
    assert "command" in message and MASK in message
    assert "ss-word-123" not in message, message
    stored = [p for p in (tmp_path / ".plait").rglob("*") if p.is_file()]
    assert stored  # the run record
    for path in stored:
        assert b"ss-word-123" not in path.read_bytes(), path
