"""Resume edges found in review: which edits of the workflow a resume accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.errors import InputError, StateError
from engine.state import RunStore
from tests.executor.test_semantics import run, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    with RunStore.open(tmp_path / "runs.db") as opened:
        yield opened


async def test_a_finished_step_removed_from_the_file_is_ignored(
        tmp_path: Path, store: RunStore) -> None:
    """docs/run-records.md: 'a step that is no longer in the file is ignored'. A finished
    step deleted from the file was refused as 'the workflow changed for finished step(s)'."""
    path = workflow(tmp_path, """\
steps:
  a: {run: "echo a >> ran.log"}
  leaf: {run: "echo leaf >> ran.log"}
  b:
    needs: [a]
    run: "test -e fixed && echo b >> ran.log"
""")
    first = await run(path, store=store)
    assert first.status == "failed"
    path.write_text(path.read_text().replace('  leaf: {run: "echo leaf >> ran.log"}\n', ""))
    (tmp_path / "fixed").touch()
    second = await run(path, store=store, resume=first.run_id)
    assert second.ok
    assert second.steps["a"].reason.startswith("restored")
    assert sorted((tmp_path / "ran.log").read_text().split()) == ["a", "b", "leaf"]


@pytest.mark.parametrize(("had", "given"), [([1], [True]), ({"n": 0}, {"n": False}),
                                            (2, 2.0)])
async def test_an_input_equal_only_in_python_is_a_changed_input(
        tmp_path: Path, store: RunStore, had: object, given: object) -> None:
    """[1] == [True] and 2 == 2.0 in Python, but a step renders them differently ("[1]" and
    "[true]"): such a value given to a resume was taken as the run's own, and the resumed
    steps ran with another value than the finished ones (the record kept the new one)."""
    kind = {list: "array", dict: "object", int: "number"}[type(had)]
    path = workflow(tmp_path, f"""\
inputs:
  x: {{type: {kind}}}
steps:
  a: {{run: "echo a >> ran.log"}}
  b:
    needs: [a]
    run: "test -e fixed"
""")
    first = await run(path, {"x": had}, store=store)
    assert first.status == "failed"
    (tmp_path / "fixed").touch()
    with pytest.raises(InputError, match="input 'x' differs from run"):
        await run(path, {"x": given}, store=store, resume=first.run_id)
    assert store.get_run(first.run_id).inputs == {"x": had}
    again = await run(path, {"x": had}, store=store, resume=first.run_id)  # the same: taken
    assert again.ok and again.steps["a"].reason.startswith("restored")


async def test_a_step_removed_by_one_resume_and_added_back_runs_again(
        tmp_path: Path, store: RunStore) -> None:
    """Its record is from before the removal, and the text the run last ran does not have
    it: it is a new step (it runs), not a finished one that changed (which refuses)."""
    leaf = '  leaf: {run: "echo leaf >> ran.log"}\n'
    path = workflow(tmp_path, f"""\
steps:
  a: {{run: "echo a >> ran.log"}}
{leaf}  b:
    needs: [a]
    run: "test -e fixed && echo b >> ran.log"
""")
    text = path.read_text()
    first = await run(path, store=store)
    path.write_text(text.replace(leaf, ""))
    second = await run(path, store=store, resume=first.run_id)
    assert first.status == second.status == "failed"
    path.write_text(text.replace("echo leaf", "echo leaf2"))
    (tmp_path / "fixed").touch()
    third = await run(path, store=store, resume=first.run_id)
    assert third.ok
    assert third.steps["a"].reason.startswith("restored")
    assert not (third.steps["leaf"].reason or "").startswith("restored")
    assert sorted((tmp_path / "ran.log").read_text().split()) == ["a", "b", "leaf", "leaf2"]


async def test_an_undeclared_input_that_held_a_secret_is_not_asked_for_again(
        tmp_path: Path, store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume asked for it ('give them again, with the values the run had: -i
    auth=...'), and once given refused it as undeclared: the first message led nowhere."""
    monkeypatch.setenv("REVIEW_TOKEN", "s3cr3t-review-9")
    declared = "  auth: {type: string}\n"
    path = workflow(tmp_path, f"""\
secrets: [REVIEW_TOKEN]
inputs:
{declared}  n: {{type: integer, default: 1}}
steps:
  a: {{run: "echo a >> ran.log"}}
  b:
    needs: [a]
    run: "test -e fixed"
""")
    first = await run(path, {"auth": "Bearer s3cr3t-review-9"}, store=store)
    assert first.status == "failed"
    assert store.get_run(first.run_id).meta["masked_inputs"] == ["auth"]
    path.write_text(path.read_text().replace(declared, ""))
    with pytest.raises(InputError, match="had input 'auth', which the workflow no longer "
                                         "declares"):
        await run(path, store=store, resume=first.run_id)


_USES = """\
version: 1
name: uses
defaults:
  policy: open
providers:
  m: {kind: echo}
mcp_servers:
  files: {command: plait-mcp-files, args: ["."], policy: open}
policies:
  open: {level: low}
  other: {level: low}
steps:
  a: {run: "echo a >> ran.log"}
  said: {llm: m, prompt: hi}
  b:
    needs: [a, said]
    run: "test -e fixed && echo b >> ran.log"
"""


@pytest.mark.parametrize(("edit", "reused"), [
    # what no finished step uses: the step that failed may be moved onto it
    (("providers:\n", "providers:\n  m2: {kind: echo}\n"), True),
    (("policies:\n", "policies:\n  third: {level: medium}\n"), True),
    (("mcp_servers:\n", "mcp_servers:\n  more: {command: plait-mcp-files, args: [.]}\n"), True),
    (("  other: {level: low}", "  other: {level: medium}"), True),
    # what a finished step uses: `said` uses m, `a` the default policy `open`
    (("  m: {kind: echo}", "  m: {kind: echo, options: {reply: other}}"), False),
    (("  m: {kind: echo}", "  m: {kind: echo, fallback: [m2]}\n  m2: {kind: echo}"), False),
    (("  open: {level: low}", "  open: {level: low, env: [HOME]}"), False),
])
async def test_a_resume_compares_only_the_providers_servers_and_policies_a_step_uses(
        tmp_path: Path, store: RunStore, edit: tuple[str, str], reused: bool) -> None:
    """Adding a provider (or server, or policy) for the step that failed refused the whole
    resume, because every step's fingerprint held all of them: the finished steps would have
    been paid for again in a new run."""
    path = tmp_path / "uses.yaml"
    path.write_text(_USES)
    first = await run(path, store=store)
    assert first.status == "failed"
    path.write_text(path.read_text().replace(*edit))
    (tmp_path / "fixed").touch()
    if not reused:
        with pytest.raises(StateError, match="changed for finished step"):
            await run(path, store=store, resume=first.run_id)
        return
    second = await run(path, store=store, resume=first.run_id)
    assert second.ok, second.error
    assert second.steps["a"].reason.startswith("restored")
    assert second.steps["said"].reason.startswith("restored")
    assert (tmp_path / "ran.log").read_text().split() == ["a", "b"]
