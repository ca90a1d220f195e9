"""An example of testing a workflow with pytest: `pytest workflows/fallback` (plait's pytest
plugin gives the `plait_run` fixture, syrupy the `snapshot` fixture).

The run is replayed offline from the cassette of the workflow's `outage` test case; re-record
it with `pytest workflows/fallback --plait-record`, update the snapshot with
`pytest workflows/fallback --snapshot-update`.
"""

from __future__ import annotations

from typing import Any


def test_falls_back_to_the_secondary(plait_run: Any, snapshot: Any) -> None:
    result = plait_run("fallback.yaml")
    assert result.ok
    assert result.outputs == snapshot
    # the primary provider is down: both drafts were answered by the fallback
    assert [s.attempts for s in result.steps.values()] == [2, 2, 1]
