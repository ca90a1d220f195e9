"""Attack suite: hostile arguments to the bundled MCP servers (files, data, web).

A model chooses these arguments (an agent step's tool calls), so each tool must hold its
limits whatever it is given. Every HTTP server here binds 127.0.0.1; no test needs the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.mcp.servers import data, files, web
from engine.mcp.servers._common import Confined, PathOutsideRoot
from tests.http_site import local_site
from tests.security.sec_helpers import Canary

pytestmark = pytest.mark.anyio
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=20)


class Hostile(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with contextlib.suppress(OSError):  # the fetcher hangs up on the slow ones
            if self.path == "/drip":  # every byte well inside a read timeout, never done
                self._head("text/plain", 12)
                for _ in range(12):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.25)
            elif self.path.startswith("/to/"):  # /to/PORT: off to localhost:PORT
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{self.path[4:]}/")
                self.end_headers()
            elif self.path == "/nest":
                page = b"<ul><li>" * 4000
                self._head("text/html", len(page))
                self.wfile.write(page)
            elif self.path == "/ok":
                self._head("text/plain", 2)
                self.wfile.write(b"ok")
            elif self.path == "/charset":
                self._head("text/plain; charset=no-such-codec", 5)
                self.wfile.write(b"hello")

    def _head(self, ctype: str, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    with local_site(Hostile) as url:
        yield url


def web_rt(tmp_path: Path, allowed: tuple[str, ...] = ("127.0.0.1",),
           **kwargs: object) -> MCPRuntime:
    server = web.build(allowed, **kwargs)  # type: ignore[arg-type]
    return MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS, in_process={"web": server})


async def test_web_timeout_bounds_the_whole_request_not_each_read(tmp_path: Path,
                                                                   site: str) -> None:
    """A server dripping one byte every 0.25 s never trips a 1 s read timeout: the fetch
    took as long as the server liked (3 s here, forever for an endless body)."""
    async with web_rt(tmp_path, timeout_s=1.0) as mcp:
        with pytest.raises(ToolError, match=r"took more than 1 s to answer \(--timeout\)"):
            await mcp.call("web.fetch", {"url": f"{site}/drip"})


async def test_web_errors_say_what_went_wrong(tmp_path: Path, site: str) -> None:
    """An unknown charset failed the fetch and a refused connection came back as a bare
    'Error executing tool fetch' (the SDK hides the text of other exceptions)."""
    async with web_rt(tmp_path) as mcp:
        page = (await mcp.call("web.fetch", {"url": f"{site}/charset"})).value
        assert page["content"] == "hello"
        closed = "http://127.0.0.1:1/x"  # nothing listens on port 1
        with pytest.raises(ToolError, match=f"could not fetch '{closed}': "):
            await mcp.call("web.fetch", {"url": closed})


def files_rt(root: Path, **kwargs: object) -> MCPRuntime:
    server = files.build(root, **kwargs)  # type: ignore[arg-type]
    return MCPRuntime({}, base_dir=root.parent, settings=SETTINGS, in_process={"files": server})


async def test_files_a_symlink_loop_does_not_blind_the_server(tmp_path: Path) -> None:
    """One `loop -> loop` symlink anywhere in the root (anything that writes there can plant
    it) made list_directory and search_files fail for the whole tree, with no reason given."""
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("needle")
    os.symlink("loop", root / "loop")
    os.symlink("b", root / "docs" / "a")
    os.symlink("a", root / "docs" / "b")
    async with files_rt(root) as mcp:
        listing = (await mcp.call("files.list_directory", {"path": "."})).value
        assert {e["name"]: e["type"] for e in listing["entries"]} == \
            {"docs": "directory", "loop": "symlink"}
        found = (await mcp.call("files.search_files", {"pattern": "*", "contains": "needle"}))
        assert found.value["matches"] == ["docs/a.md"]
        for tool, args in (("read_file", {}), ("write_file", {"content": "x"})):
            with pytest.raises(ToolError, match="'docs/a' goes through a symlink loop"):
                await mcp.call(f"files.{tool}", {"path": "docs/a", **args})


def test_files_listing_a_directory_swapped_for_a_symlink_is_refused(tmp_path: Path) -> None:
    """list_directory resolved the path, then listed it by name: a directory swapped for a
    symlink in between (a concurrent writer in the root) listed the outside directory."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "id_rsa").write_text("x")
    box = Confined(root)
    target = box.resolve("sub")                   # the check passes
    (root / "sub").rename(root / "sub.old")       # then the swap
    (root / "sub").symlink_to(tmp_path / "outside")
    with pytest.raises(PathOutsideRoot):
        box.list_names(target, 100)
    assert box.list_names(box.resolve("sub.old"), 100) == ([], False)


