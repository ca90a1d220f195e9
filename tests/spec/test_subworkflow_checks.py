"""Validation follows `workflow:` steps into the files they call: missing, invalid, recursive
or too deeply nested sub-workflows are spec errors at the calling `workflow:` field, before
anything runs, and each file is checked once however many paths lead to it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec import subworkflows
from engine.spec.loader import load, load_text
from tests.cli.test_cli import plait

ECHO = "providers:\n  e: {kind: echo}\nsteps:\n  s:\n    llm: e\n    prompt: hi\n"


def calls(name: str, *targets: str) -> str:
    """A workflow `name` whose steps call `targets` (an echo step when there are none)."""
    if not targets:
        return f"version: 1\nname: {name}\n{ECHO}"
    steps = "".join(f"  c{i}:\n    workflow: {t}\n" for i, t in enumerate(targets))
    return f"version: 1\nname: {name}\nsteps:\n{steps}"


def messages(error: SpecError) -> list[str]:
    return [i.format() for i in error.issues]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often validation reads each sub-workflow file (the real reader, counted)."""
    counted: Counter[str] = Counter()
    real = subworkflows.read

    def read(path: Path, **kwargs: object) -> object:
        counted[Path(path).name] += 1
        return real(path)

    monkeypatch.setattr(subworkflows, "read", read)
    return counted


def test_a_diamond_is_checked_once_per_file_and_its_errors_shown_once(
        tmp_path: Path, reads: Counter[str]) -> None:
    (tmp_path / "a.yaml").write_text(calls("a", "b.yaml", "c.yaml"))
    (tmp_path / "b.yaml").write_text(calls("b", "d.yaml"))
    (tmp_path / "c.yaml").write_text(calls("c", "d.yaml"))
    (tmp_path / "d.yaml").write_text("version: 1\nname: d\nsteps:\n  s:\n    run: ls\n"
                                     "    promt: x\n")
    with pytest.raises(SpecError) as info:
        load(tmp_path / "a.yaml")
    shown = [m.split(" at ")[0] for m in messages(info.value)]
    top = str(tmp_path)
    assert shown == [
        f"{top}/a.yaml:5:15: sub-workflow b.yaml is not a valid workflow (2 errors, shown "
        "below)",
        f"{top}/a.yaml:7:15: sub-workflow c.yaml is not a valid workflow (2 errors, shown "
        "below)",
        f"{top}/b.yaml:5:15: sub-workflow d.yaml is not a valid workflow (1 error, shown "
        "below)",
        f"{top}/c.yaml:5:15: sub-workflow d.yaml is not a valid workflow (1 error, shown "
        "below)",
        f"{top}/d.yaml:6:5: unknown key 'promt'"]
    assert reads == {"b.yaml": 1, "c.yaml": 1, "d.yaml": 1}


def test_a_ladder_of_diamonds_is_checked_in_one_pass(tmp_path: Path,
                                                     reads: Counter[str]) -> None:
    """7 levels of 5 files, each calling all 5 of the next: 5**6 paths from the top, 31
    files. Checked path by path it would never end; file by file it reads each once."""
    for level in range(7):
        for k in range(5):
            below = [f"l{level + 1}_{j}.yaml" for j in range(5)] if level < 6 else []
            (tmp_path / f"l{level}_{k}.yaml").write_text(calls(f"l{level}_{k}", *below))
    (tmp_path / "top.yaml").write_text(calls("top", "l0_0.yaml"))
    workflow = load(tmp_path / "top.yaml")
    assert workflow.name == "top"
    assert len(reads) == 31 and set(reads.values()) == {1}


