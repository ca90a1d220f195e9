"""A foreach step's finished items in the run record: each is written as it finishes, so a
resume of a run that stopped inside the step runs only the items that did not finish."""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from engine.executor.handlers import Outcome

if TYPE_CHECKING:
    from engine.executor.context import RunContext
    from engine.state.records import ItemRecord


def item_key(rc: RunContext, item: Any) -> str:
    """A digest of the item's value, secrets masked: a resume reuses a recorded item only for
    the same value at the same index (the list may have changed, e.g. with an `env` value)."""
    text = json.dumps(rc.services.redact(item), sort_keys=True, default=str,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def reused(record: ItemRecord) -> Outcome:
    """What a recorded item produced, as if it had just run."""
    return Outcome(output=record.output, usage=dict(record.usage or {}), cost=record.cost,
                   audit=list(record.audit or []), notes=list(record.events or []),
                   rendered=record.rendered_input)


def note_finished(rc: RunContext, step_id: str, index: int, key: str, outcome: Outcome,
                  attempts: int, started: float) -> None:
    """Hand a finished item to the record writer (written with the next batch)."""
    rc.writer.note_item(rc.services.item_row(rc.run_id, step_id, index, key, outcome,
                                             attempts, started, time.time()))
