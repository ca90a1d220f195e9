"""`plait runs report --html`: one self-contained, escaped page, checked in a real headless
Chromium (Debian's `chromium` package): it renders every step and logs no console message."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.state import RunStore
from tests.reporters.conftest import ROOT, WORKFLOW, plait

STEPS = ("fetch", "think", "never", "broken", "after")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "wf.yaml").write_text(WORKFLOW)
    run = plait("run", "wf.yaml", "--json", "--state", "runs.db", cwd=tmp)
    assert run.returncode == 0, run.stderr
    run_id = json.loads(run.stdout)["run_id"]
    out = plait("runs", "report", run_id, "--state", "runs.db", "--html", "out/report.html",
                cwd=tmp)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"wrote out/report.html (run {run_id}, 5 steps)"
    return tmp / "out" / "report.html"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_self_contained_and_escaped(report: Path) -> None:
    text = report.read_text()
    parser = _Tags()
    parser.feed(text)
    tags = [t for t, _ in parser.tags]
    assert tags.count("script") == 1 and "img" not in tags  # only the report's own script
    for tag, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            if name == "xmlns":  # a namespace name, never fetched
                continue
            assert not (value or "").startswith(("http:", "https:", "//")), (tag, name)
    assert "&lt;script&gt;console.error(&quot;xss&quot;)&lt;/script&gt;" in text
    assert not re.search(r"<link|@import|url\((?!#)", text)


def test_dag_and_timeline_show_every_step(report: Path) -> None:
    text = report.read_text()
    for sid in STEPS:
        assert f'<g class="node" data-step="step-{sid}"' in text
        assert f'<g class="bar" data-step="step-{sid}"' in text or sid == "never"
        assert f'<section class="step" id="step-{sid}">' in text
    assert 'fill="#d64541"/><text x' in text  # the failed step's node is red
    assert text.count('class="edge"') == 3  # fetch>think>broken>after


def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp}",
         "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=50, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(Debian: apt-get install -y chromium)")
def test_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    out = _chromium(["--dump-dom", report.as_uri()], tmp_path / "profile")
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    assert '<html lang="en" data-ready="yes">' in dom  # the page's script ran
    assert "</svg>" in dom
    for sid in STEPS:
        assert f'id="step-{sid}"' in dom, sid
    console = [line for line in out.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(Debian: apt-get install -y chromium)")
def test_console_errors_would_be_seen(tmp_path: Path) -> None:
    """The check above is not vacuous: a page that logs is caught the same way."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('seen')</script></body></html>")
    out = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert any(":CONSOLE" in line and "seen" in line for line in out.stderr.splitlines())


KILLED = """\
version: 1
name: killed
policies:
  open: {level: low}
defaults: {policy: open}
steps:
  quick:
    run: echo hi
  slow:
    needs: [quick]
    run: sleep 30
  last:
    needs: [slow]
    run: echo end
"""


