"""Text plait prints where GitHub Actions reads workflow commands: whether it runs there, and
untrusted text made inert. Kept apart from the reporters (a JUnit and XML stack) so that
every `plait run` can use it without loading them."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


#: what GitHub's runner reads as a workflow command: `::` opening a line (after blanks; lines
#: end at \n or \r), or the legacy `##[` anywhere
_COMMAND = re.compile(r"(?:^|[\r\n])[^\S\r\n]*::|##\[")


def inert(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` as printed in a GitHub Actions log without the runner taking any of it for a
    workflow command (`::` starting a line, the legacy `##[` anywhere): step output is
    untrusted and could otherwise raise annotations, mask values or stop plait's own
    commands. Outside GitHub Actions, or when no line of it could be a command, unchanged."""
    if not in_github_actions(environ) or not _COMMAND.search(text):
        return text
    stop, resume = stop_commands()
    return f"{stop}\n{text}\n{resume}"


def inert_json(text: str, environ: Mapping[str, str] | None = None) -> str:
    """JSON text as printed in a GitHub Actions log (`--json`, a console trace), made inert
    without wrapping it, so that it stays JSON: the legacy `##[`, read anywhere in a line, is
    written `#\\u0023[` (the same value to any JSON reader); a line of JSON cannot start with
    `::`. Outside GitHub Actions, unchanged."""
    if "##[" not in text or not in_github_actions(environ):
        return text
    return text.replace("##[", "#\\u0023[")


def stop_commands() -> tuple[str, str]:
    """The line that has GitHub's runner read no more workflow commands (`::stop-commands::`
    with a random token) and the line that has it read them again: text printed between them
    shows as it is. Each line must start a line of its own."""
    token = secrets.token_hex(16)
    return f"::stop-commands::{token}", f"::{token}::"
