"""Read a workflow file safely and keep where every key and value came from.

PyYAML's own constructors are not used: they keep the last of duplicate keys, read ``on``/``no``
as booleans (YAML 1.1) and expand alias bombs lazily. Instead the C (or pure) parser composes a
node tree, and :func:`parse` builds plain Python values from it with YAML 1.2 core scalars,
duplicate-key and tag checks, a cap on alias expansion, and a position for every path.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Location, SpecIssue

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_ALIAS_NODES = 100_000

Path_ = tuple[str | int, ...]

_STD = "tag:yaml.org,2002:"
_INT_RE = re.compile(r"^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT_RE = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class _Resolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema: only true/false are booleans, `on`/`no`/`yes` stay strings."""


_Resolver.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", _INT_RE.pattern, "-+0123456789"),
    ("merge", r"^(?:<<)$", "<"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
):
    _Resolver.add_implicit_resolver(_STD + _tag, re.compile(_regexp), list(_first))

_CParser: Any
try:  # libyaml's C parser: ~100x faster, and no quadratic blow-up on huge scalars
    from yaml import cyaml as _cyaml

    _CParser = _cyaml.CParser  # type: ignore[attr-defined]
except (ImportError, AttributeError):  # pragma: no cover - PyYAML built without libyaml
    _CParser = None
if _CParser is not None:
    class _Loader(_CParser, yaml.constructor.SafeConstructor, _Resolver):  # type: ignore[misc, valid-type]
        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)
else:  # pragma: no cover - PyYAML built without libyaml
    class _Loader(yaml.reader.Reader, yaml.scanner.Scanner,  # type: ignore[no-redef]
                  yaml.parser.Parser, yaml.composer.Composer,
                  yaml.constructor.SafeConstructor, _Resolver):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            _Resolver.__init__(self)


@dataclass
class Source:
    """A parsed workflow file: the data, and the position of every key and value in it."""

    path: str
    text: str
    data: Any = None
    #: path -> (line, column) of the value (1-based)
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: path -> (line, column) of the mapping key that holds the value
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    #: path -> (line, column, style) of a string scalar, to place errors inside it
    scalars: dict[Path_, tuple[int, int, str | None]] = field(default_factory=dict)
    issues: list[SpecIssue] = field(default_factory=list)

    def location(self, path: Path_, *, key: bool = False) -> Location:
        """Where `path` is, falling back to its nearest ancestor that has a position."""
        for n in range(len(path), -1, -1):
            sub = path[:n]
            table = self.keys if key and sub in self.keys else self.values
            if sub in table:
                line, col = table[sub]
                return Location(self.path, line, col)
            key = True  # an ancestor: point at its key
        return Location(self.path, 1, 1)

    def location_in_string(self, path: Path_, offset: int) -> Location:
        """Where character `offset` of the string at `path` is."""
        if path not in self.scalars:
            return self.location(path)
        line, col, style = self.scalars[path]
        value = _get(self.data, path)
        found = self._expression_at(line, col, value, offset)
        if found is not None:
            return Location(self.path, *found)
        before = value[:offset] if isinstance(value, str) else ""
        newlines = before.count("\n")
        if style in ("|", ">"):
            src_line = line + 1 + newlines
            indent = _indent_of(self.text, line + 1)  # the block's own indentation
            column = indent + 1 + len(before) - (before.rfind("\n") + 1)
            return Location(self.path, src_line, column)
        if newlines:
            return Location(self.path, line + newlines, 1)
        quote = 1 if style in ("'", '"') else 0
        return Location(self.path, line, col + quote + offset)

    def _expression_at(self, line: int, col: int, value: Any,
                       offset: int) -> tuple[int, int] | None:
        """Line and column of the ``${{`` at `offset` of the string `value`, whose scalar
        starts at `line`:`col`: the ``${{`` of the same rank in the file from there. Exact
        whatever the scalar's style (escapes such as ``\\n`` in a quoted string, folded lines),
        where counting characters is not; None when `offset` is not at a ``${{``."""
        if not isinstance(value, str) or not value.startswith("${{", offset):
            return None
        at = _index_of(self.text, line, col) - 1
        for _ in range(value.count("${{", 0, offset) + 1):
            at = self.text.find("${{", at + 1)
            if at < 0:
                return None
        return self.text.count("\n", 0, at) + 1, at - self.text.rfind("\n", 0, at)


def _index_of(text: str, line: int, col: int) -> int:
    """The index in `text` of 1-based `line`:`col`."""
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
        if at == 0:
            return len(text)
    return at + col - 1


def _indent_of(text: str, line: int) -> int:
    lines = text.splitlines()
    if 0 < line <= len(lines):
        src = lines[line - 1]
        return len(src) - len(src.lstrip(" "))
    return 0


