"""The user docs stay true to the code: every YAML block is a workflow, a fragment of one that
validates against the spec models, or is explicitly marked as something else; every link
between the pages resolves; every `plait ...` command line quoted in prose uses flags that the
command has; every environment variable a page names is one the code reads.

Complete workflows are loaded in full by tests/spec/test_docs_examples.py; here the fragments
(`mcp_servers:` blocks, a step's keys) are checked structurally, so a renamed or misspelt key
in a doc fails a test instead of a reader's workflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import ValidationError

from engine.spec.models import (
    LLMStep,
    MCPPromptStep,
    ResourceStep,
    RunStep,
    ToolStep,
    WorkflowSpec,
    WorkflowStep,
)
from runners.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
GENERATED = {"cli.md", "spec-reference.md"}
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
#: written on the line before a ```yaml fence whose YAML is not a plait workflow (a GitHub
#: Actions file, a cassette excerpt)
NOT_A_WORKFLOW = "<!-- not a workflow"
_FENCE = re.compile(r"^(\s*)```(\S*)")
#: placeholder for the key that makes a step of each kind
_STEP_KINDS: list[tuple[type[Any], dict[str, Any]]] = [
    (RunStep, {"run": "true"}), (LLMStep, {"llm": "p"}), (ToolStep, {"tool": "s.t"}),
    (WorkflowStep, {"workflow": "w.yaml"}), (ResourceStep, {"resource": "s", "uri": "u"}),
    (MCPPromptStep, {"mcp_prompt": "s.p"}),
]
_KIND_KEYS = {"run", "llm", "tool", "workflow", "resource", "mcp_prompt"}


def _yaml_blocks() -> Iterator[tuple[str, str, bool]]:
    """(where, text, marked) for every ```yaml block of the hand-written pages."""
    for page in PAGES:
        if page.name in GENERATED:
            continue
        lines = page.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            fence = _FENCE.match(lines[i])
            if not fence:
                i += 1
                continue
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith("```")), len(lines))
            if fence.group(2) in ("yaml", "yml"):
                indent = len(fence.group(1))
                before = [x for x in lines[:i] if x.strip()]
                marked = bool(before) and before[-1].strip().startswith(NOT_A_WORKFLOW)
                text = "\n".join(x[indent:] for x in lines[i + 1:end]) + "\n"
                yield f"{page.relative_to(ROOT)}:{i + 1}", text, marked
            i = end + 1


BLOCKS = list(_yaml_blocks())


def _as_step(body: dict[str, Any]) -> list[str]:
    """Problems of `body` as the keys of one step (empty: some step kind accepts it)."""
    problems = []
    for model, placeholder in _STEP_KINDS:
        if _KIND_KEYS & body.keys() and not placeholder.keys() & body.keys():
            continue  # the block names its kind: only that kind is tried
        try:
            model.model_validate({**placeholder, **body})
            return []
        except ValidationError as exc:
            problems.append(f"as {model.__name__}: {exc}")
    return problems


def _check_fragment(data: dict[str, Any]) -> list[str]:
    fields = set(WorkflowSpec.model_fields) | {"on"}
    if data.keys() <= fields:  # top-level keys of a workflow file
        scaffold: dict[str, Any] = {"version": 1, "name": "fragment",
                                    "steps": {"a": {"run": "true"}}, **data}
        try:
            WorkflowSpec.model_validate(scaffold)
        except ValidationError as exc:
            return [str(exc)]
        return []
    return _as_step(data)


def test_the_docs_have_yaml_blocks() -> None:
    assert len(BLOCKS) >= 20
    assert any(marked for _, _, marked in BLOCKS)


