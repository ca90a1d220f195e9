"""What `plait run` shows while a run goes: a live table in a terminal (rich), one plain line
per event elsewhere (CI logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from engine.executor.events import (
    Event,
    ItemFinished,
    RunFinished,
    RunStarted,
    StepChunk,
    StepFallback,
    StepFinished,
    StepRetrying,
    StepStarted,
)
from engine.state.render import printable
from runners.gh_text import in_github_actions, inert, stop_commands
from runners.words import count

_MARK = {"succeeded": "ok", "failed": "FAILED", "skipped": "skipped", "cancelled": "cancelled"}


def _short(value: Any, limit: int = 100) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cancel_reason(status: str) -> str:
    """Why a run that ended with `status` cancelled the steps it had not finished (as the
    run's result says)."""
    return "interrupted" if status == "interrupted" else "run stopped"


def stdout_is_terminal() -> bool:
    try:
        return sys.stdout is not None and sys.stdout.isatty()
    except ValueError:  # closed
        return False


class PlainPrinter:
    """One line per event, timestamped relative to the run start."""

    def __init__(self, stream: TextIO | None = None, *, show_chunks: bool = False,
                 steps: Iterable[str] = ()) -> None:
        self.stream = stream or sys.stderr
        self.start = time.time()
        self.show_chunks = show_chunks
        #: the steps of the run with no StepFinished yet: a stopped run ends them
        self.unsettled = dict.fromkeys(steps)
        self.run_id: str | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepFinished):
            self.unsettled.pop(event.step_id, None)
        elif isinstance(event, RunFinished) and event.run_id == self.run_id:
            # steps the run cancelled (in flight, or never started) get no event of their own
            reason = _cancel_reason(event.status)
            for step_id in self.unsettled:
                self._write(event.at, f"{step_id}: cancelled ({reason})")
            self.unsettled.clear()
        elif isinstance(event, RunStarted) and self.run_id is None:
            self.run_id = event.run_id
        line = self.format(event)
        if line is not None:
            self._write(event.at, line)

    def _write(self, at: float, line: str) -> None:
        # a step restored by a resume carries the time it first finished, before this start
        elapsed = max(at - self.start, 0.0)
        line = printable(f"[{elapsed:8.3f}s] {line}")
        self.stream.write(inert(line) + "\n")
        self.stream.flush()

    def format(self, event: Event) -> str | None:
        if isinstance(event, RunStarted):
            self.start = event.at
            what = "resuming" if event.resumed else "running"
            return f"{what} {event.workflow} ({count(event.steps, 'step')}), run {event.run_id}"
        if isinstance(event, StepStarted):
            return f"{event.step_id}: started ({event.kind})"
        if isinstance(event, StepRetrying):
            name = event.step_id if event.index is None else f"{event.step_id}[{event.index}]"
            return (f"{name}: attempt {event.attempt - 1} failed ({event.error_kind}: "
                    f"{_short(event.error)}); retrying in {event.delay:.2f}s")
        if isinstance(event, StepFallback):
            return (f"{event.step_id}: {event.from_provider} failed; falling back to "
                    f"{event.to_provider}")
        if isinstance(event, StepChunk):
            return None
        if isinstance(event, StepFinished):
            return self._finished(event)
        if isinstance(event, RunFinished):
            return f"run {event.status} in {event.duration:.2f}s"
        return None

    def _finished(self, event: StepFinished) -> str:
        status = _MARK.get(event.status, event.status)
        if event.reason and event.reason.startswith("restored"):
            return f"{event.step_id}: restored from the previous attempt"
        text = f"{event.step_id}: {status}"
        if event.status == "succeeded":
            text += f" in {event.duration:.3f}s"
            if event.attempts > 1:
                text += f" after {event.attempts} attempts"
        if event.reason and event.status != "succeeded":
            text += f" ({event.reason})"
        if event.error:
            text += f": {_short(event.error.get('message', ''), 300)}"
        return text


