"""`plait run` input errors as a person reads them: JSON/YAML words, not Python's
("got str '3'"). The library's cases are in tests/executor/test_input_wording.py."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import plait

WF = """\
version: 1
name: typed
inputs:
  n: {type: integer}
  mode: {type: string, enum: [fast, slow], default: fast}
steps:
  a: {run: 'true'}
"""


def test_an_inputs_file_value_of_the_wrong_type_is_told_in_json_words(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "in.json").write_text('{"n": "3"}')
    out = plait("run", "wf.yaml", "--inputs", "in.json", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (
        "error: input 'n' must be of type integer, got string \"3\" (hint: write the integer "
        "without quotes, e.g. {\"n\": 3} (a quoted value is a string))")


def test_a_command_line_value_of_the_wrong_type(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WF)
    out = plait("run", "wf.yaml", "-i", "n=three", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: input 'n' must be of type integer, got \"three\" "
                                  "(hint: pass a whole number, e.g. -i n=3)")


def test_the_hints_name_the_input_to_give(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WF)
    out = plait("run", "wf.yaml", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: missing required input: n (hint: pass -i n=VALUE or "
                                  "--inputs FILE.json)")
    (tmp_path / "two.yaml").write_text(WF.replace("  mode:", "  x: {type: number}\n  mode:"))
    out = plait("run", "two.yaml", "-i", "x=many", "--no-record", cwd=tmp_path)
    assert out.stderr.strip() == ("error: input 'x' must be of type number, got \"many\" "
                                  "(hint: pass a number, e.g. -i x=2.5)")
    out = plait("run", "two.yaml", "--no-record", cwd=tmp_path)
    assert "(hint: pass -i n=VALUE -i x=VALUE or --inputs FILE.json)" in out.stderr


def test_a_number_json_cannot_hold_is_told_so_for_an_integer_input_too(tmp_path: Path) -> None:
    """It said `must be of type integer, got number "Infinity"`: 1e400 read as a float."""
    (tmp_path / "wf.yaml").write_text(WF)
    (tmp_path / "in.json").write_text('{"n": 1e400}')
    out = plait("run", "wf.yaml", "--inputs", "in.json", "--no-record", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: input 'n' holds the number Infinity, which JSON "
                                 "cannot represent (hint: pass a finite number"), out.stderr


JSON_TYPED = """\
version: 1
name: typed
inputs:
  o: {type: object, default: {a: 1}}
  arr: {type: array}
  opt: {type: array, required: false}
steps:
  a: {run: 'true'}
"""


def test_i_null_for_an_object_or_array_input_is_json_null_not_a_type_error(tmp_path: Path
                                                                          ) -> None:
    """`-i arr=null` parses as JSON null and counts as not given, like null in an inputs
    file; it said `must be of type array, got null null`."""
    import json

    (tmp_path / "wf.yaml").write_text(JSON_TYPED)
    out = plait("run", "wf.yaml", "-i", "arr=null", "--dry-run", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == ("error: input 'arr' is required, got null (hint: give it a "
                                  "value of type array)")
    out = plait("run", "wf.yaml", "-i", "arr=[]", "-i", "o=null", "-i", "opt=null",
                "--dry-run", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["inputs"] == {"o": {"a": 1}, "arr": [], "opt": None}
