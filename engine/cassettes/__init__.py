"""Cassettes: record a run's provider and MCP tool traffic, and replay it offline.

See engine/cassettes/format.py for the file format and docs/testing.md for the user guide.
"""

from __future__ import annotations

from engine.cassettes.format import FORMAT_VERSION, cassette_hash, cassette_path, read_cassette
from engine.cassettes.session import (
    REPLAY_SECRET,
    Cassette,
    Report,
    collect_reports,
    open_cassette,
    release,
)
from engine.errors import CassetteError, CassetteNotSaved, ReplayMiss  # defined with the others

__all__ = (
    "FORMAT_VERSION",
    "REPLAY_SECRET",
    "Cassette",
    "CassetteError",
    "CassetteNotSaved",
    "ReplayMiss",
    "Report",
    "cassette_hash",
    "cassette_path",
    "collect_reports",
    "open_cassette",
    "read_cassette",
    "release",
)
