"""The policy's checks of an MCP resource read (pure, as `_check`: reads the filesystem only
to resolve symlinks). A resource read is a read, so its URI is judged as a read path where it
names a file, and by the rules wherever it points (documented in docs/security.md):

- a `file:` URI is a read path: its path, percent-decoded, must be under the read roots
  (when the policy confines paths), have an allowed extension, and not be the workflow's
  secrets or run records; a `file:` URI that names a host (`file://host/x`) is refused;
- a URI without a scheme (a bare path some servers accept) is a read path as it is written;
- any other scheme (`https:`, `notes:`, ...) is the server's to interpret, so no root can
  judge it; but when the policy confines paths a `..` segment in it is refused, as a
  resource template that joins it to a directory would step out of it;
- every URI is searched by the `rules` that apply to arguments, as written and
  percent-decoded, and is refused over `max_file_size_mb`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from engine.errors import PolicyViolation
from engine.policy._check import _check_rules, _check_size, _violation, check_path
from engine.policy._resolve import Policy

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DOT_SEGMENT = re.compile(r"(^|[/\\])\.\.([/\\?#]|$)")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_C0_SPACE = "".join(map(chr, range(0x21)))


def check_resource_uri(policy: Policy, uri: str, *, cwd: Path | None = None,
                       **ctx: Any) -> None:
    """Raise PolicyViolation if reading the resource `uri` breaks the policy (no-op at low).
    `cwd` is what the server resolves a relative path against."""
    if not policy.checks_arguments:
        return
    base = cwd or Path.cwd()
    decoded = unquote(uri)
    _check_size(policy, "the resource URI", uri, **ctx)
    _check_rules(policy, uri, "arguments", **ctx)
    if decoded != uri:  # `%73hadow` is `shadow` to the server
        _check_rules(policy, decoded, "arguments", **ctx)
    # as a URL parser reads it (WHATWG, pydantic's AnyUrl, urlsplit): `" file:///x"` and
    # `"fi\tle:///x"` are file: URIs to a server, not bare paths
    text = _TAB_NEWLINE.sub("", uri).strip(_C0_SPACE)
    scheme = _SCHEME.match(text)
    if scheme is None:
        check_path(policy, uri, cwd=base, **ctx)
    elif scheme.group(1).lower() == "file":
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # file://[x: an unclosed IPv6 host
            _violation(policy, "filesystem", uri, f"the file URI {uri!r} is malformed: {exc}",
                       hint="write a local file as file:///absolute/path", **ctx)
        if parts.netloc.lower() not in ("", "localhost"):
            _violation(policy, "filesystem", uri,
                       f"the file URI {uri!r} names the host {parts.netloc!r}: which file it "
                       "reads is the server's guess",
                       hint="write a local file as file:///absolute/path (three slashes)",
                       **ctx)
        _read(policy, uri, unquote(parts.path), base, **ctx)
    elif _confines(policy) and _DOT_SEGMENT.search(unquote(text)[scheme.end():]):
        _violation(policy, "filesystem", uri,
                   f"the resource URI {uri!r} has a '..' segment, which a server may resolve "
                   "out of the directory it serves, and the policy confines paths",
                   hint="name the resource without '..' (check the inputs its URI is built "
                   "from)",
                   **ctx)


def _read(policy: Policy, uri: str, path: str, base: Path, **ctx: Any) -> None:
    """check_path on the path of a file: URI, its violation saying which URI it read."""
    try:
        check_path(policy, path, cwd=base, **ctx)
    except PolicyViolation as exc:
        head = f"policy {policy.name!r} ({policy.level}): "
        exc.message = f"{head}the resource URI {uri!r}: {exc.message.removeprefix(head)}"
        exc.args = (exc.message,)
        raise


def _confines(policy: Policy) -> bool:
    """Whether the policy confines paths to roots (as check_path does)."""
    return policy.level in ("high", "critical") or bool(policy.roots)
