"""Review of `plait test` and cassettes as a user snapshot-testing workflows offline in CI."""

from __future__ import annotations

from pathlib import Path

from tests.cassettes.test_plait_test import fallback, plait  # noqa: F401  (fixture)


def test_a_k_that_selects_no_case_says_so_not_add_tests(fallback: Path) -> None:  # noqa: F811
    """`-k typo` on workflows that do have cases said "no test cases found (add `tests:` to a
    workflow file)": the wrong fix, the cases are there and only the filter matched none."""
    done = plait("test", str(fallback), "-k", "no-such-case")
    assert done.returncode == 2
    assert "add `tests:`" not in done.stderr
    assert "no test case matches -k 'no-such-case'" in done.stderr
    assert "outage" in done.stderr  # the cases there are, to pick from
