"""Every complete workflow shown in the docs and the README is valid as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```ya?ml\n(.*?)```", re.S)


def _examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")]):
        for number, block in enumerate(_BLOCK.findall(page.read_text(encoding="utf-8"))):
            if re.search(r"^version: 1$", block, re.M) and re.search(r"^steps:", block, re.M):
                found.append((f"{page.relative_to(ROOT)}#{number}", block))
    return found


EXAMPLES = _examples()


def test_the_docs_have_complete_examples() -> None:
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize(("where", "text"), EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_example_is_a_valid_workflow(where: str, text: str, tmp_path: Path) -> None:
    # sub-workflow files an example names are created empty-valid next to it
    for name in re.findall(r"workflow:\s*([\w./-]+\.ya?ml)", text):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("version: 1\nname: child\nsteps:\n  a: {run: 'true'}\n")
    try:
        load_text(text, str(tmp_path / "example.yaml"))
    except SpecError as exc:
        pytest.fail(f"{where}:\n{exc.format()}")