class StreamPrinter:
    """Writes streamed model output (`--stream`) as it arrives: to stdout, or to `stream`
    (stderr when the run prints its result as JSON).

    `whole_lines`: under the live view (whose rich console prints what is written to a
    terminal's stdout above the table, one line per flush) it does not flush each chunk, so
    the text keeps its lines; `close` ends a line a stopped run left unfinished.

    Under GitHub Actions the text is untrusted and arrives in pieces, so no line of it can
    be checked before it is printed: workflow commands are stopped before the first piece
    and resumed by `close` (a model cannot raise annotations or mask values)."""

    def __init__(self, stream: TextIO | None = None, *, whole_lines: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.whole_lines = whole_lines
        #: (step id, foreach item index or None) of the text being written
        self.current: tuple[str, int | None] | None = None
        #: the line that resumes workflow commands, while they are stopped
        self._resume: str | None = None
        #: on a terminal, the text's control characters are shown, not obeyed (it is
        #: untrusted); text sent to a file is written as it is
        self._shown: Callable[[str], str]
        try:
            self._shown = printable if self.stream.isatty() else str
        except ValueError:  # closed
            self._shown = str

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepChunk):
            if self._resume is None and in_github_actions():
                stop, self._resume = stop_commands()
                self.stream.write(f"{stop}\n")
            source = (event.step_id, event.index)
            if self.current != source:  # the items of a foreach step take turns
                name = event.step_id if event.index is None else \
                    f"{event.step_id}[{event.index}]"
                self.stream.write(f"\n--- {name} ---\n")
                self.current = source
            self.stream.write(self._shown(event.text))
            if not self.whole_lines:
                self.stream.flush()
        elif isinstance(event, StepFinished | ItemFinished) and self.current is not None \
                and event.step_id == self.current[0] \
                and (isinstance(event, StepFinished) or event.index == self.current[1]):
            self.stream.write("\n")
            self.current = None

    def close(self) -> None:
        """End the text of a step the run stopped in mid-stream (it gets no StepFinished)."""
        if self.current is not None:
            self.stream.write("\n")
            self.current = None
        if self._resume is not None:
            self.stream.write(f"{self._resume}\n")
            self._resume = None
        self.stream.flush()


class LiveView:
    """A live table of steps for a terminal: state, elapsed time, attempts."""

    MAX_ROWS = 40

    def __init__(self, step_ids: list[str]) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self.rows: dict[str, dict[str, Any]] = {s: {"state": "waiting"} for s in step_ids}
        self.title = ""
        self.run_id: str | None = None
        # the table is built when rich refreshes (8 times a second), not on every event.
        # What is written to stdout meanwhile (--stream) is printed above the table when
        # stdout is this terminal too; stdout sent elsewhere (`> out.txt`) is left alone
        self.live = Live(self, console=self.console, refresh_per_second=8, transient=False,
                         redirect_stdout=stdout_is_terminal())

    def __rich__(self) -> Any:
        return self._table()

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.refresh()
        self.live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        now = time.time()
        if isinstance(event, RunStarted):
            self.title = f"{event.workflow} · run {event.run_id}"
            self.run_id = event.run_id
        elif isinstance(event, StepStarted):
            self.rows[event.step_id] = {"state": "running", "since": now}
        elif isinstance(event, StepRetrying):
            self.rows[event.step_id].update(state=f"retry {event.attempt}",
                                            note=_short(event.error, 60))
        elif isinstance(event, StepFinished):
            self.rows[event.step_id] = {"state": event.status, "took": event.duration,
                                        "attempts": event.attempts,
                                        "note": _short((event.error or {}).get("message", "")
                                                       or event.reason or "", 60)}
        elif isinstance(event, RunFinished) and event.run_id == self.run_id:
            # steps the run cancelled (in flight, or never started) get no event of their own
            for row in self.rows.values():
                if row["state"].split()[0] in ("waiting", "running", "retry"):
                    since = row.pop("since", None)
                    row.update(state="cancelled", note=_cancel_reason(event.status),
                               took=None if since is None else now - since)

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        colours = {"succeeded": "green", "failed": "red", "running": "yellow",
                   "skipped": "dim", "cancelled": "magenta", "waiting": "dim"}
        table = Table(title=getattr(self, "title", ""), expand=False)
        for col in ("step", "state", "time", "tries", "note"):
            table.add_column(col)
        now = time.time()
        rows = list(self.rows.items())
        if len(rows) > self.MAX_ROWS:  # big runs: what is moving or broken, and the counts
            counts: dict[str, int] = {}
            for _, row in rows:
                key = row["state"].split()[0]
                counts[key] = counts.get(key, 0) + 1
            table.caption = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            rows = [(s, r) for s, r in rows if r["state"].split()[0] in
                    ("running", "retry", "failed")][: self.MAX_ROWS]
        for sid, row in rows:
            state = row["state"]
            took = row.get("took")
            if took is None and "since" in row:
                took = now - row["since"]
            # Text, not markup: a note is a step's error (untrusted; `[/x]` would crash rich)
            table.add_row(sid, Text(state, style=colours.get(state.split()[0], "white")),
                          f"{took:.2f}s" if took is not None else "",
                          str(row.get("attempts") or ""), Text(printable(row.get("note", ""))))
        return table
