"""The checks of `on.schedule`: cron expressions, time zones and the inputs a schedule passes.

One implementation for `plait validate` (the loader's checker, located as file:line:col) and
`plait schedule` (which loads through the same checker). croniter is imported only when a
workflow has a schedule, so validating a workflow without `on:` stays fast.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import InputError, MissingDependencyError
from engine.jsontext import json_type, one_of, shown, shown_choices
from engine.spec.input_types import input_required, type_ok
from engine.spec.suggest import did_you_mean

_ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_HINT = ("write five fields: minute hour day-of-month month day-of-week "
              "(e.g. '0 7 * * 1-5') or @hourly, @daily, @weekly, @monthly, @yearly")


def croniter_class() -> Any:
    """croniter, imported on first use (it is an optional extra)."""
    try:
        from croniter import croniter
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingDependencyError("croniter", "cron") from exc
    return croniter


def normalise_cron(cron: str) -> str:
    """A five-field expression (aliases like ``@daily`` expanded), or ValueError why not.

    An expression that can never fire (``0 0 31 2 *``: February has no 31st) is refused too.
    """
    text = " ".join(cron.split())
    if not text:
        raise ValueError(f"cron expression is empty; {_CRON_HINT}")
    text = _ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValueError(f"cron expression {cron!r} has {len(fields)} fields; {_CRON_HINT}")
    croniter = croniter_class()
    try:
        it = croniter(text, _dt.datetime(2000, 1, 1))
    except Exception as exc:  # croniter raises several unrelated types
        raise ValueError(f"invalid cron expression {cron!r}: {exc}; ranges: minute 0-59, "
                         "hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6 "
                         "(0 = Sunday)") from exc
    try:
        it.get_next(_dt.datetime)
    except Exception as exc:  # CroniterBadDateError: no date matches
        raise ValueError(f"cron expression {cron!r} never fires: no date matches its "
                         "day-of-month and month (e.g. the 31st of February); "
                         "check those two fields") from exc
    return text


def zone(timezone: str) -> ZoneInfo:
    """The IANA time zone, or ValueError with a hint."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name that is a folder of the tz database ('Europe') is opened as a
        # file by zoneinfo when the tzdata package provides the database
        raise ValueError(
            f"unknown time zone {timezone!r}: use an IANA name such as 'Europe/Berlin', "
            "'America/New_York' or 'UTC' (install tzdata if none are found)") from exc


@dataclass(frozen=True)
class ScheduleProblem:
    """One problem of one `on.schedule` item; ``path`` is from the file's root."""

    message: str
    path: tuple[str | int, ...]
    hint: str | None = None
    key: bool = False


def schedule_problems(schedules: Any, inputs: Any) -> list[ScheduleProblem]:
    """Every problem of the raw `on.schedule` list, given the raw `inputs:` mapping.

    Items that are not mappings, and fields of the wrong type, are left to the schema.
    """
    declared = {k: v for k, v in inputs.items() if isinstance(k, str)} \
        if isinstance(inputs, dict) else {}
    problems: list[ScheduleProblem] = []
    for index, item in enumerate(schedules if isinstance(schedules, list) else []):
        if not isinstance(item, dict):
            continue
        base: tuple[str | int, ...] = ("on", "schedule", index)
        cron, tz = item.get("cron"), item.get("timezone", "UTC")
        for key, value, check in (("cron", cron, normalise_cron), ("timezone", tz, zone)):
            if isinstance(value, str):
                try:
                    check(value)
                except ValueError as exc:
                    problems.append(ScheduleProblem(str(exc), (*base, key)))
                except MissingDependencyError:
                    # the cron extra is not installed: its shape was checked; parsing it is
                    # left to `plait schedule` (which needs croniter and says so), and a
                    # workflow with a schedule still loads for `plait run` and `validate`
                    pass
        given = item.get("inputs", {})
        if isinstance(given, dict):
            where = (*base, "inputs") if "inputs" in item else base
            problems.extend(_input_problems(given, declared, where))
    return problems


def _unstorable(name: str, value: Any) -> InputError | None:
    """Why a run could not take `value` (YAML's .nan or .inf, anywhere in it), as the run
    would refuse it: every fire would fail on it."""
    from engine.executor.inputs import check_storable

    try:
        check_storable(name, value)
    except InputError as exc:
        return exc
    return None


def _input_problems(given: dict[str, Any], declared: dict[str, Any],
                    where: tuple[str | int, ...]) -> list[ScheduleProblem]:
    """``where`` is the item's `inputs:` (or the item, when it has none)."""
    problems: list[ScheduleProblem] = []
    for name, value in given.items():
        spec = declared.get(name)
        if spec is None:
            problems.append(ScheduleProblem(
                f"schedule input {name!r} is not a declared input", (*where, name),
                did_you_mean(name, declared) or
                f"declare it: inputs: {{{name}: {{type: string}}}}", key=True))
            continue
        kind = spec.get("type", "string") if isinstance(spec, dict) else "string"
        if value is None:  # as a run takes it: not given (the default), unless required
            if input_required(spec):
                problems.append(ScheduleProblem(
                    f"schedule input {name!r} is required, got null", (*where, name),
                    f"give it a value of type {kind}"))
            continue
        if not type_ok(kind, value):
            problems.append(ScheduleProblem(
                f"schedule input {name!r} must be of type {kind}, got {json_type(value)} "
                f"{shown(value, 40)}", (*where, name)))
        elif (unstorable := _unstorable(name, value)) is not None:
            problems.append(ScheduleProblem(f"schedule {unstorable.message}", (*where, name),
                                            unstorable.hint))
        enum = spec.get("enum") if isinstance(spec, dict) else None
        if isinstance(enum, list) and not one_of(value, enum):  # as the run compares
            problems.append(ScheduleProblem(
                f"schedule input {name!r} must be one of "
                f"{shown_choices(enum)}; got {shown(value, 40)}",
                (*where, name)))
    missing = [n for n, s in declared.items() if n not in given and input_required(s)]
    if missing:
        problems.append(ScheduleProblem(
            f"the schedule does not give required input{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)}", where,
            "add them: inputs: {" + ", ".join(f"{n}: ..." for n in missing) + "}", key=True))
    return problems

