"""next_fire: cron arithmetic in a time zone, across both DST transitions of 2026."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engine.errors import SpecError
from engine.spec.models import WorkflowSpec
from runners.schedule import entries_from_spec, next_fire

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")


def fires(cron: str, tz: str, start: dt.datetime, count: int) -> list[dt.datetime]:
    out, when = [], start
    for _ in range(count):
        when = next_fire(cron, tz, when)
        out.append(when)
    return out


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_weekday_mornings_in_berlin() -> None:
    # Friday 2026-11-20 08:00 Berlin: the next weekday 07:00 is Monday
    after = dt.datetime(2026, 11, 20, 8, 0, tzinfo=BERLIN)
    got = next_fire("0 7 * * 1-5", "Europe/Berlin", after)
    assert got == dt.datetime(2026, 11, 23, 7, 0, tzinfo=BERLIN)
    assert got.utcoffset() == dt.timedelta(hours=1)
    assert got.tzinfo == BERLIN


def test_strictly_after_and_aliases() -> None:
    at = utc(2026, 1, 1, 0, 0)
    assert next_fire("@daily", "UTC", at) == utc(2026, 1, 2, 0, 0)
    assert next_fire("@hourly", "UTC", at) == utc(2026, 1, 1, 1, 0)
    assert next_fire("  0   0 * * * ", "UTC", at - dt.timedelta(seconds=1)) == at


def test_spring_forward_daily_job_in_the_gap_is_not_skipped() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day
    got = fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12), 3)
    assert [g.astimezone(UTC) for g in got] == [
        utc(2026, 3, 28, 1, 30),   # 02:30 CET
        utc(2026, 3, 29, 1, 30),   # the instant 02:30 CET would have been: 03:30 CEST
        utc(2026, 3, 30, 0, 30),   # 02:30 CEST
    ]
    assert got[1].hour == 3 and got[1].minute == 30


def test_spring_forward_hourly_has_no_double_fire() -> None:
    got = fires("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 23, 30), 5)
    assert [g.astimezone(UTC) for g in got] == [utc(2026, 3, 29, h) for h in range(0, 5)]
    # fixed hours on both sides of the gap still fire once each day
    got = fires("0 2,3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 4)
    assert [g.astimezone(UTC) for g in got] == [
        utc(2026, 3, 29, 1), utc(2026, 3, 30, 0), utc(2026, 3, 30, 1), utc(2026, 3, 31, 0)]


def test_fall_back_fixed_hour_fires_once() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice
    got = fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), 3)
    assert [g.astimezone(UTC) for g in got] == [
        utc(2026, 10, 25, 0, 30),  # first 02:30 (CEST) only
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
        utc(2026, 10, 27, 1, 30),
    ]


def test_fall_back_wildcard_hour_keeps_real_time() -> None:
    got = fires("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 22, 30), 5)
    assert [g.astimezone(UTC) for g in got] == [
        utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1),
        utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]
    assert [g.hour for g in got] == [1, 2, 2, 3, 4]  # 02:00 CEST and 02:00 CET
    quarter = fires("*/15 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 50), 12)
    steps = {b.astimezone(UTC) - a.astimezone(UTC) for a, b in pairwise(quarter)}
    assert steps == {dt.timedelta(minutes=15)}


def test_a_whole_year_of_daily_fires_in_berlin() -> None:
    got = fires("15 2 * * *", "Europe/Berlin", utc(2025, 12, 31, 12), 365)
    days = [g.date() for g in got]
    assert days == [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    instants = [g.astimezone(UTC) for g in got]
    assert instants == sorted(set(instants))


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire("* * * * *", "UTC", dt.datetime(2026, 1, 1))


def spec(schedules: list[dict[str, object]]) -> WorkflowSpec:
    return WorkflowSpec.model_validate({
        "version": 1, "name": "wf", "on": {"schedule": schedules},
        "inputs": {"n": {"type": "integer", "default": 0}},
        "steps": {"a": {"run": "true"}}})


def test_entries_from_spec_keep_inputs_and_order() -> None:
    entries = entries_from_spec(Path("wf.yaml"), spec([
        {"cron": "0 7 * * 1-5", "timezone": "Europe/Berlin", "inputs": {"n": 1}},
        {"cron": "@daily"}]))
    assert [(e.index, e.cron, e.timezone, e.inputs) for e in entries] == [
        (0, "0 7 * * 1-5", "Europe/Berlin", {"n": 1}), (1, "@daily", "UTC", {})]
    assert entries[0].label == "wf.yaml: on.schedule[0] ('0 7 * * 1-5' Europe/Berlin)"


def test_bad_cron_and_zone_name_file_and_index() -> None:
    with pytest.raises(SpecError) as err:
        entries_from_spec(Path("flows/wf.yaml"), spec([
            {"cron": "0 7 * * 1-5"},
            {"cron": "61 * * * *"},
            {"cron": "0 0 * * * *"},
            {"cron": "0 7 * * *", "timezone": "Europe/Atlantis"},
            {"cron": "0 0 31 2 *", "inputs": {"n": "x", "m": 1}},
            {"cron": "  "}]))
    text = err.value.format().splitlines()
    assert len(text) == 7
    assert text[0].startswith("flows/wf.yaml: invalid cron expression '61 * * * *'")
    assert text[0].endswith("at 'on.schedule[1].cron'")
    assert "has 6 fields; write five" in text[1] and "on.schedule[2].cron" in text[1]
    assert "unknown time zone 'Europe/Atlantis'" in text[2]
    assert text[2].endswith("at 'on.schedule[3].timezone'")
    assert "'0 0 31 2 *' never fires" in text[3] and "on.schedule[4].cron" in text[3]
    assert "schedule input 'n' must be of type integer, got string \"x\"" in text[4]
    assert "schedule input 'm' is not a declared input" in text[5]
    assert text[5].endswith("(expected one of: n)")
    assert "cron expression is empty" in text[6] and "fields" not in text[6].split(";")[0]


def test_next_fire_of_a_cron_that_stops_firing_is_a_value_error() -> None:
    """Dates end at year 9999: croniter's failure to find one is no traceback."""
    assert next_fire("0 0 29 2 *", "UTC", utc(9995, 1, 1, 0)) == utc(9996, 2, 29, 0)
    with pytest.raises(ValueError, match="never fires after"):
        next_fire("0 0 29 2 *", "UTC", utc(9997, 1, 1, 0))


