"""`plait batch` and sub-workflows at their edges: bad row files, Ctrl-C, recursion."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import GOOD, plait


def test_batch_rows_file_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_bytes(b'{"who": "ada"}\n{"who": "b\xff"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert "rows.jsonl:2: not UTF-8 text" in out.stderr



def test_batch_row_may_hold_a_unicode_line_separator(tmp_path: Path) -> None:
    """JSON strings may hold U+2028 as is; only a newline ends a row of a JSONL file."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_text('{"who": "a\u2028b"}\n', encoding="utf-8")
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi a\u2028b"}
