"""Run inputs: typed, converted from command-line strings, checked before anything starts;
and the inputs of a resume (the run's own, checked against those given now)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.jsontext import finite, json_type, one_of, shown, shown_choices
from engine.spec.models import InputSpec
from engine.spec.suggest import did_you_mean

if TYPE_CHECKING:
    from engine.spec.workflow import Workflow
    from engine.state import RunRecord

#: run meta: the inputs that held a secret, recorded masked (a resume must be given them)
MASKED_INPUTS = "masked_inputs"

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def convert(name: str, spec: InputSpec, value: Any, *, from_text: bool) -> Any:
    """Convert one value to the input's type (strings from the command line are parsed).
    Errors name types and show values as a workflow writes them (JSON/YAML), not Python."""
    kind = spec.type
    if from_text and isinstance(value, str):
        value = _parse_text(name, kind, value)
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if isinstance(value, float) and not math.isfinite(value):
        check_storable(name, value)  # 1e400 is no "wrong type" for an integer: it has no JSON
    if not ok:
        raise InputError(f"input {name!r} must be of type {kind}, got {json_type(value)} "
                         f"{shown(value)}", input=name, hint=_type_hint(name, kind, value))
    if spec.enum is not None and not one_of(value, spec.enum):
        raise InputError(f"input {name!r} must be one of {shown_choices(spec.enum, 20)}; got "
                         f"{shown(value)}", input=name, hint="give one of those values")
    check_storable(name, value)
    return value


_TYPE_HINTS = {"string": 'give text (in JSON, in double quotes: "...")',
               "integer": "give a whole number, e.g. 3",
               "number": "give a number, e.g. 2.5",
               "boolean": "give true or false",
               "array": "give a list, e.g. [1, 2] (JSON) or [a, b] (YAML)",
               "object": 'give a mapping, e.g. {"key": "value"}'}


def _type_hint(name: str, kind: str, value: Any) -> str:
    if isinstance(value, str) and kind in _EXAMPLES:
        example = "{" + shown(name) + ": " + _EXAMPLES[kind] + "}"
        return f"write the {kind} without quotes, e.g. {example} (a quoted value is a string)"
    return _TYPE_HINTS[kind]


_EXAMPLES = {"integer": "3", "number": "2.5", "boolean": "true"}


def check_storable(name: str, value: Any, *, default: bool = False) -> None:
    """Refuse NaN and ±Infinity anywhere in `value` (JSON has no such numbers), and text that
    is not valid Unicode (a lone surrogate: what undecodable bytes on the command line, or a
    JSON escape such as \\udcff, become): neither the run record nor a --json result could
    hold them. Iterative: a deep value cannot overflow the stack here."""
    todo: list[tuple[Any, str]] = [(value, "")]
    while todo:
        item, where = todo.pop()
        if isinstance(item, str):
            if not item.isascii():
                _check_text(name, item, where, default)
        elif isinstance(item, float):
            if not math.isfinite(item):
                at = f" at {name}{where}" if where else ""
                what = "the default of input" if default else "input"
                raise InputError(f"{what} {name!r} holds the number {finite(item)}{at}, "
                                 "which JSON cannot represent", input=name,
                                 hint="change the default in the workflow to a finite number"
                                 if default else "pass a finite number; NaN, Infinity and "
                                 "numbers beyond about 1.8e308 have no JSON form")
        elif isinstance(item, dict):
            todo.extend((v, f"{where}[{shown(k)}]") for k, v in item.items())
            todo.extend((k, f"{where} (a key)") for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _check_text(name: str, text: str, where: str, default: bool) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = f" at {name}{where}" if where else ""
        what = "the default of input" if default else "input"
        raise InputError(f"{what} {name!r} holds text that is not valid UTF-8{at} (character "
                         f"{exc.start}: {json.dumps(text[exc.start])})", input=name,
                         hint="fix the default in the workflow" if default else
                         "pass the value as UTF-8 text (check the terminal's or the file's "
                         "encoding)") from None


_TEXT_HINTS = {"integer": "pass a whole number, e.g. -i {name}=3",
               "number": "pass a number, e.g. -i {name}=2.5",
               "boolean": "pass true or false (yes/no and 1/0 work too)",
               "object": "pass JSON for objects and arrays",
               "array": "pass JSON for objects and arrays"}


def _parse_text(name: str, kind: str, text: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "boolean":
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if kind in ("object", "array"):
            return json.loads(text)
    except RecursionError:
        raise InputError(f"input {name!r} is nested too deeply to read", input=name,
                         hint="pass a value with fewer levels of nesting") from None
    except ValueError:
        raise InputError(f"input {name!r} must be of type {kind}, got {shown(text)}",
                         input=name, hint=_TEXT_HINTS.get(kind, "").format(name=name) or None
                         ) from None
    return text


def resolve_inputs(declared: Mapping[str, InputSpec], given: Mapping[str, Any], *,
                   from_text: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The full inputs of a run: given values converted, defaults filled, all checked.
    Names in `from_text` came from the command line as strings. A value given as null (JSON
    `null`, YAML `~`, Python None) counts as not given: the input's default, or null for an
    input that is not required."""
    unknown = [k for k in given if k not in declared]
    if unknown:
        name = unknown[0]
        raise InputError(f"unknown input {name!r}", input=name,
                         hint=did_you_mean(name, declared, what="input"))
    out: dict[str, Any] = {}
    missing = []
    for name, spec in declared.items():
        value = given.get(name)
        if name in from_text and isinstance(value, str):  # `-i obj=null` is JSON null
            value = _parse_text(name, spec.type, value)
        if value is None and name in given and spec.is_required:
            raise InputError(f"input {name!r} is required, got null", input=name,
                             hint=f"give it a value of type {spec.type}")
        if value is not None:  # null is the same as not given: the default, if any
            out[name] = convert(name, spec, value, from_text=False)
        elif spec.default is not None:
            check_storable(name, spec.default, default=True)
            out[name] = spec.default
        elif spec.is_required:
            missing.append(name)
        else:
            out[name] = None
    if missing:
        raise InputError(f"missing required input{'s' if len(missing) > 1 else ''}: "
                         f"{', '.join(missing)}",
                         hint=f"pass {' '.join(f'-i {m}=VALUE' for m in missing)} or --inputs "
                              "FILE.json",
                         missing=", ".join(missing))
    return out