def test_a_cycle_below_the_file_is_found_once_and_reported_at_each_call_into_it(
        tmp_path: Path) -> None:
    (tmp_path / "top.yaml").write_text(calls("top", "b.yaml", "c.yaml", "leaf.yaml"))
    (tmp_path / "b.yaml").write_text(calls("b", "c.yaml"))
    (tmp_path / "c.yaml").write_text(calls("c", "leaf.yaml", "b.yaml"))
    (tmp_path / "leaf.yaml").write_text(calls("leaf"))
    with pytest.raises(SpecError) as info:
        load(tmp_path / "top.yaml")
    assert [m.split(" (")[0] for m in messages(info.value)] == [
        f"{tmp_path}/top.yaml:5:15: sub-workflow b.yaml calls itself: b.yaml -> c.yaml -> "
        "b.yaml at 'steps.c0.workflow'",
        f"{tmp_path}/top.yaml:7:15: sub-workflow c.yaml calls itself: c.yaml -> b.yaml -> "
        "c.yaml at 'steps.c1.workflow'"]
    assert info.value.issues[0].hint == (
        "a workflow cannot call itself, directly or through others; move the steps they "
        "share into a file that calls neither")


def test_a_workflow_held_in_a_string_has_its_sub_workflows_checked_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop.yaml").write_text(calls("loop", "loop.yaml"))
    (tmp_path / "ok.yaml").write_text(calls("ok"))
    with pytest.raises(SpecError) as info:
        load_text(calls("inline", "loop.yaml", "ok.yaml", "gone.yaml"))
    assert [m.split(" (")[0] for m in messages(info.value)] == [
        "<string>:5:15: sub-workflow loop.yaml calls itself: loop.yaml -> loop.yaml at "
        "'steps.c0.workflow'",
        "<string>:9:15: sub-workflow file 'gone.yaml' not found at 'steps.c2.workflow'"]


def test_a_long_chain_is_refused_at_its_first_call_without_following_it_to_the_end(
        tmp_path: Path) -> None:
    """300 files in a chain: too deep for a run at the first call; no RecursionError."""
    for i in range(300):
        (tmp_path / f"d{i}.yaml").write_text(
            calls(f"d{i}", *([f"d{i + 1}.yaml"] if i < 299 else [])))
    with pytest.raises(SpecError) as info:
        load(tmp_path / "d0.yaml")
    (message,) = messages(info.value)
    assert message.startswith(
        f"{tmp_path}/d0.yaml:5:15: sub-workflows nested 300 levels deep through d1.yaml, "
        "deeper than the 8 a run allows: d0.yaml -> d1.yaml -> d2.yaml -> d3.yaml -> d4.yaml "
        "-> d5.yaml -> d6.yaml -> d7.yaml -> d8.yaml -> ... at 'steps.c0.workflow'"), message


def test_the_deepest_of_several_branches_decides(tmp_path: Path) -> None:
    """One branch of 8 files is fine; one of 9 through the same child is not."""
    for i in range(1, 9):
        (tmp_path / f"d{i}.yaml").write_text(
            calls(f"d{i}", *([f"d{i + 1}.yaml"] if i < 8 else [])))
    (tmp_path / "fine.yaml").write_text(calls("fine", "d2.yaml", "d5.yaml"))
    assert load(tmp_path / "fine.yaml").name == "fine"  # fine -> d2 ... d8: 8 files
    (tmp_path / "deep.yaml").write_text(calls("deep", "d5.yaml", "d1.yaml"))
    with pytest.raises(SpecError) as info:
        load(tmp_path / "deep.yaml")
    (message,) = messages(info.value)
    assert message.startswith(f"{tmp_path}/deep.yaml:7:15: sub-workflows nested 9 levels "
                              "deep through d1.yaml"), message