@pytest.mark.parametrize("name", ["Europe", "America", "Europe/"])
def test_a_region_folder_of_the_tz_database_is_an_unknown_zone(name: str) -> None:
    """'Europe' is a folder of the tz database, not a zone: opening it raised
    IsADirectoryError out of `plait schedule` and `plait validate` (a traceback)."""
    with pytest.raises(SpecError) as err:
        entries_from_spec(Path("wf.yaml"), spec([{"cron": "0 7 * * *", "timezone": name}]))
    (line,) = err.value.format().splitlines()
    assert f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'" in line
    assert line.endswith("at 'on.schedule[0].timezone'")


def test_schedule_inputs_a_run_would_refuse_are_refused_at_start() -> None:
    """`inputs: {n: .nan}` (or an .inf deep in an object) passed the start checks and failed
    every fire; a required input given null was worded 'must be of type string, got null
    null'."""
    from engine.spec.triggers import schedule_problems

    declared = {"x": {"type": "number"}, "y": {"type": "object"}, "s": {"type": "string"}}
    problems = schedule_problems([{"cron": "0 7 * * *", "inputs": {
        "x": float("nan"), "y": {"a": [1, float("inf")]}, "s": None}}], declared)
    assert [(p.message, p.path) for p in problems] == [
        ("schedule input 'x' holds the number NaN, which JSON cannot represent",
         ("on", "schedule", 0, "inputs", "x")),
        ("schedule input 'y' holds the number Infinity at y[\"a\"][1], which JSON cannot "
         "represent", ("on", "schedule", 0, "inputs", "y")),
        ("schedule input 's' is required, got null", ("on", "schedule", 0, "inputs", "s"))]
    assert problems[0].hint is not None and "finite number" in problems[0].hint
    assert schedule_problems([{"cron": "0 7 * * *", "inputs": {"x": 2.5, "y": {"a": [1]},
                                                               "s": "ok"}}], declared) == []


def test_a_schedule_input_is_checked_against_its_enum_as_the_run_checks_it() -> None:
    """Python's `in` takes true for 1: {a: true} passed an enum of {a: 1} at start, and the
    run refused it at every fire."""
    from engine.spec.triggers import schedule_problems

    declared = {"o": {"type": "object", "enum": [{"a": 1}]},
                "l": {"type": "array", "enum": [[1, 2]]}}
    problems = schedule_problems([{"cron": "0 7 * * *", "inputs": {
        "o": {"a": True}, "l": [1, 2]}}], declared)
    assert [p.message for p in problems] == [
        "schedule input 'o' must be one of {\"a\": 1}; got {\"a\": true}"]


def test_a_null_schedule_input_is_its_default_as_in_a_run() -> None:
    """A run takes null as 'not given' (the default); the start checks refused it as the
    wrong type, so a schedule could not leave an optional input to its default that way."""
    from engine.spec.triggers import schedule_problems

    declared = {"d": {"type": "string", "default": "a"},
                "o": {"type": "integer", "required": False}}
    assert schedule_problems([{"cron": "0 7 * * *", "inputs": {"d": None, "o": None}}],
                             declared) == []


@pytest.mark.parametrize("hours", ["*/1", "0-23", "0-11,12-23"])
def test_every_hour_written_otherwise_keeps_real_time_in_the_fall_back(hours: str) -> None:
    """Only a literal `*` counted as every hour: `0 */1 * * *` skipped the second 02:00 of
    the fall-back night (a 2-hour gap), unlike `0 * * * *`, the same schedule."""
    start = utc(2026, 10, 24, 22, 30)
    got = fires(f"0 {hours} * * *", "Europe/Berlin", start, 5)
    assert [g.astimezone(UTC) for g in got] == [
        g.astimezone(UTC) for g in fires("0 * * * *", "Europe/Berlin", start, 5)]
    assert [g.hour for g in got] == [1, 2, 2, 3, 4]


@pytest.mark.parametrize("cron", ["* * * * *", "*/15 * * * *", "0 * * * *", "30 2 * * *",
                                  "0 1-3 * * *"])
@pytest.mark.parametrize("night", [utc(2026, 3, 28, 20), utc(2026, 10, 24, 20)])
def test_count_fires_counts_what_next_fire_steps_through(cron: str, night: dt.datetime
                                                         ) -> None:
    """The late-wake log counts the fires it missed in one pass; the same instants, DST
    nights included, as stepping next_fire one by one."""
    from runners.schedule import count_fires

    until = night + dt.timedelta(hours=10)
    stepped, when = 0, night
    for _ in range(1000):
        when = next_fire(cron, "Europe/Berlin", when)
        if when > until:
            break
        stepped += 1
    assert count_fires(cron, "Europe/Berlin", night, until, 10_000) == stepped
    assert count_fires(cron, "Europe/Berlin", night, until, 3) == min(stepped, 4)