async def test_files_listing_a_huge_directory_is_capped(tmp_path: Path) -> None:
    """Every entry of a directory came back in one answer, however many there were."""
    root = tmp_path / "root"
    (root / "many").mkdir(parents=True)
    for i in range(files.MAX_ENTRIES + 5):
        os.close(os.open(root / "many" / f"f{i:05d}", os.O_CREAT | os.O_WRONLY))
    async with files_rt(root) as mcp:
        listing = (await mcp.call("files.list_directory", {"path": "many"})).value
        assert len(listing["entries"]) == files.MAX_ENTRIES and listing["truncated"] is True
        small = (await mcp.call("files.list_directory", {"path": "."})).value
        assert small["entries"] == [{"name": "many", "type": "directory", "size": None}]
        assert small["truncated"] is False


async def test_files_search_says_when_it_stopped_walking(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A search that hit the walk limit answered `truncated: false`, so "no match" could mean
    "not looked at"; directories were not counted, so a tree of empty ones was walked whole."""
    root = tmp_path / "root"
    for i in range(8):
        (root / f"d{i}").mkdir(parents=True)
    (root / "d7" / "late.md").write_text("x")
    monkeypatch.setattr(files, "MAX_WALK", 5)
    async with files_rt(root) as mcp:
        found = (await mcp.call("files.search_files", {"pattern": "*.md"})).value
        assert found == {"matches": [], "truncated": True}
        whole = (await mcp.call("files.search_files", {"pattern": "*.md", "path": "d7"})).value
        assert whole == {"matches": ["d7/late.md"], "truncated": False}


async def test_data_answers_stay_bounded_and_valid_json(tmp_path: Path) -> None:
    """load's `preview` was not capped (preview: 10**9 sent back the whole table, up to the
    50 MB file limit, in one answer), and cells like `nan`, `inf` or 5000 digits became NaN
    and Infinity, which are not JSON: a client with a strict parser could not read the answer."""
    root = tmp_path / "tables"
    root.mkdir()
    (root / "t.csv").write_text("a,b\n" + "1,2\n" * 1500 + "nan,inf\n-Infinity," + "9" * 5000)
    async with MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                          in_process={"data": data.build(root)}) as mcp:
        loaded = (await mcp.call("data.load", {"path": "t.csv", "preview": 10**9})).value
        assert loaded["rows"] == 1502 and len(loaded["preview"]) == data.MAX_ROWS_OUT
        odd = (await mcp.call("data.filter", {
            "path": "t.csv", "where": [{"column": "a", "op": "!=", "value": 1}]}))
        json.loads(odd.text, parse_constant=_not_json)
        assert odd.value["rows"] == [{"a": "nan", "b": "inf"},
                                     {"a": "-Infinity", "b": "9" * 5000}]


def _not_json(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


async def test_data_bad_input_says_what_is_wrong(tmp_path: Path) -> None:
    """A CSV field over the csv module's limit, JSON nested 100,000 deep, NaN in a .json file
    and a condition or metric without a column came back as a bare 'Error executing tool'
    (or, for NaN, as an answer that is not JSON)."""
    root = tmp_path / "tables"
    root.mkdir()
    (root / "wide.csv").write_text("a\n" + "x" * 200_000 + "\n")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "nan.json").write_text('[{"a": NaN}]')
    (root / "ok.csv").write_text("a\n1\n")
    async with MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                          in_process={"data": data.build(root)}) as mcp:
        for path, said in (("wide.csv", "'wide.csv' is not a CSV/TSV file this server can read"),
                           ("deep.json", "'deep.json' nests JSON arrays or objects too deeply"),
                           ("nan.json", "NaN is not JSON")):
            with pytest.raises(ToolError, match=said):
                await mcp.call("data.load", {"path": path})
        with pytest.raises(ToolError, match=r"has no column; write \{column, op, value\}"):
            await mcp.call("data.filter", {"path": "ok.csv", "where": [{"op": "=="}]})
        with pytest.raises(ToolError, match=r"has no column; write \{column, op\}"):
            await mcp.call("data.aggregate", {"path": "ok.csv", "group_by": [],
                                              "metrics": [{"op": "sum"}]})


async def test_web_allowed_name_resolving_to_a_private_address_is_not_connected(
        tmp_path: Path, site: str, canary: Canary) -> None:
    """The allowlist was checked on names only: an allowed name whose DNS answer is
    127.0.0.1 (or 169.254.169.254, the cloud metadata service, or any private address) was
    fetched, given or reached by a redirect. `localhost` stands in for such a name here."""
    local = f"http://localhost:{canary.tcp_port}/"
    async with web_rt(tmp_path, ("127.0.0.1", "localhost")) as mcp:
        for url in (local, f"{site}/to/{canary.tcp_port}"):
            with pytest.raises(ToolError, match=r"localhost resolves to 127\.0\.0\.1, a "
                               r"loopback, private or link-local address; start the server "
                               r"with --allow-private-addresses"):
                await mcp.call("web.fetch", {"url": url})
        # an address on the list itself is the operator's explicit choice
        assert (await mcp.call("web.fetch", {"url": f"{site}/ok"})).value["content"] == "ok"
    assert canary.received == []
    port = site.rsplit(":", 1)[1]
    async with web_rt(tmp_path, ("localhost",), allow_private=True) as mcp:
        page = (await mcp.call("web.fetch", {"url": f"http://localhost:{port}/ok"})).value
        assert page["content"] == "ok"


def test_web_public_address_excludes_every_internal_range() -> None:
    internal = ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                "0.0.0.0", "100.64.0.1", "224.0.0.1", "::1", "::", "fe80::1%eth0", "fd00::1",
                "::ffff:127.0.0.1", "::ffff:169.254.169.254")
    assert [a for a in internal if web.public_address(a)] == []
    assert all(map(web.public_address, ("93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8")))


async def test_files_search_refuses_a_giant_pattern(tmp_path: Path) -> None:
    """fnmatch turns '[' * n into a regex in time quadratic in n (20,000 took 12 s of CPU):
    one hostile pattern kept the server busy for minutes."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.md").write_text("x")
    async with files_rt(root) as mcp:
        with pytest.raises(ToolError, match="pattern is 5000 characters, over the limit of 1000"):
            await mcp.call("files.search_files", {"pattern": "[" * 5000})
        assert (await mcp.call("files.search_files", {"pattern": "[a]*"})).value["matches"] == \
            ["a.md"]