def test_a_grandchild_missing_or_recursing_stops_the_run_before_any_step(
        tmp_path: Path) -> None:
    """`plait run` validates the whole tree of literal sub-workflow paths up front: the
    parent's own steps do not start when a file it reaches is missing or recursive."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "parent.yaml").write_text(
        "version: 1\nname: parent\npolicies:\n  lo: {level: low}\ndefaults: {policy: lo}\n"
        "steps:\n  first:\n    run: touch first-ran\n  kid:\n    needs: [first]\n"
        "    workflow: sub/kid.yaml\n")
    (tmp_path / "sub" / "kid.yaml").write_text(calls("kid", "../gone.yaml"))
    out = plait("run", "parent.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.splitlines() == [
        "parent.yaml:11:15: sub-workflow sub/kid.yaml is not a valid workflow (1 error, shown "
        "below) at 'steps.kid.workflow' (fix it in sub/kid.yaml)",
        "sub/kid.yaml:5:15: sub-workflow file '../gone.yaml' not found at "
        "'steps.c0.workflow' (paths are relative to this workflow file)"]
    (tmp_path / "gone.yaml").write_text(calls("gone", "sub/kid.yaml"))
    out = plait("run", "parent.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith(
        "parent.yaml:11:15: sub-workflow sub/kid.yaml calls itself: sub/kid.yaml -> gone.yaml "
        "-> sub/kid.yaml at 'steps.kid.workflow'"), out.stderr
    assert not (tmp_path / "first-ran").exists() and not (tmp_path / ".plait").exists()
    out = plait("validate", "--json", "parent.yaml", cwd=tmp_path)
    error = json.loads(out.stdout)["errors"][0]
    assert (error["file"], error["line"], error["column"], error["code"]) == (
        "parent.yaml", 11, 15, "file")


@pytest.mark.parametrize(("value", "got"), [
    ("yes", 'string "yes"'),  # YAML 1.2: a string, shown in JSON's double quotes
    ("true", "boolean true"),
    ("{a: [1, null]}", 'object {"a": [1, null]}'),
    ("'" + "z" * 50 + "'", 'string "' + "z" * 36 + '...'),
])
def test_a_literal_with_value_of_the_wrong_type_is_worded_as_the_run_words_it(
        tmp_path: Path, value: str, got: str) -> None:
    """Like the error the sub-workflow's run gives (engine/executor/inputs.py): JSON type
    names and values, not Python's repr ('yes', True, None)."""
    (tmp_path / "child.yaml").write_text(
        f"version: 1\nname: child\ninputs:\n  n: {{type: integer}}\n{ECHO}")
    (tmp_path / "wf.yaml").write_text(
        f"version: 1\nname: wf\nsteps:\n  c:\n    workflow: child.yaml\n"
        f"    with: {{n: {value}}}\n")
    with pytest.raises(SpecError) as info:
        load(tmp_path / "wf.yaml")
    [issue] = info.value.issues
    assert (issue.message, issue.hint) == (
        f"sub-workflow child.yaml: input 'n' must be of type integer, got {got}",
        "give it an integer")


CHILD = ("version: 1\nname: child\ninputs:\n  n: {type: integer, default: 1}\n" + ECHO +
         "outputs:\n  summary: ${{ steps.s.output }}\n  count: ${{ inputs.n }}\n")


def test_reading_an_output_the_sub_workflow_does_not_declare_is_refused(tmp_path: Path) -> None:
    # the reading step would fail only after the sub-workflow had run
    (tmp_path / "child.yaml").write_text(CHILD)
    (tmp_path / "empty.yaml").write_text(calls("empty"))
    parent = tmp_path / "parent.yaml"
    text = ("version: 1\nname: parent\nproviders:\n  e: {kind: echo}\nsteps:\n"
            "  sub: {workflow: child.yaml}\n  none: {workflow: empty.yaml}\n"
            "  each: {workflow: child.yaml, foreach: [1, 2]}\n"
            "  use:\n    llm: e\n    prompt: |\n      Ok: ${{ steps.sub.output.summary }}\n"
            "      Not: ${{ steps.sub.output['summry'] }} ${{ steps.each.output.x }}\n"
            "outputs:\n  all: ${{ steps.sub.output }}\n  n: ${{ steps.sub.output.count }}\n"
            "  x: ${{ steps.none.output.x }}\n")
    parent.write_text(text)
    with pytest.raises(SpecError) as info:
        load(parent)
    [typo, none] = info.value.issues
    assert typo.message == ("steps.sub.output has no key 'summry': sub-workflow child.yaml "
                            "declares the outputs count, summary")
    assert typo.hint == "did you mean 'summary'?"
    assert (typo.location.line, typo.location.column) == (13, 12)
    assert typo.path == ("steps", "use", "prompt")
    assert none.message == ("steps.none.output has no key 'x': sub-workflow empty.yaml "
                            "declares no outputs")
    assert none.hint == "add `x:` to the `outputs:` of empty.yaml"
    assert none.path == ("outputs", "x")
