"""CI reporters: JUnit XML, GitHub Actions annotations and job summary (:class:`Reporting`,
in runners/reporting.py, ties them and the tracing session to `plait run`)."""

from __future__ import annotations

from runners.gh_text import in_github_actions
from runners.reporters.github import append_summary, error_annotations
from runners.reporters.junit import JUnitCase, cases_from_run, junit_xml, write_junit
from runners.reporting import Reporting, write_refused

__all__ = ("JUnitCase", "Reporting", "append_summary", "cases_from_run", "error_annotations",
           "in_github_actions", "junit_xml", "write_junit", "write_refused")