def test_a_killed_run_shows_every_step_and_that_it_died(tmp_path: Path) -> None:
    """The record of a killed run holds only the steps that finished: the report still
    shows the others (as not recorded) and says the run died, as `plait runs show` does."""
    (tmp_path / "wf.yaml").write_text(KILLED)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml",
                             "--state", "runs.db"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        steps: list[str] = []
        while time.monotonic() < deadline and "quick" not in steps:
            time.sleep(0.1)
            if (tmp_path / "runs.db").exists():
                with RunStore.open(tmp_path / "runs.db") as store:
                    runs = store.list_runs()
                    steps = [s.step_id for s in store.steps(runs[0].run_id)] if runs else []
        assert steps == ["quick"]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    run_id = runs[0].run_id
    out = plait("runs", "report", run_id, "--state", "runs.db", "--html", "r.html",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.html").read_text()
    assert "<h1>killed: died</h1>" in text
    for sid in ("quick", "slow", "last"):
        assert f'<g class="node" data-step="step-{sid}"' in text, sid
        assert f'<section class="step" id="step-{sid}">' in text, sid
    assert text.count('class="edge"') == 2  # quick>slow>last
    assert text.count("no record of this step") == 2
    shown = plait("runs", "show", run_id, "--state", "runs.db", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "steps (1 recorded of 3)" in shown.stdout
    assert "  not recorded: slow, last (not finished when the run was last recorded)" in \
        shown.stdout


@pytest.mark.parametrize(("target", "why"), [
    ("afile/r.html", "afile is a file, not a directory"),
    ("adir", "it is a directory"),
])
def test_an_html_target_that_cannot_be_written_says_why(tmp_path: Path, target: str,
                                                        why: str) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    run = plait("run", "wf.yaml", "--json", "--state", "runs.db", cwd=tmp_path)
    run_id = json.loads(run.stdout)["run_id"]
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "adir").mkdir()
    out = plait("runs", "report", run_id, "--state", "runs.db", "--html", target, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (f"error: cannot write the HTML report to {target}: {why} (hint: give "
                          "--html the path of a file in a writable directory)\n")
    assert (tmp_path / "afile").read_text() == "a file" and not any((tmp_path / "adir").iterdir())


_MEASURE = """<script>
const out = [];
for (const svg of document.querySelectorAll('svg#timeline, svg#dag')) {
  const width = svg.viewBox.baseVal.width;
  for (const text of svg.querySelectorAll('text')) {
    const box = text.getBBox();
    if (box.x < 0 || box.x + box.width > width + 0.5) out.push(text.textContent);
    const rect = text.parentNode.querySelector('rect');
    if (svg.id === 'dag' && rect && (box.x < rect.getBBox().x ||
        box.x + box.width > rect.getBBox().x + rect.getBBox().width)) {
      out.push('node ' + text.textContent);
    }
  }
}
document.documentElement.dataset.outside = JSON.stringify(out);
</script>"""


LONG_IDS = """\
version: 1
name: long-ids
policies:
  open: {level: low}
defaults: {policy: open}
steps:
  WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW:
    run: echo hi
  mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm:
    needs: [WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW]
    run: echo hi
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(Debian: apt-get install -y chromium)")
@pytest.mark.parametrize("workflow", ["short", "long"])
def test_every_label_of_the_charts_is_drawn_inside_them(report: Path, tmp_path: Path,
                                                        workflow: str) -> None:
    # the last tick of the timeline (the run's duration) started at the chart's right edge
    # and was cut off ("3.1" of "3.14s"); long step ids in wide letters ran out of their
    # node in the graph and off the left edge of the timeline
    if workflow == "long":
        (tmp_path / "wf.yaml").write_text(LONG_IDS)
        run = plait("run", "wf.yaml", "--json", "--state", "runs.db", cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        out = plait("runs", "report", json.loads(run.stdout)["run_id"], "--state", "runs.db",
                    "--html", "report.html", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        report = tmp_path / "report.html"
    page = tmp_path / "measured.html"
    page.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    out = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile")
    assert out.returncode == 0, out.stderr[-2000:]
    found = re.search(r'data-outside="([^"]*)"', out.stdout)
    assert found is not None, out.stdout[:500]
    assert json.loads(found.group(1).replace("&quot;", '"')) == []
    if workflow == "long":  # cut with an ellipsis; the whole id is in the title
        assert "WWWW…</text>" in out.stdout
        assert "<title>WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW: succeeded</title>" in out.stdout


def test_token_counts_read_back_from_a_record_are_escaped_too(report: Path,
                                                              tmp_path: Path) -> None:
    """The report is built from a database file, which anyone who can write it can fill:
    even the usage figures (numbers when plait wrote them) are escaped."""
    import sqlite3

    db = report.parent.parent / "runs.db"
    copy = tmp_path / "runs.db"
    copy.write_bytes(db.read_bytes())
    hostile = {"input_tokens": "<script>alert(1)</script>", "output_tokens": '"><img src=x>'}
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE runs SET usage = ?", (json.dumps(hostile),))
        conn.execute("UPDATE steps SET usage = ?", (json.dumps(hostile),))
    run_id = json.loads(plait("runs", "list", "--state", str(copy), "--json",
                              cwd=tmp_path).stdout)[0]["run_id"]
    out = plait("runs", "report", run_id, "--state", str(copy), "--html", "r.html",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    parser = _Tags()
    parser.feed((tmp_path / "r.html").read_text())
    tags = [t for t, _ in parser.tags]
    assert tags.count("script") == 1 and "img" not in tags
