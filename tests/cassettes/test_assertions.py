"""`assert:` of a `tests:` case, checked on a real run (`plait test`'s run_case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.spec.loader import load
from runners.workflow_tests import run_case
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: typed
policies:
  o: {level: low}
steps:
  a: {run: "true", policy: o}
outputs:
  flag: ${{ true }}
  off: ${{ false }}
  one: ${{ 1 }}
  text: "1"
  listed: "${{ [1, true, {'x': 1.0}] }}"
tests:
  - name: holds
    snapshot: false
    assert:
      - {output: flag, equals: true}
      - {output: off, equals: false}
      - {output: one, equals: 1}
      - {output: one, equals: 1.0}
      - {output: text, equals: "1"}
      - {output: listed, equals: [1, true, {x: 1}]}
  - name: typed
    snapshot: false
    assert:
      - {output: flag, equals: 1}
      - {output: off, equals: 0}
      - {output: one, equals: true}
      - {output: text, equals: 1}
      - {output: one, equals: "1"}
      - {output: listed, equals: [true, 1, {x: 1}]}
      - {output: listed, equals: [1, true, {x: true}]}
"""


async def test_equals_compares_json_values_bool_is_not_a_number(tmp_path: Path) -> None:
    wf = load(write_workflow(tmp_path, FLOW))
    holds, typed = [await run_case(wf, case) for case in wf.spec.tests]
    assert holds.status == "passed", holds.problems
    assert typed.status == "failed"
    assert typed.problems == [
        "assert[0]: output 'flag' is true, expected 1",
        "assert[1]: output 'off' is false, expected 0",
        "assert[2]: output 'one' is 1, expected true",
        "assert[3]: output 'text' is \"1\", expected 1",
        "assert[4]: output 'one' is 1, expected \"1\"",
        "assert[5]: output 'listed' is [1, true, {\"x\": 1.0}], expected [true, 1, {\"x\": 1}]",
        "assert[6]: output 'listed' is [1, true, {\"x\": 1.0}], expected [1, true, {\"x\": true}]",
    ]