class Counted:
    """A value that counts how often it is compared."""

    compared = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        Counted.compared += 1
        return isinstance(other, Counted) and other.value == self.value


def test_data_in_condition_is_a_lookup_not_a_scan() -> None:
    """`in` compared each row's cell with every value of the list: a model sending a list
    of 100,000 values (1 MB) over 20,000 rows kept the server busy for 30 s, and for as long
    as it liked over more. Comparisons are counted here, not timed."""
    rows = [{"a": Counted(i)} for i in range(200)]
    values: list[object] = [Counted(i) for i in range(100, 1100)] + [[1, 2], {"k": 1}]
    Counted.compared = 0
    found = data.filter_rows(rows, [{"column": "a", "op": "in", "value": values}])
    assert [r["a"].value for r in found] == list(range(100, 200))
    assert Counted.compared < 1000, Counted.compared  # a scan made 150,000 (200 rows x 1002)
    assert data.filter_rows([{"a": [1, 2]}, {"a": {"k": 1}}, {"a": "x"}],
                            [{"column": "a", "op": "in", "value": [[1, 2], "x"]}]) == \
        [{"a": [1, 2]}, {"a": "x"}]
    assert data.filter_rows([{"a": "ell"}], [{"column": "a", "op": "in", "value": "hello"}]) \
        == [{"a": "ell"}]