def _get(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def _max_bytes() -> int | None:
    """PLAIT_MAX_SPEC_BYTES (default 5 MiB); None when it is not a whole number >= 1."""
    text = os.environ.get("PLAIT_MAX_SPEC_BYTES", "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def read(path: Path, *, max_bytes: int | None = None) -> Source:
    """Read and parse `path`. Problems are collected in ``Source.issues`` (data may be None)."""
    shown = str(path)
    limit = max_bytes or _max_bytes()
    if limit is None:
        return _fail(shown, "", f"PLAIT_MAX_SPEC_BYTES="
                     f"{os.environ.get('PLAIT_MAX_SPEC_BYTES')!r} is not a whole number of "
                     "bytes of at least 1", "set it to one, or unset it for the default "
                     f"{DEFAULT_MAX_BYTES}", line=0)
    try:
        size = path.stat().st_size
        if size > limit:
            return _fail(shown, "", f"file is {size:,} bytes, over the {limit:,}-byte limit",
                         "split the workflow, or raise PLAIT_MAX_SPEC_BYTES")
        raw = path.read_bytes()
    except FileNotFoundError:
        return _fail(shown, "", "file not found", "check the path", line=0)
    except IsADirectoryError as exc:
        return _fail(shown, "", f"cannot read file: {exc.strerror}",
                     "give the path of a workflow file, e.g. workflow.yaml", line=0)
    except OSError as exc:
        return _fail(shown, "", f"cannot read file: {exc.strerror}", None, line=0)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return _fail(shown, "", "file is not valid UTF-8", "save it as UTF-8",
                     line=line, col=col)
    return parse(text, shown)


def _fail(path: str, text: str, message: str, hint: str | None, *, line: int = 1,
          col: int = 1) -> Source:
    src = Source(path, text)
    src.issues.append(SpecIssue(message, Location(path, line, col if line else 0), hint=hint,
                                code="file"))
    return src


def parse(text: str, path: str = "<string>") -> Source:
    src = Source(path, text)
    try:
        node = yaml.compose(text, Loader=_Loader)  # type: ignore[arg-type]
    except yaml.MarkedYAMLError as exc:
        # tabs are looked for only in a file YAML refused: a tab that begins a line of a
        # block scalar (`run: |` with a `<<-EOF` heredoc, a prompt with a TSV table) is text
        src.issues.extend(_tab_issues(text, path) or [_syntax_issue(exc, path, text)])
        return src
    except yaml.YAMLError as exc:
        src.issues.append(SpecIssue(f"invalid YAML: {exc}", Location(path, 1, 1), code="yaml"))
        return src
    if node is None:
        src.issues.append(SpecIssue("the file is empty", Location(path, 1, 1), code="yaml",
                                    hint="start with `version: 1`"))
        return src
    builder = _Builder(src)
    if builder.check_size(node):
        src.data = builder.build(node, ())
    return src


#: what the parser was in when it failed (its `context`), as a person calls it, and how to
#: fix it: an unclosed quote or bracket is only noticed where the file ends
_CONTEXTS = (
    ("quoted scalar", "the quoted text", "close the quote; a quote inside it is written \\\" "
     "in double quotes, '' in single quotes"),
    ("flow sequence", "the [ ... ] list", "close it with ], or quote a value that starts "
     "with [ if it is text"),
    ("flow mapping", "the { ... } mapping", "close it with }, or quote a value that starts "
     "with { if it is text"),
    ("block mapping", "the mapping", "check the indentation: each key lines up with the "
     "other keys of its mapping, and its value is indented further"),
    ("block collection", "the list", "check the indentation: each item of a list starts "
     "with '- ' at the same column"),
)


def _syntax_issue(exc: yaml.MarkedYAMLError, path: str, text: str = "") -> SpecIssue:
    """A YAML syntax error: where the parser stopped, what it was in (the quote or bracket
    that opened there) and how to fix it."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    message, hint = f"invalid YAML: {problem}", None
    start = exc.context_mark
    for key, what, fix in _CONTEXTS:
        if exc.context and key in exc.context and start is not None:
            message += f" (in {what} that starts at line {start.line + 1}, column " \
                       f"{start.column + 1})"
            hint = fix
            break
    if start is not None and mark is not None and exc.context \
            and "flow" in exc.context and "${{" in text[start.index:mark.index + 3]:
        # `with: {path: ${{ item }}}`: in a flow collection, `{` and `}` are YAML's
        hint = ("inside { } or [ ], quote a value that holds an expression: "
                "{path: \"${{ item.name }}\"}")
    elif "found another document" in problem:
        message = "invalid YAML: a second document starts here, and a workflow file holds one"
        hint = "remove this `---` line; if what follows is another workflow, give it a file"
    elif "mapping values are not allowed" in problem:
        hint = ("a value that holds ': ' must be quoted: quote the value, e.g. "
                "run: \"echo a: b\"")
    elif "tab character" in problem:
        hint = "YAML indentation must use spaces: replace the tab with spaces"
    elif "undefined alias" in problem:
        hint = "define the anchor (&name) before *name, or quote a value that starts with *"
    return SpecIssue(message, Location(path, line, col), hint=hint, code="yaml")


#: a line that opens a block scalar: `key: |`, `- >-`, `key: |2 # comment`
_BLOCK_START = re.compile(r"(?:^|[:\-])[ \t]+[|>][-+0-9]*[ \t]*(?:#.*)?$")


def _tab_issues(text: str, path: str) -> list[SpecIssue]:
    """Tabs that indent a line, outside block scalars (whose lines may start with a tab
    once indented with spaces past their key: that tab is text)."""
    issues = []
    block: int | None = None  # the indentation (spaces) of the key of the open block scalar
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" \t")
        indent = line[: len(line) - len(stripped)]
        spaces = len(line) - len(line.lstrip(" "))
        if block is not None and (not stripped or spaces > block):
            continue  # a line of the block scalar
        block = None
        if "\t" in indent and stripped and not stripped.startswith("#"):
            issues.append(SpecIssue("tab character used for indentation",
                                    Location(path, number, indent.index("\t") + 1),
                                    hint="YAML indentation must use spaces", code="yaml"))
        elif _BLOCK_START.search(line):
            block = spaces
    return issues[:20]


def _size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes under `node`, aliases expanded (`sizes`: memo by node id). Not a closure over
    `sizes`: a recursive closure is a reference cycle that outlives the call."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    sizes[key] = 1  # guards against recursive aliases
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_size(k, sizes) + _size(v, sizes) for k, v in node.value)
    sizes[key] = total
    return total


class _Builder:
    def __init__(self, src: Source) -> None:
        self.src = src

    def _issue(self, node: yaml.Node, message: str, path: Path_, hint: str | None = None,
               code: str = "yaml") -> None:
        loc = Location(self.src.path, node.start_mark.line + 1, node.start_mark.column + 1)
        self.src.issues.append(SpecIssue(message, loc, path, hint=hint, code=code))

    def check_size(self, root: yaml.Node) -> bool:
        """Refuse documents whose aliases expand to too many nodes (billion laughs)."""
        sizes: dict[int, int] = {}
        aliased = 0

        seen: set[int] = set()
        stack: list[yaml.Node] = [root]
        while stack:
            node = stack.pop()
            children = (node.value if isinstance(node, yaml.SequenceNode)
                        else [n for kv in node.value for n in kv]
                        if isinstance(node, yaml.MappingNode) else [])
            for child in children:
                if id(child) in seen:
                    aliased += _size(child, sizes)
                else:
                    seen.add(id(child))
                    stack.append(child)
            if aliased > MAX_ALIAS_NODES:
                self._issue(root, f"YAML aliases expand to more than {MAX_ALIAS_NODES:,} nodes "
                            "(an alias bomb?)", (), "use fewer or smaller anchors")
                return False
        if _size(root, sizes) > MAX_NODES:
            self._issue(root, f"document has more than {MAX_NODES:,} nodes", ())
            return False
        return True

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.src.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag not in (_STD + "seq",):
                self._issue(node, f"unsupported YAML tag {node.tag!r}", path)
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != _STD + "map":
            self._issue(node, f"unsupported YAML tag {node.tag!r}", path)
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        for key_node, value_node in self._merged(node, path):
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STD + "str":
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                self._issue(key_node, f"keys must be strings, got {shown!r}", path,
                            "quote the key", code="key")
                continue
            key = key_node.value
            if key in first_seen:
                self._issue(key_node, f"duplicate key {key!r} (first defined at line "
                            f"{first_seen[key]})", path, "remove one of them", code="duplicate")
                continue
            first_seen[key] = key_node.start_mark.line + 1
            child = (*path, key)
            self.src.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        return out

    def _merged(self, node: yaml.MappingNode, path: Path_) -> list[tuple[yaml.Node, yaml.Node]]:
        """The mapping's pairs with `<<` merge keys applied (explicit keys win)."""
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _STD + "merge":
                sources = (value_node.value if isinstance(value_node, yaml.SequenceNode)
                           else [value_node])
                for source in sources:
                    if not isinstance(source, yaml.MappingNode):
                        self._issue(source, "a `<<` merge needs a mapping", path)
                        continue
                    merged.extend(self._merged(source, path))
            else:
                pairs.append((key_node, value_node))
        explicit = {k.value for k, _ in pairs if isinstance(k, yaml.ScalarNode)}
        seen: set[str] = set()
        for key_node, value_node in merged:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if name not in explicit and name not in seen:
                seen.add(str(name))
                pairs.append((key_node, value_node))
        return pairs

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        tag, value = node.tag, node.value
        if tag == _STD + "str":
            self.src.scalars[path] = (node.start_mark.line + 1, node.start_mark.column + 1,
                                      node.style)
            return value
        if tag == _STD + "null":
            return None
        if tag == _STD + "bool":
            return value.lower() == "true"
        if tag == _STD + "int":
            return _to_int(value)
        if tag == _STD + "float":
            low = value.lower()
            return _SPECIAL_FLOATS.get(low, math.nan if low.endswith("nan") else None) \
                if "inf" in low or "nan" in low else float(value)
        self._issue(node, f"unsupported YAML tag {tag!r}", path, "remove the tag")
        return value


def _to_int(value: str) -> int:
    sign = -1 if value.startswith("-") else 1
    digits = value.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits)
