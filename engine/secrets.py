"""Secrets: load them, and keep them out of every output.

:class:`Redactor` replaces each secret value, and its base64 (standard and URL-safe, with and
without padding), URL-encoded, JSON-escaped, shell-quoted and repr() forms, with ``***``.
Values shorter than :data:`MIN_SECRET_LENGTH` (4) characters are not redacted: replacing every
"a" or "42" in the output would destroy it while hiding nothing worth hiding.

:func:`load_secrets` reads the declared names from the environment, then from an optional
``.env`` file next to the workflow (a small parser: ``KEY=value``, ``export KEY=value``,
single/double quotes, ``#`` comments; no variable expansion). The environment wins.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, PlaitError

if TYPE_CHECKING:
    from engine.spec.models import WorkflowSpec

__all__ = ("MASK", "MIN_SECRET_LENGTH", "PROVIDER_KEYS", "SECRET_HEADER", "SOURCE_MASK",
           "LineRedactor", "Redactor", "literal_secret_values", "load_secrets", "parse_dotenv",
           "secret_named", "workflow_secret_values")

MASK = "***"
#: the mask in a stored copy of the workflow text: a plain word, so the copy is still valid
#: YAML wherever the secret stood (`api_key: ***` would be an alias), and parses to the same
#: structure (for resume's step comparison and the report's graph)
SOURCE_MASK = "REDACTED"
MIN_SECRET_LENGTH = 4
#: provider key variables whose values are always redacted when set
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "AZURE_OPENAI_API_KEY")
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
#: header names whose literal values are treated as secrets
SECRET_HEADER = re.compile(r"(?i)auth|token|secret|key|cookie|password|session")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
#: environment variable names kept out of expressions' `env` (read them as `secrets.NAME`)
_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)",
                          re.IGNORECASE)


@functools.lru_cache(maxsize=4096)
def secret_named(name: str) -> bool:
    """Whether an environment variable's name looks like a secret's: such variables are not
    in the `env` that expressions see."""
    return _SECRET_NAME.search(name) is not None  # once per name: the search costs ~1 µs


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)),
                      raw[1:-1])
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=value` lines of a .env file (comments and blank lines ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match:
            out[match.group(1)] = _unquote(match.group(2))
    return out


def load_secrets(names: Iterable[str], *, env: Mapping[str, str] | None = None,
                 dotenv_path: Path | None = None) -> dict[str, str]:
    """The value of every declared secret; ConfigError naming the first missing one."""
    source = os.environ if env is None else env
    dotenv: dict[str, str] = {}
    if dotenv_path is not None and dotenv_path.is_file():
        dotenv = parse_dotenv(_read_dotenv(dotenv_path))
    values: dict[str, str] = {}
    for name in names:
        value = source.get(name) or dotenv.get(name)
        if not value:
            where = f" or in {dotenv_path.name}" if dotenv_path is not None else ""
            raise ConfigError(f"secret {name} is declared in `secrets:` but is not set in the "
                              f"environment{where}",
                              hint=f"export {name}=... or add it to a .env file next to the "
                                   "workflow", secret=name)
        values[name] = value
    return values


def _read_dotenv(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {path}: not UTF-8 text (byte {exc.start + 1})",
                          hint="save it as UTF-8 (KEY=value lines)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}",
                          hint="make it readable, or set the secrets in the environment "
                               "instead") from None


def _header_values(headers: Mapping[str, str]) -> Iterator[str]:
    for name, value in headers.items():
        if SECRET_HEADER.search(name) and "${{" not in value:
            yield value
            scheme, _, credential = value.partition(" ")
            if credential and scheme.lower() in ("bearer", "basic", "token"):
                yield credential.strip()


def literal_secret_values(spec: WorkflowSpec) -> list[str]:
    """The secrets written into the workflow text itself: literal `api_key`s, and literal
    values of secret-looking headers of providers and MCP servers (Authorization, X-Api-Key,
    ...)."""
    values: list[str] = []
    for provider in spec.providers.values():
        if provider.api_key and "${{" not in provider.api_key:
            values.append(provider.api_key)
        values += _header_values(provider.headers)
    for server in spec.mcp_servers.values():
        values += _header_values(server.headers)
    return values


def workflow_secret_values(spec: WorkflowSpec, *, env: Mapping[str, str] | None = None,
                           dotenv_path: Path | None = None,
                           missing_ok: bool = False) -> list[str]:
    """Every value a run of `spec` must never show: its `secrets:` (ConfigError if one is
    missing), the provider keys that are set, and :func:`literal_secret_values`.
    `missing_ok`: only the secrets that are set now, a missing one (or an unreadable .env)
    skipped: for masking what plait says before (or instead of) a run, such as an error
    about its inputs."""
    source = os.environ if env is None else env
    if not missing_ok:
        values = list(load_secrets(spec.secrets, env=source, dotenv_path=dotenv_path).values())
    else:
        try:
            dotenv = parse_dotenv(_read_dotenv(dotenv_path)) \
                if dotenv_path is not None and dotenv_path.is_file() else {}
        except ConfigError:  # an unreadable .env: the run says so; mask what there is
            dotenv = {}
        values = [v for v in (source.get(n) or dotenv.get(n) for n in spec.secrets) if v]
    values += [source[k] for k in PROVIDER_KEYS if source.get(k)]
    return values + literal_secret_values(spec)


def _quoted_forms(secret: str) -> set[str]:
    """How quoting writes `secret` inside a longer text: in a shell word (``| shquote``, so
    ``pa'ss`` becomes ``pa'"'"'ss``), in JSON, and in Python's repr() (an error quoting a
    command: ``'pa\\'ss'``), each also of the shell word."""
    forms: set[str] = set()
    for text in {secret, secret.replace("'", "'\"'\"'")}:
        forms |= {text, json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1],
                  repr(text)[1:-1], repr(text + "'\"")[1:-4]}
    return forms


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    forms = {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
             *_quoted_forms(secret)}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = encoded.decode()
        forms |= {text, text.rstrip("=")}
    # base64 of the secret inside a longer string (e.g. "user:key"): at each of the three
    # byte alignments, the characters that depend on the secret's bytes only
    for shift in (0, 1, 2):
        chunk = base64.b64encode(b"\0" * shift + raw).decode()
        start, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        forms.add(chunk[start:end])
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces secrets (and their encoded forms) with ``***`` in text and nested objects."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._longest = 0
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new: set[str] = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_LENGTH:
                new |= _forms(secret)
        self._merge(new)

    def update(self, other: Redactor) -> None:
        """Also mask everything `other` masks."""
        self._merge(other._forms)

    def _merge(self, forms: set[str]) -> None:
        if forms <= self._forms:  # nothing new: the pattern stands (a rebuild costs ~20 µs)
            return
        self._forms |= forms
        self._compile()

    def _compile(self) -> None:
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._longest = len(ordered[0]) if ordered else 0

    @classmethod
    def from_env(cls, names: Iterable[str] = (), *,
                 env: Mapping[str, str] | None = None) -> Redactor:
        """A redactor for the named variables plus every provider key that is set."""
        source = os.environ if env is None else env
        return cls(source[n] for n in (*names, *PROVIDER_KEYS) if source.get(n))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def redact(self, text: str, mask: str = MASK) -> str:
        """`text` with every secret form replaced by `mask` (a literal: no backslashes)."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(mask, text)

    def redact_source(self, text: str) -> str:
        """A workflow's text as a run record keeps it: a secret written into it (a literal
        `api_key:`, an Authorization header) masked with SOURCE_MASK, which keeps it valid
        YAML. Text with no secret in it is kept as it is."""
        return self.redact(text, SOURCE_MASK)

    def release(self, text: str) -> tuple[str, str]:
        """`text` split for a stream: the redacted part that is safe to write now, and the raw
        rest to hold back because a secret could still continue into the next chunk (fewer
        characters than the longest masked form, and never the middle of a match)."""
        if self._pattern is None:
            return text, ""
        cut = max(0, len(text) - (self._longest - 1))
        out: list[str] = []
        pos = 0
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            out += (text[pos:match.start()], MASK)
            pos = match.end()
        cut = max(cut, pos)
        out.append(text[pos:cut])
        return "".join(out), text[cut:]

    def redact_obj(self, obj: Any) -> Any:
        """A copy of `obj` (dicts, lists, tuples, strings; keys too) with secrets masked."""
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self.redact_obj(k): self.redact_obj(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            items = [self.redact_obj(v) for v in obj]
            return items if isinstance(obj, list) else tuple(items)
        if isinstance(obj, bytes):
            return self.redact(obj.decode(errors="replace")).encode()
        return obj

    def redact_error(self, exc: PlaitError) -> PlaitError:
        """`exc` itself, its message, hint and context with secrets masked (an error that
        shows a value it was given, such as an input error)."""
        if self:
            exc.message = self.redact(exc.message)
            exc.args = (exc.message, *exc.args[1:])
            exc.hint = None if exc.hint is None else self.redact(exc.hint)
            exc.context = self.redact_obj(exc.context)
        return exc

    def redact_exception(self, exc: BaseException) -> str:
        """The text of an exception (SDK errors echo server bodies) with secrets masked."""
        return self.redact(f"{type(exc).__name__}: {exc}")


class LineRedactor:
    """Redacts a stream of text (a server's stderr) one complete line at a time, so a secret
    that arrives split across two writes is still masked.

    ``feed`` returns what can be written now; the partial last line is held back until its
    newline comes or ``flush`` is called at the end of the stream. A partial line longer than
    `max_pending` characters is released early, up to a point no secret can straddle; with
    ``max_pending=0`` (streamed model text) everything but that window is released at once.
    """

    def __init__(self, redactor: Redactor, *, max_pending: int = 64 * 1024) -> None:
        self._redactor = redactor
        self._pending = ""
        self.max_pending = max_pending

    def feed(self, text: str) -> str:
        pending = self._pending + text
        cut = pending.rfind("\n") + 1
        out = self._redactor.redact(pending[:cut]) if cut else ""
        pending = pending[cut:]
        if len(pending) > self.max_pending:
            head, pending = self._redactor.release(pending)
            out += head
        self._pending = pending
        return out

    def flush(self) -> str:
        out, self._pending = self._redactor.redact(self._pending), ""
        return out