async def test_data_refuses_thousands_of_conditions_or_metrics(tmp_path: Path) -> None:
    """Every condition, group_by column and metric is evaluated on every row, and there was
    no limit on how many a call could give: 100,000 always-true conditions over 20,000 rows
    are 2 billion evaluations."""
    root = tmp_path / "tables"
    root.mkdir()
    (root / "t.csv").write_text("a\n1\n2\n")
    always = {"column": "a", "op": "!=", "value": "zzz"}
    async with MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                          in_process={"data": data.build(root)}) as mcp:
        with pytest.raises(ToolError, match="101 conditions, over the limit of 100"):
            await mcp.call("data.filter", {"path": "t.csv", "where": [always] * 101})
        with pytest.raises(ToolError, match="101 metrics, over the limit of 100"):
            await mcp.call("data.aggregate", {"path": "t.csv", "group_by": ["a"],
                                              "metrics": [{"column": "a"}] * 101})
        with pytest.raises(ToolError, match="101 group_by columns, over the limit of 100"):
            await mcp.call("data.aggregate", {"path": "t.csv", "group_by": ["a"] * 101,
                                              "metrics": []})
        ok = (await mcp.call("data.filter", {"path": "t.csv", "where": [always] * 100})).value
        assert ok["count"] == 2


@pytest.mark.parametrize("name", ["t.csv", "t.jsonl", "t.json"])
async def test_data_refuses_a_table_of_too_many_rows(tmp_path: Path, name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A row took about 100 times its size in memory: a 50 MB CSV (the default --max-bytes)
    of one-character rows, 25 million of them, took over 5 GB. The limit is lowered here."""
    root = tmp_path / "tables"
    root.mkdir()
    (root / "t.csv").write_text("a\n" + "1\n" * 11)
    (root / "t.jsonl").write_text('{"a": 1}\n' * 11)
    (root / "t.json").write_text(json.dumps([{"a": 1}] * 11))
    monkeypatch.setattr(data, "MAX_ROWS", 10)
    async with MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                          in_process={"data": data.build(root)}) as mcp:
        with pytest.raises(ToolError, match=f"'{name}' has more than 10 rows, the limit"):
            await mcp.call("data.load", {"path": name})
    monkeypatch.setattr(data, "MAX_ROWS", 11)
    async with MCPRuntime({}, base_dir=tmp_path, settings=SETTINGS,
                          in_process={"data": data.build(root)}) as mcp:
        assert (await mcp.call("data.load", {"path": name})).value["rows"] == 11


async def test_web_markdown_of_a_page_stays_within_max_bytes(tmp_path: Path, site: str) -> None:
    """Nested lists indent every line by their depth: 32 KB of `<ul><li>` came back as 16 MB
    of markdown (quadratic; a 2 MB page would exhaust the server's memory)."""
    async with web_rt(tmp_path, max_bytes=100_000) as mcp:
        page = (await mcp.call("web.fetch", {"url": f"{site}/nest"})).value
        assert page["truncated"] is True and 0 < len(page["content"]) <= 100_000


async def test_files_search_contains_reads_a_bounded_amount(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """`contains` read every file of the walk whole: 50,000 files of --max-bytes each are
    50 GB, for one call. The read budget is lowered here."""
    root = tmp_path / "root"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text("needle " * 2)  # 14 bytes each
    monkeypatch.setattr(files, "MAX_SEARCH_READ", 20)
    async with files_rt(root) as mcp:
        found = (await mcp.call("files.search_files", {"pattern": "*", "contains": "needle"}))
        assert found.value == {"matches": ["a.txt", "b.txt"], "truncated": True}
        named = (await mcp.call("files.search_files", {"pattern": "*.txt"})).value
        assert named == {"matches": ["a.txt", "b.txt", "c.txt"], "truncated": False}
