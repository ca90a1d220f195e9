"""plait-mcp-data: small tabular data work on CSV and JSON files inside one root.

Tools: load (columns, row count, preview), describe (per-column type and statistics),
filter (rows matching conditions), aggregate (group by + sum/mean/count/min/max),
stats (summary statistics of one numeric column). Standard library only.

    plait-mcp-data --root ./data
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from engine.mcp.servers._common import Confined, base_parser, existing_root, parse, serve, tool

DEFAULT_MAX_BYTES = 50_000_000
MAX_ROWS_OUT = 1000
MAX_TERMS = 100
MAX_ROWS = 1_000_000
Row = dict[str, Any]
Op = Literal["==", "!=", "<", "<=", ">", ">=", "contains", "in"]
Agg = Literal["sum", "mean", "count", "min", "max", "median"]

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and a < b, "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b, ">=": lambda a, b: a is not None and a >= b,
    "contains": lambda a, b: a is not None and str(b) in str(a),
    "in": lambda a, b: a in b,
}


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    # "nan", "inf", "1e999" and 5000-digit integers stay text: NaN and Infinity are not JSON
    return number if math.isfinite(number) else text


class Tables:
    """Loads tables from files under a root, cached by (path, mtime)."""

    def __init__(self, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.box = Confined(root)
        self.max_bytes = max_bytes
        self._cache: dict[tuple[str, float], list[Row]] = {}

    def rows(self, path: str) -> list[Row]:
        target = self.box.resolve(path)
        if not target.is_file():
            raise ValueError(f"{path!r} is not a file under the root")
        stat = target.stat()
        if stat.st_size > self.max_bytes:
            raise ValueError(f"{path!r} is {stat.st_size} bytes, over the limit "
                             f"{self.max_bytes} (--max-bytes)")
        key = (str(target), stat.st_mtime)
        if key not in self._cache:
            self._cache = {key: self._read(target)}
        return self._cache[key]

    def _read(self, target: Path) -> list[Row]:
        suffix = target.suffix.lower()
        # opened without following a symlink made since resolve (see Confined.read_bytes)
        raw = self.box.read_bytes(target, self.max_bytes, self.box.relative(target))
        text = raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        shown = self.box.relative(target)
        try:
            if suffix == ".csv" or suffix == ".tsv":
                reader = csv.DictReader(text.splitlines(),
                                        delimiter="\t" if suffix == ".tsv" else ",")
                return _capped(shown, ({k: _number(v or "") for k, v in row.items()
                                        if k is not None} for row in reader))
            if suffix in (".json", ".jsonl"):
                return _capped(shown, _json_rows(text, jsonl=suffix == ".jsonl"))
        except csv.Error as exc:  # not a ValueError: the client would see no reason
            raise ValueError(f"{shown!r} is not a CSV/TSV file this server can read: {exc}"
                             ) from None
        except RecursionError:
            raise ValueError(f"{shown!r} nests JSON arrays or objects too deeply to read; "
                             "rows are objects of plain values") from None
        raise ValueError(f"unsupported file type {suffix!r}: use .csv, .tsv, .json or .jsonl")


def _json_rows(text: str, *, jsonl: bool) -> Iterator[Any]:
    """The rows of a JSON file, or of a JSONL file one line at a time (checked in _capped)."""
    if jsonl:
        return (_json(line) for line in text.splitlines() if line.strip())
    data = _json(text)
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError("a JSON object must hold exactly one list of rows")
        data = lists[0]
    if not isinstance(data, list):
        raise ValueError("JSON data must be a list of objects (rows)")
    return iter(data)


def _capped(shown: str, rows: Iterator[Any]) -> list[Row]:
    """At most MAX_ROWS rows, read lazily where the format allows: a row takes about 100
    times its size in memory, so a 50 MB CSV of one-character rows took over 5 GB."""
    out: list[Row] = []
    for row in rows:
        if len(out) == MAX_ROWS:
            raise ValueError(f"{shown!r} has more than {MAX_ROWS} rows, the limit of this "
                             "server (it holds a table in memory); split the file")
        if not isinstance(row, dict):
            raise ValueError("JSON data must be a list of objects (rows)")
        out.append(row)
    return out


def _json(text: str) -> Any:
    return json.loads(text, parse_constant=_not_json)


def _not_json(name: str) -> None:
    raise ValueError(f"{name} is not JSON (a JSON number is finite); write it as a string "
                     "or null")


def columns(rows: list[Row]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def numeric(values: list[Any]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def summary(values: list[Any]) -> dict[str, Any]:
    present = [v for v in values if v is not None and v != ""]
    nums = numeric(present)
    out: dict[str, Any] = {"count": len(present), "missing": len(values) - len(present),
                           "unique": len({json.dumps(v, sort_keys=True) for v in present})}
    if nums and len(nums) == len(present):
        out.update(type="number", min=min(nums), max=max(nums), mean=statistics.fmean(nums),
                   median=statistics.median(nums), sum=sum(nums),
                   stdev=statistics.stdev(nums) if len(nums) > 1 else 0.0)
    else:
        out["type"] = "string" if present else "empty"
    return out


class Members:
    """The list of an `in` condition, looked up in a set where its values allow: `x in list`
    on every row cost rows x values comparisons (20,000 rows and a 100,000-value list, a
    1 MB argument, took 30 s)."""

    def __init__(self, values: list[Any]) -> None:
        self.hashable: set[Any] = set()
        self.other: list[Any] = []
        for value in values:
            try:
                self.hashable.add(value)
            except TypeError:  # a list or object: compared one by one, as before
                self.other.append(value)

    def __contains__(self, item: Any) -> bool:
        try:
            if item in self.hashable:
                return True
        except TypeError:  # an unhashable cell (a list or object from JSON)
            pass
        return item in self.other


def filter_rows(rows: list[Row], where: list[dict[str, Any]]) -> list[Row]:
    """The rows matching every condition of `where`."""
    prepared = [{**cond, "value": Members(cond["value"])}
                if cond.get("op") == "in" and isinstance(cond.get("value"), list) else cond
                for cond in where]
    return [row for row in rows if matches(row, prepared)]


def matches(row: Row, where: list[dict[str, Any]]) -> bool:
    for cond in where:
        op = _OPS.get(str(cond.get("op", "==")))
        if op is None:
            raise ValueError(f"unknown operator {cond.get('op')!r}; use one of {', '.join(_OPS)}")
        if "column" not in cond:
            raise ValueError(f"condition {cond!r} has no column; write "
                             "{column, op, value}, e.g. {column: units, op: '>', value: 5}")
        try:
            if not op(row.get(str(cond["column"])), cond.get("value")):
                return False
        except TypeError:
            return False
    return True


def aggregate_rows(rows: list[Row], group_by: list[str],
                   metrics: list[dict[str, str]]) -> list[Row]:
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(c) for c in group_by), []).append(row)
    out = []
    for key, members in groups.items():
        record: Row = dict(zip(group_by, key, strict=True))
        for metric in metrics:
            if "column" not in metric:
                raise ValueError(f"metric {metric!r} has no column; write {{column, op}}, "
                                 "e.g. {column: units, op: sum}")
            column, how = metric["column"], metric.get("op", "sum")
            record[f"{how}_{column}"] = _agg(how, [m.get(column) for m in members])
        out.append(record)
    return sorted(out, key=lambda r: json.dumps([r.get(c) for c in group_by], default=str))


def _few(what: str, items: list[Any]) -> None:
    """Refuse more than MAX_TERMS conditions, columns or metrics: each one is evaluated on
    every row, so 100,000 of them (a few MB of arguments) kept the server busy for minutes."""
    if len(items) > MAX_TERMS:
        raise ValueError(f"{len(items)} {what}, over the limit of {MAX_TERMS}; split the "
                         "question into several calls")


def _agg(how: str, values: list[Any]) -> Any:
    if how == "count":
        return sum(1 for v in values if v is not None)
    nums = numeric(values)
    if not nums:
        return None
    funcs: dict[str, Callable[[list[float]], Any]] = {
        "sum": sum, "mean": statistics.fmean, "min": min, "max": max,
        "median": statistics.median}
    if how not in funcs:
        raise ValueError(f"unknown aggregate {how!r}; use sum, mean, count, min, max or median")
    return funcs[how](nums)


def build(root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """The data MCPServer for files under `root`."""
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    tables = Tables(root, max_bytes)
    server = MCPServer("plait-data", log_level="WARNING")
    ro = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @tool(server, annotations=ro)
    def load(path: str, preview: int = 5) -> dict[str, Any]:
        """Load a CSV/TSV/JSON/JSONL table: its columns, row count and first rows (`preview`
        of them, at most 1000)."""
        rows = tables.rows(path)
        cap = max(0, min(preview, MAX_ROWS_OUT))
        return {"columns": columns(rows), "rows": len(rows), "preview": rows[:cap]}

    @tool(server, annotations=ro)
    def describe(path: str) -> dict[str, Any]:
        """Describe every column: type, count, missing, unique, and for numbers min, max,
        mean, median, sum and standard deviation."""
        rows = tables.rows(path)
        return {"rows": len(rows),
                "columns": {c: summary([r.get(c) for r in rows]) for c in columns(rows)}}

    @tool(server, annotations=ro)
    def filter(path: str, where: list[dict[str, Any]], limit: int = 100) -> dict[str, Any]:
        """Rows matching every condition {column, op, value}; op is one of ==, !=, <, <=, >,
        >=, contains, in."""
        _few("conditions", where)
        rows = filter_rows(tables.rows(path), where)
        cap = max(0, min(limit, MAX_ROWS_OUT))
        return {"count": len(rows), "rows": rows[:cap], "truncated": len(rows) > cap}

    @tool(server, annotations=ro)
    def aggregate(path: str, group_by: list[str], metrics: list[dict[str, str]]
                  ) -> dict[str, Any]:
        """Group rows by columns and compute metrics [{column, op}] with op one of sum, mean,
        count, min, max, median. Output columns are named op_column."""
        _few("group_by columns", group_by)
        _few("metrics", metrics)
        out = aggregate_rows(tables.rows(path), group_by, metrics)
        return {"groups": out[:MAX_ROWS_OUT], "truncated": len(out) > MAX_ROWS_OUT}

    @tool(server, annotations=ro)
    def stats(path: str, column: str) -> dict[str, Any]:
        """Summary statistics of one column (count, missing, unique, min, max, mean, median,
        sum, stdev for numbers)."""
        rows = tables.rows(path)
        if rows and column not in columns(rows):
            raise ValueError(f"no column {column!r}; columns are {', '.join(columns(rows))}")
        return {"column": column, **summary([r.get(column) for r in rows])}

    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = base_parser("plait-mcp-data", "MCP server: CSV/JSON tables, filters, aggregates")
    parser.add_argument("--root", type=existing_root, required=True,
                        help="the only directory data may be loaded from")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help=f"largest file loaded (default {DEFAULT_MAX_BYTES})")
    opts = parse(parser, argv)
    serve(build(opts.root, max_bytes=opts.max_bytes), opts)


if __name__ == "__main__":
    main()
