"""The bundled files and data servers, driven in-process through the SDK client."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.errors import ToolError
from engine.mcp import MCPRuntime, MCPSettings
from engine.mcp.servers import data, files

pytestmark = pytest.mark.anyio
SETTINGS = MCPSettings(health_interval_s=0, call_timeout_s=10)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# Alpha\nneedle here\n")
    (root / "docs" / "b.txt").write_text("beta\n")
    (root / "top.md").write_text("top\n")
    sibling = tmp_path / "data2"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("sibling secret")
    (tmp_path / "outside.txt").write_text("outside secret")
    os.symlink(tmp_path / "outside.txt", root / "link.txt")
    os.symlink(sibling, root / "escape_dir")
    return root


def files_rt(root: Path, **kwargs: object) -> MCPRuntime:
    return MCPRuntime({}, base_dir=root.parent, settings=SETTINGS,
                      in_process={"files": files.build(root, **kwargs)})  # type: ignore[arg-type]


async def test_files_list_read_write_search(tree: Path) -> None:
    async with files_rt(tree) as mcp:
        listing = (await mcp.call("files.list_directory", {"path": "."})).value
        names = {e["name"]: e["type"] for e in listing["entries"]}
        assert names["docs"] == "directory" and names["top.md"] == "file"
        # symlinks leaving the root are not followed, not even to tell their type or size
        assert names["link.txt"] == names["escape_dir"] == "symlink"
        assert (await mcp.call("files.read_file", {"path": "docs/a.md"})).text.startswith("# Alpha")
        wrote = await mcp.call("files.write_file", {"path": "out/new.txt", "content": "hé"})
        assert "wrote 3 bytes to out/new.txt" in wrote.text
        assert (tree / "out" / "new.txt").read_text() == "hé"
        found = (await mcp.call("files.search_files", {"pattern": "*.md"})).value
        assert found["matches"] == ["docs/a.md", "top.md"]
        found = (await mcp.call("files.search_files",
                                {"pattern": "*", "contains": "needle"})).value
        assert found["matches"] == ["docs/a.md"]


@pytest.mark.parametrize("path", ["../outside.txt", "../data2/secret.txt", "/etc/passwd",
                                  "link.txt", "escape_dir/secret.txt",
                                  "docs/../../data2/secret.txt"])
async def test_files_paths_confined(tree: Path, path: str) -> None:
    async with files_rt(tree) as mcp:
        with pytest.raises(ToolError, match="outside the server's root"):
            await mcp.call("files.read_file", {"path": path})
        with pytest.raises(ToolError, match="outside the server's root"):
            await mcp.call("files.write_file", {"path": path, "content": "x"})
    assert (tree.parent / "data2" / "secret.txt").read_text() == "sibling secret"


async def test_files_search_skips_symlinks_leaving_root(tree: Path) -> None:
    async with files_rt(tree) as mcp:
        found = (await mcp.call("files.search_files", {"pattern": "*secret*"})).value
        assert found["matches"] == []
        found = (await mcp.call("files.search_files", {"pattern": "link.txt"})).value
        assert found["matches"] == []


async def test_files_read_only_and_size_cap(tree: Path) -> None:
    async with files_rt(tree, read_only=True, max_bytes=8) as mcp:
        with pytest.raises(ToolError, match="read-only"):
            await mcp.call("files.write_file", {"path": "x.txt", "content": "x"})
        with pytest.raises(ToolError, match="over this server's limit of 8"):
            await mcp.call("files.read_file", {"path": "docs/a.md"})


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    root = tmp_path / "tables"
    root.mkdir()
    (root / "sales.csv").write_text(
        "region,product,units,price\nnorth,apple,10,1.5\nnorth,pear,4,2.0\n"
        "south,apple,6,1.5\nsouth,plum,,3.0\n")
    (root / "people.json").write_text(json.dumps(
        {"people": [{"name": "ada", "age": 36}, {"name": "alan", "age": 41}]}))
    return root


def data_rt(root: Path) -> MCPRuntime:
    return MCPRuntime({}, base_dir=root, settings=SETTINGS,
                      in_process={"data": data.build(root)})


async def test_data_load_and_describe(sales: Path) -> None:
    async with data_rt(sales) as mcp:
        loaded = (await mcp.call("data.load", {"path": "sales.csv", "preview": 1})).value
        assert loaded["columns"] == ["region", "product", "units", "price"]
        assert loaded["rows"] == 4
        assert loaded["preview"] == [{"region": "north", "product": "apple", "units": 10,
                                      "price": 1.5}]
        described = (await mcp.call("data.describe", {"path": "sales.csv"})).value
        units = described["columns"]["units"]
        assert (units["type"], units["count"], units["missing"], units["sum"]) == \
            ("number", 3, 1, 20)
        assert described["columns"]["region"]["type"] == "string"
        people = (await mcp.call("data.load", {"path": "people.json"})).value
        assert people["rows"] == 2


async def test_data_filter_aggregate_stats(sales: Path) -> None:
    async with data_rt(sales) as mcp:
        rows = (await mcp.call("data.filter", {
            "path": "sales.csv",
            "where": [{"column": "product", "op": "==", "value": "apple"},
                      {"column": "units", "op": ">", "value": 7}]})).value
        assert rows["count"] == 1 and rows["rows"][0]["region"] == "north"
        groups = (await mcp.call("data.aggregate", {
            "path": "sales.csv", "group_by": ["region"],
            "metrics": [{"column": "units", "op": "sum"}, {"column": "price", "op": "mean"},
                        {"column": "units", "op": "count"}]})).value["groups"]
        assert groups == [
            {"region": "north", "sum_units": 14, "mean_price": 1.75, "count_units": 2},
            {"region": "south", "sum_units": 6, "mean_price": 2.25, "count_units": 1}]
        stats = (await mcp.call("data.stats", {"path": "people.json", "column": "age"})).value
        assert (stats["min"], stats["max"], stats["mean"]) == (36, 41, 38.5)
        with pytest.raises(ToolError, match="no column 'agee'"):
            await mcp.call("data.stats", {"path": "people.json", "column": "agee"})
        with pytest.raises(ToolError, match="outside the server's root"):
            await mcp.call("data.load", {"path": "../tables2/x.csv"})