@pytest.mark.parametrize(("where", "text", "marked"), BLOCKS, ids=[w for w, _, _ in BLOCKS])
def test_yaml_block_is_a_workflow_or_a_valid_fragment(where: str, text: str,
                                                      marked: bool) -> None:
    if marked:
        pytest.skip("marked as not a plait workflow")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), f"{where}: a YAML block should be a mapping"
    if True in data:  # YAML 1.1 reads the key `on` as true; plait's loader does not
        data["on"] = data.pop(True)
    if "version" in data and "steps" in data:
        return  # a complete workflow: tests/spec/test_docs_examples.py loads it in full
    problems = _check_fragment(data)
    assert not problems, (
        f"{where}: this YAML is neither a workflow, nor workflow keys, nor the keys of a "
        f"step that validate (if it is not meant to be plait YAML, write "
        f"`{NOT_A_WORKFLOW} -->` on the line before it):\n" + "\n".join(problems))


def test_a_misspelt_fragment_fails() -> None:
    assert _check_fragment({"prompt": "hi", "foreach": [1]}) == []
    assert _check_fragment({"mcp_servers": {"f": {"command": "x"}}}) == []
    assert _check_fragment({"promt": "hi"})
    assert _check_fragment({"mcp_servers": {"f": {"comand": "x"}}})


# --- links -----------------------------------------------------------------------------

def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of `page`."""
    out = set()
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    for heading in re.findall(r"^#+\s+(.*)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def _links() -> Iterator[tuple[str, str]]:
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if not link.startswith(("http://", "https://", "mailto:")):
                yield str(page.relative_to(ROOT)), link


def test_links_between_pages_resolve() -> None:
    broken = []
    for where, link in _links():
        path, _, anchor = link.partition("#")
        target = (ROOT / where).parent / path if path else ROOT / where
        if not target.exists():
            broken.append(f"{where}: {link} (no such file)")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{where}: {link} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


# --- CLI flags quoted in prose -----------------------------------------------------------

_CTX = click.Context(cli)


def _resolve(group: click.Command, words: list[str]) -> tuple[click.Command, int]:
    command, used = group, 0
    while used < len(words) and isinstance(command, click.Group):
        sub = command.get_command(_CTX, words[used])
        if sub is None:
            break
        command, used = sub, used + 1
    return command, used


def _options(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        names.update(param.opts + param.secondary_opts)
    return names


def _segments(text: str) -> list[str]:
    """`text` cut at each `|` outside [...] (alternatives), up to a backtick, `;` or `#`."""
    depth, current, out = 0, "", []
    for i, char in enumerate(text):
        if char in "`;" or (char == "#" and (i == 0 or text[i - 1] == " ")):
            break
        depth += {"[": 1, "]": -1}.get(char, 0)
        depth = max(depth, 0)
        if char == "|" and depth == 0:
            out.append(current)
            current = ""
            continue
        current += char
    return [*out, current]


def unknown_flags(line: str) -> list[str]:
    """Flags that a `plait COMMAND ...` in `line` gives but COMMAND does not have."""
    bad = []
    for match in re.finditer(r"(?<![\w/.-])plait (?=[a-z])", line):
        parent: click.Command = cli
        for k, segment in enumerate(_segments(line[match.end():])):
            words = segment.split()
            if k and words[:1] == ["plait"]:
                words, parent = words[1:], cli
            command, used = _resolve(parent, words)
            if not used:
                if k == 0:
                    break
                continue
            if k == 0 and used > 1:  # `runs list | show ID`: the others are siblings
                parent = _resolve(cli, words[:used - 1])[0]
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])(?![\w-])",
                                   " ".join(words[used:])):
                if flag not in _options(command):
                    bad.append(f"`plait {command.name}` has no {flag}")
    return bad


def test_unknown_flags_are_found() -> None:
    assert unknown_flags("`plait run wf.yaml --json --no-record`") == []
    assert unknown_flags("plait runs list | show RUN_ID | report RUN_ID --html x.html") == []
    assert unknown_flags("`plait run wf.yaml --jsn`") == ["`plait run` has no --jsn"]
    assert unknown_flags("plait runs list | show RUN_ID --html x") == [
        "`plait show` has no --html"]


def test_cli_flags_in_the_docs_exist() -> None:
    bad = []
    for page in PAGES:
        if page.name in GENERATED:
            continue
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            bad += [f"{page.relative_to(ROOT)}:{number}: {problem}"
                    for problem in unknown_flags(line)]
    assert not bad, "\n".join(bad)


# --- flags of the bundled MCP servers ----------------------------------------------------

def _server_flags() -> dict[str, set[str]]:
    """The options each bundled server's --help lists."""
    import contextlib
    import importlib
    import io

    flags = {}
    for name in ("files", "web", "data"):
        module = importlib.import_module(f"engine.mcp.servers.{name}")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            module.main(["--help"])
        flags[f"plait-mcp-{name}"] = set(re.findall(r"--[a-z][a-z-]*", out.getvalue()))
    return flags