def resume_inputs(previous: RunRecord, given: dict[str, Any], workflow: Workflow,
                  from_text: frozenset[str]) -> dict[str, Any]:
    """The inputs of a resume: the run's own, with those given now over them (checked equal
    later, see check_same_inputs). An input the workflow declares now that the run did not
    have is taken as given, or from its default: the run's finished steps ran without it, and
    a step that uses it changed, so it runs again (the resume's step comparison in
    engine.executor.run). A required one must be given with -i. An input the run had that the
    workflow no longer declares is refused."""
    kept = _recorded_inputs(previous, given, workflow)
    try:
        return resolve_inputs(workflow.spec.inputs, {**kept, **given}, from_text=from_text)
    except InputError as exc:
        name = exc.context.get("input")
        if exc.context.get("missing"):  # not in the record: declared since the run
            names = [n.strip() for n in str(exc.context["missing"]).split(",")]
            flags = " ".join(f"-i {n}=VALUE" for n in names)
            it = "them" if len(names) > 1 else "it"
            raise InputError(
                f"the workflow now requires input{'s' if len(names) > 1 else ''} "
                f"{', '.join(repr(n) for n in names)}, which run {previous.run_id} did not "
                "have", missing=", ".join(names),
                hint=f"give {it} to the resume: {flags} (the run's other inputs are reused; "
                     f"its finished steps ran without {it} and are not run again)") from None
        if name in kept and name not in given:  # the run's value, under a changed declaration
            raise InputError(
                f"run {previous.run_id}'s input {name!r} does not fit the workflow any more: "
                f"{exc.message}", input=name,
                hint="the input's declaration changed since the run, and a resume runs with "
                     "the run's inputs: undo the change, or start a new run") from None
        raise


