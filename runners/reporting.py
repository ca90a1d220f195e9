"""The reports of one `plait run` besides its own output: the tracing session, the JUnit
report and, under GitHub Actions, annotations and the job summary. The reporters (an XML
stack) and the tracing code (OpenTelemetry) are imported only when a report asks for them:
a run without any starts faster."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from runners.gh_text import in_github_actions
from runners.targets import check_writable

__all__ = ("Reporting", "write_refused")


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
        #: why the run was refused before any step ran (a JUnit report still says it)
        self.refused: BaseException | None = None
        self._session: Any = None

    def start(self) -> dict[str, Any]:
        """Check the report targets and start tracing, before anything runs: a target that
        cannot be written is a ConfigError here, not a traceback after the run."""
        if self.junit is not None:
            check_writable(self.junit, "--junit", "the JUnit report")
        if self.trace is None:
            return {}
        from runners.tracing_setup import start_tracing

        try:
            self._session = start_tracing(self.trace, masked_for=lambda: [self.workflow])
        except BaseException as exc:
            self.refused = exc  # the JUnit target is fine: finish() writes why
            raise
        return {} if self._session is None else dict(self._session.run_options())

    def finish(self) -> None:
        try:
            if self.result is not None:
                self._reports(self.result)
            elif self.refused is not None:
                self._refused(self.refused)
        finally:
            if self._session is not None:
                self._session.close()

    def _refused(self, error: BaseException) -> None:
        """Report a run refused before its first step (the CLI printed the error)."""
        from runners.reporters.github import refused_annotation

        if self.junit is not None:
            write_refused(self.junit, error, self.workflow.path, classname=self.workflow.name)
        if in_github_actions() and not getattr(error, "issues", None):
            print(refused_annotation(error, self.workflow.path),
                  file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def _reports(self, result: Any) -> None:
        """Write the reports of a finished run. A report that cannot be written is said on
        stderr; it does not change the run's exit code (the run itself is over)."""
        if self.junit is not None:
            from runners.reporters.junit import cases_from_run, write_junit

            try:
                write_junit(cases_from_run(result, self.workflow), self.junit,
                            suite=f"plait run {result.workflow}")
            except OSError as exc:
                print(f"error: cannot write the JUnit report {self.junit}: "
                      f"{exc.strerror or exc} (the run itself is not affected)",
                      file=sys.stderr)
        if in_github_actions():
            from runners.reporters.github import append_summary, error_annotations

            out = sys.stderr if self.as_json else sys.stdout
            for line in error_annotations(result, self.workflow):
                print(line, file=out, flush=True)
            try:
                append_summary(result)
            except OSError as exc:
                print(f"warning: cannot append the job summary to $GITHUB_STEP_SUMMARY "
                      f"({exc.filename or os.environ.get('GITHUB_STEP_SUMMARY')}): "
                      f"{exc.strerror or exc}; the run itself is not affected",
                      file=sys.stderr)


def write_refused(junit: Path, error: BaseException, file: Path,
                  classname: str | None = None) -> None:
    """The JUnit report of a run refused before any step ran: one error case that says why
    (CI shows a report, not a missing file). A report that cannot be written is said on
    stderr."""
    from runners.reporters.junit import refused_case, write_junit

    try:
        write_junit([refused_case(error, Path(file), classname=classname)], junit,
                    suite=f"plait run {Path(file).name}")
    except OSError as exc:
        print(f"error: cannot write the JUnit report {junit}: {exc.strerror or exc}",
              file=sys.stderr)
