"""CI reporters: JUnit XML, GitHub Actions annotations and job summary, and the tracing
session around a CLI run (:class:`Reporting` ties them to `plait run`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from runners.reporters.github import append_summary, error_annotations, in_github_actions
from runners.reporters.junit import JUnitCase, cases_from_run, junit_xml, write_junit

__all__ = ("JUnitCase", "Reporting", "append_summary", "cases_from_run", "error_annotations",
           "in_github_actions", "junit_xml", "write_junit")


class Reporting:
    """What `plait run` reports besides its own output: traces, JUnit, GitHub Actions.

    ``start()`` returns run options (the tracer); set ``result`` to the RunResult when the
    run ends; ``finish()`` writes the reports and flushes the traces (always call it)."""

    def __init__(self, workflow: Any, trace: Any = None, *, junit: Path | None = None,
                 as_json: bool = False) -> None:
        self.workflow = workflow
        #: stdout holds JSON: annotations go to stderr (GitHub reads commands from both)
        self.as_json = as_json
        self.trace = trace
        self.junit = junit
        self.result: Any = None
        self._session: Any = None

    def start(self) -> dict[str, Any]:
        if self.trace is None:
            return {}
        from runners.tracing_setup import start_tracing

        self._session = start_tracing(self.trace)
        if self._session is None:
            return {}
        return {"tracer": self._session.tracer, "trace_content": self.trace.content}

    def finish(self) -> None:
        try:
            if self.result is not None:
                self._reports(self.result)
        finally:
            if self._session is not None:
                for line in self._session.shutdown():
                    print(line, file=sys.stderr)

    def _reports(self, result: Any) -> None:
        if self.junit is not None:
            write_junit(cases_from_run(result, self.workflow), self.junit,
                        suite=f"plait run {result.workflow}")
        if in_github_actions():
            out = sys.stderr if self.as_json else sys.stdout
            for line in error_annotations(result, self.workflow):
                print(line, file=out, flush=True)
            append_summary(result)