def _recorded_inputs(previous: RunRecord, given: dict[str, Any],
                     workflow: Workflow) -> dict[str, Any]:
    """The run's recorded inputs a resume reuses. An input that held a secret was recorded
    masked, so it cannot be reused: it must be given again."""
    masked = previous.meta.get(MASKED_INPUTS) or []
    # one the workflow no longer declares is refused as such below, not asked for
    missing = [name for name in masked if name not in given and name in workflow.spec.inputs]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        flags = " ".join(f"-i {n}=..." for n in missing)
        raise InputError(f"run {previous.run_id}'s input(s) {names} held a secret and were "
                         "recorded masked, so they cannot be reused",
                         hint=f"give them again, with the values the run had: {flags}")
    gone = sorted(k for k in previous.inputs if k not in workflow.spec.inputs)
    if gone:
        names = ", ".join(repr(n) for n in gone)
        raise InputError(f"run {previous.run_id} had input{'s' if len(gone) > 1 else ''} "
                         f"{names}, which the workflow no longer declares; a resume runs with "
                         "the run's inputs", input=gone[0],
                         hint="declare it again to resume, or start a new run (plait run "
                              "FILE, without --resume)")
    return {k: v for k, v in previous.inputs.items() if k not in masked}


def check_same_inputs(previous: RunRecord, inputs: Mapping[str, Any],
                      given: Mapping[str, Any]) -> None:
    """A resume runs with the run's inputs: any other value would make its finished steps'
    outputs stale. Inputs the run did not have (declared since) are not compared: no finished
    step used them. `inputs` must have their secrets masked, as the run's recorded ones do:
    the message shows both values (but neither for an input whose value held a secret)."""
    old = previous.inputs
    differ = sorted(k for k in old if k not in inputs or not _same(old[k], inputs[k]))
    changed = [k for k in differ if k not in given and old[k] is None]  # a default since
    if changed:
        names = ", ".join(repr(n) for n in changed)
        several = len(changed) > 1
        raise InputError(f"run {previous.run_id} had no value for input{'s' if several else ''} "
                         f"{names}, and the workflow now gives "
                         f"{'them defaults' if several else 'it a default'}",
                         hint="a resume runs with the run's inputs: undo the change, or start "
                              "a new run (plait run FILE, without --resume)")
    if differ:
        names = ", ".join(repr(n) for n in differ)
        masked = previous.meta.get(MASKED_INPUTS) or []
        values = "; ".join(_two_values(n, old[n], inputs, several=len(differ) > 1,
                                       masked=n in masked) for n in differ[:5])
        more = f"; and {len(differ) - 5} more" if len(differ) > 5 else ""
        raise InputError(f"input{'s' if len(differ) > 1 else ''} {names} "
                         f"differ{'' if len(differ) > 1 else 's'} from run "
                         f"{previous.run_id}'s: {values}{more}",
                         hint="leave them out to reuse the run's values, or start a new run "
                              "(plait run FILE, without --resume) to use the new ones")


def _same(recorded: Any, value: Any) -> bool:
    """Whether a value is the one recorded, as JSON has it: Python's == holds [1] equal to
    [true] and 1 to 1.0, which a step renders differently."""
    if recorded != value:
        return False
    try:
        return json.dumps(recorded, sort_keys=True) == json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):  # not JSON (a library caller's value): == it is
        return True


def _two_values(name: str, recorded: Any, inputs: Mapping[str, Any], *, several: bool,
                masked: bool) -> str:
    """The recorded and the given value of an input, as JSON cut to about 60 characters
    each. An input whose value held a secret shows neither: a new value given for it is
    masked only where it holds a known secret, and may be another one."""
    label = f"{name!r}: " if several else ""
    if masked:
        return f"{label}it held a secret, so neither value is shown"
    now = shown(inputs[name]) if name in inputs else "nothing"
    return f"{label}the run had {shown(recorded)}, given {now}"