def _server_mentions() -> Iterator[tuple[str, str, list[str]]]:
    """(where, server, flags) for every command line of a bundled server in the docs, and
    every `args:` of a YAML server entry whose `command:` is one."""
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            for match in re.finditer(r"(?<![\w-])(plait-mcp-(?:files|web|data))((?:[^`#\n])*)",
                                     line):
                yield (f"{page.relative_to(ROOT)}:{number}", match.group(1),
                       re.findall(r"(?<![\w-])--[a-z][a-z-]*", match.group(2)))
    for where, text, marked in BLOCKS:
        data = None if marked else yaml.safe_load(text)
        servers = data.get("mcp_servers") if isinstance(data, dict) else None
        for spec in (servers or {}).values():
            command = spec.get("command") if isinstance(spec, dict) else None
            if isinstance(command, str) and command.startswith("plait-mcp-"):
                yield where, command, [a for a in spec.get("args", []) if str(a).startswith("--")]


def test_bundled_server_flags_in_the_docs_exist() -> None:
    known = _server_flags()
    mentions = list(_server_mentions())
    assert len(mentions) > 10
    bad = [f"{where}: {server} has no {flag}" for where, server, flags in mentions
           for flag in flags if flag not in known[server]]
    assert not bad, "\n".join(bad)


# --- environment variables named in the docs ---------------------------------------------

_ENV_NAME = re.compile(r"(?<![\w$])((?:PLAIT|MCP|SECURITY|OTEL|OPENAI|ANTHROPIC|GOOGLE|GEMINI"
                       r"|AZURE)_[A-Z0-9_]*[A-Z0-9])(?![\w*])")
#: read by the OpenTelemetry SDK itself (`Resource.create()`), not by plait's code
_READ_BY_THE_SDK = {"OTEL_SERVICE_NAME"}


def env_names(text: str) -> set[str]:
    """The environment variables of plait, its vendors and OpenTelemetry that `text` names
    (`OTEL_EXPORTER_OTLP_*`, a family, is not a name)."""
    return set(_ENV_NAME.findall(text))


def test_env_names_are_found() -> None:
    assert env_names("set `PLAIT_STATE_URL` or MCP_SERVER_TIMEOUT=5; `OTEL_EXPORTER_OTLP_*`"
                     " and ${{ secrets.OPENAI_API_KEY }}") == {
        "PLAIT_STATE_URL", "MCP_SERVER_TIMEOUT", "OPENAI_API_KEY"}


def test_environment_variables_in_the_docs_are_read_by_the_code() -> None:
    """A variable a page tells users to set is one the code reads (a string literal in
    engine/ or runners/), so a misspelt or renamed variable in the docs fails here."""
    code = "\n".join(path.read_text(encoding="utf-8") for folder in ("engine", "runners")
                     for path in (ROOT / folder).rglob("*.py"))
    unknown = sorted(f"{page.relative_to(ROOT)}: {name}" for page in PAGES
                     for name in env_names(page.read_text(encoding="utf-8"))
                     if name not in _READ_BY_THE_SDK
                     and f'"{name}"' not in code and f"'{name}'" not in code)
    assert not unknown, "\n".join(unknown)
