"""Every kind of bad workflow file gives located errors, all at once, and nothing runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine.errors import SpecError, SpecIssue
from engine.spec.loader import load, load_text

GOOD = """\
version: 1
name: ok
providers:
  fast: {kind: echo, model: m}
steps:
  a:
    llm: fast
    prompt: hi
"""


def issues_of(text: str, name: str = "wf.yaml") -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        load_text(text, name)
    return info.value.issues


def one(text: str) -> SpecIssue:
    issues = issues_of(text)
    assert len(issues) == 1, [i.format() for i in issues]
    return issues[0]


def test_good_file_loads() -> None:
    wf = load_text(GOOD, "wf.yaml")
    assert list(wf.spec.steps) == ["a"]
    assert wf.kind("a") == "llm"


def test_invalid_yaml_is_located() -> None:
    issue = one("version: 1\nsteps: [a, b\n")
    assert issue.message.startswith("invalid YAML")
    assert (issue.location.line, issue.code) == (3, "yaml")


def test_duplicate_keys_are_errors_not_last_wins() -> None:
    issue = one(GOOD + "  a:\n    run: ls\n")
    assert "duplicate key 'a'" in issue.message
    assert "first defined at line 6" in issue.message
    assert issue.location.line == 9


def test_alias_bomb_is_refused_fast() -> None:
    text = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    prev = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    started = time.perf_counter()
    issue = one(text)
    assert "alias" in issue.message
    assert time.perf_counter() - started < 5  # a guard against hanging, not a benchmark


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("version: 1\nname: big\ndescription: '")
        f.write("x" * (50 * 1024 * 1024))
        f.write("'\n")
    with pytest.raises(SpecError) as info:
        load(big)
    assert "over the" in info.value.issues[0].message
    assert info.value.issues[0].hint and "PLAIT_MAX_SPEC_BYTES" in info.value.issues[0].hint


def test_tabs_non_string_keys_and_python_tags() -> None:
    assert "tab" in one("version: 1\nsteps:\n\ta: {run: ls}\n").message
    issues = issues_of("version: 1\nname: x\n1: x\nsteps:\n  a: !!python/object:os.system ls\n")
    messages = " | ".join(i.message for i in issues)
    assert "keys must be strings" in messages
    assert "unsupported YAML tag" in messages


def test_a_tab_inside_a_block_scalar_is_text_not_indentation() -> None:
    # a heredoc that strips leading tabs (`<<-`), a prompt holding a TSV table
    text = ("version: 1\nname: ok\nproviders:\n  fast: {kind: echo}\nsteps:\n"
            "  a:\n    run: |\n      cat <<-EOF\n      \thello\n      \tEOF\n"
            "  b:\n    llm: fast\n    prompt: |\n      name\tsize\n      \tindented\n")
    wf = load_text(text, "wf.yaml")
    assert wf.spec.steps["a"].run == "cat <<-EOF\n\thello\n\tEOF\n"  # type: ignore[union-attr]
    # a tab that indents a line of the block is still refused, at that line
    bad = text.replace("      \tindented", "\tindented")
    issue = one(bad)
    assert "tab character used for indentation" in issue.message
    assert (issue.location.line, issue.location.column) == (15, 1)


def test_a_line_of_only_a_tab_says_to_use_spaces() -> None:
    issue = one(GOOD + "\t\n")
    assert "tab character" in issue.message
    assert issue.hint is not None and "spaces" in issue.hint


def test_on_and_no_stay_strings_yaml_1_2() -> None:
    wf = load_text(GOOD + "on:\n  schedule: [{cron: '0 7 * * *'}]\ninputs:\n"
                   "  flag: {type: string, default: no}\n", "wf.yaml")
    assert wf.spec.on is not None and wf.spec.on.schedule[0].cron == "0 7 * * *"
    assert wf.spec.inputs["flag"].default == "no"


BASE = "version: 1\nname: ok\nproviders:\n  fast: {kind: echo}\n"
STEP = "steps:\n  a: {llm: fast, prompt: hi}\n"


@pytest.mark.parametrize(("text", "suggestion"), [
    (BASE + STEP + "versoin: 1\n", "version"),
    (BASE + "  p: {kind: echo, modle: x}\n" + STEP, "model"),
    (BASE + "mcp_servers:\n  s: {command: x, argz: []}\n" + STEP, "args"),
    (BASE + "policies:\n  p: {level: high, netwrok: false}\n" + STEP, "network"),
    (BASE + "defaults:\n  retyr: {attempts: 2}\n" + STEP, "retry"),
    (BASE + "defaults:\n  retry: {attempts: 2, bakoff: constant}\n" + STEP, "backoff"),
    (BASE + "inputs:\n  x: {type: string, defualt: a}\n" + STEP, "default"),
    (BASE + STEP + "tests:\n  - {name: t, input: {}}\n", "inputs"),
    (BASE + STEP + "  b: {run: ls, need: [a]}\n", "needs"),
    (BASE + STEP + "  b: {run: ls, retry: {attempts: 2, initail: 1s}}\n", "initial"),
    (BASE + "mcp_servers:\n  s: {command: x}\n" + STEP + "  b: {tool: s.t, wiht: {}}\n",
     "with"),
    (BASE + STEP + "  b: {llm: fast, prompt: x, output_shema: {}}\n", "output_schema"),
    (BASE + STEP + "on:\n  schedules: []\n", "schedule"),
])
def test_unknown_keys_at_every_level(text: str, suggestion: str) -> None:
    issues = [i for i in issues_of(text) if i.code == "unknown_key"]
    assert len(issues) == 1, text
    assert issues[0].hint == f"did you mean {suggestion!r}?"
    line = next(n for n, src in enumerate(text.splitlines(), 1)
                if issues[0].dotted_path.rsplit(".", 1)[-1].split("[")[0] in src
                and n >= issues[0].location.line)
    assert issues[0].location.line == line


def test_unknown_key_in_a_step_points_at_the_key() -> None:
    issue = one(GOOD.replace("    prompt: hi", "    promt: hi"))
    assert issue.message == "unknown key 'promt'"
    assert (issue.location.line, issue.location.column) == (8, 5)
    assert issue.dotted_path == "steps.a.promt"
    assert issue.hint == "did you mean 'prompt'?"


def test_wrong_types_are_explained() -> None:
    issues = issues_of(GOOD + "  b:\n    run: 5\n  c:\n    run: ls\n    timeout: soon\n"
                       "concurrency: lots\n")
    text = "\n".join(i.format() for i in issues)
    assert "wf.yaml:10:10: expected a string or a list, got integer 5" in text
    assert 'duration such as 500ms, 30s, 5m or 1h, got string "soon"' in text
    assert 'expected an integer, got string "lots"' in text


@pytest.mark.parametrize(("line", "said"), [
    ("concurrency: true", "expected an integer, got boolean true at 'concurrency'"),
    ("concurrency: '4'", "expected an integer, got string \"4\" at 'concurrency'"),
    ("defaults: {continue_on_error: 'yes'}",
     "expected true or false, got string \"yes\" at 'defaults.continue_on_error'"),
    ("defaults: {retry: {attempts: '3'}}",
     "expected an integer, got string \"3\" at 'defaults.retry.attempts'"),
])
def test_a_value_of_another_json_type_is_refused_as_the_published_schema_does(
        line: str, said: str) -> None:
    """pydantic's lax mode took `true` and "4" for 4 and "yes" for true, so `plait validate`
    passed files that schemas/workflow.schema.json (what editors check) refuses."""
    issue = one(GOOD.replace("steps:", line + "\nsteps:"))
    assert issue.message + " at " in issue.format() and said in issue.format()


@pytest.mark.parametrize("value", ["0s", "0ms", "0"])
def test_a_zero_timeout_is_refused_where_it_is_written(value: str) -> None:
    """It would end every attempt as it starts (each retried, all failing)."""
    issue = one(GOOD.replace("    prompt: hi", f"    prompt: hi\n    timeout: {value}"))
    shown = value if value == "0" else repr(value)  # YAML's 0 is a number
    assert issue.message == (f"a timeout must be more than zero, got {shown} (leave the key "
                             "out for no timeout)")
    assert (issue.location.line, issue.dotted_path) == (9, "steps.a.timeout")


def test_cycle_prints_its_path() -> None:
    text = GOOD + "  b:\n    run: echo ${{ steps.c.output }}\n  c:\n    run: ls\n    needs: [b]\n"
    issue = one(text)
    assert issue.code == "cycle"
    assert "b -> c -> b" in issue.message


def test_self_dependency_and_unknown_references() -> None:
    text = GOOD.replace("llm: fast", "llm: fats") + (
        "  b:\n    run: ls\n    needs: [b]\n"
        "  c:\n    run: ls\n    needs: [zz]\n    policy: nope\n"
        "  d:\n    tool: nowhere.x\n"
        "outputs:\n  o: ${{ steps.missing.output }}\n")
    issues = issues_of(text)
    codes = sorted(i.code for i in issues)
    assert codes.count("reference") == 3 + 1, [i.format() for i in issues]
    assert "self_dependency" in codes and "unknown_step" in codes
    assert any(i.hint == "did you mean 'fast'?" for i in issues)


@pytest.mark.parametrize("expr", [
    "${{ 1 + }}",
    "${{ steps.a.output.__class__ }}",
    "${{ lipsum.__globals__ }}",
    "${{ inputs['__globals__'] }}",
    "${{ import os }}",
    "${{ cycler.__init__.__globals__.os.popen('id').read() }}",
])
def test_bad_or_hostile_expressions_are_spec_errors(expr: str) -> None:
    issues = issues_of(GOOD + f"  b:\n    run: \"echo {expr}\"\n")
    assert issues and all(i.code == "expression" for i in issues)
    assert issues[0].location.line == 10
    assert issues[0].location.column > 10  # inside the string, where the expression is


def test_all_errors_are_reported_in_one_pass() -> None:
    text = ("version: 2\nname: 'bad name'\nsteps:\n  a: {llm: nope, prompt: x}\n"
            "  b: {run: ls, needz: []}\n  c: {}\n")
    issues = issues_of(text)
    assert len(issues) >= 5
    assert [i.location.line for i in issues] == sorted(i.location.line for i in issues)


def test_undeclared_secret_is_a_spec_error() -> None:
    issue = one(GOOD + "  b:\n    run: echo ${{ secrets.TOKEN }}\n")
    assert issue.code == "secret"
    assert issue.hint == "add it: secrets: [TOKEN]"


def test_missing_sub_workflow_file(tmp_path: Path) -> None:
    path = tmp_path / "main.yaml"
    path.write_text(GOOD + "  b:\n    workflow: child.yaml\n")
    with pytest.raises(SpecError) as info:
        load(path)
    assert "sub-workflow file 'child.yaml' not found" in info.value.issues[0].message


def test_expression_errors_keep_their_did_you_mean_hint() -> None:
    issues = issues_of(GOOD + "  b:\n    run: \"echo ${{ step.a.output }} "
                       "${{ 'x' | lenght }}\"\n")
    hints = sorted(i.hint or "" for i in issues if i.code == "expression")
    assert hints == ["did you mean 'length'?", "did you mean 'steps'?"], \
        [i.format() for i in issues]


def test_an_input_that_is_not_declared_is_a_located_spec_error() -> None:
    text = GOOD.replace("version: 1\n", "version: 1\ninputs:\n  topic: {type: string}\n") \
        + "  b:\n    llm: fast\n    prompt: \"about ${{ inputs.topc }} ${{ inputs['topic'] }}\"\n"
    issue = one(text)
    assert issue.code == "input" and issue.path == ("steps", "b", "prompt")
    assert "'topc'" in issue.message and issue.hint == "did you mean 'topic'?"
    assert issue.location.line == 13
    ok = text.replace("inputs.topc", "inputs.topic")
    assert load_text(ok, "wf.yaml").spec.inputs["topic"].type == "string"


@pytest.mark.parametrize(("step", "field"), [
    ("  b:\n    llm: fast\n    prompt: \"${{ item.name }}\"\n", "prompt"),
    ("  b:\n    foreach: ${{ [1, 2] }}\n    if: ${{ index > 0 }}\n    llm: fast\n"
     "    prompt: \"${{ item }}\"\n", "if"),
])
def test_item_and_index_outside_a_foreach_item_are_spec_errors(step: str, field: str) -> None:
    issue = one(GOOD + step)
    assert issue.path == ("steps", "b", field) and issue.code == "expression"
    assert "foreach" in (issue.hint or "")


def test_item_and_index_in_the_fields_of_a_foreach_step_are_fine() -> None:
    wf = load_text(GOOD + "  b:\n    foreach: ${{ [1, 2] }}\n    llm: fast\n"
                   "    prompt: \"${{ item }} of ${{ index }}\"\n", "wf.yaml")
    assert wf.kind("b") == "llm"


def test_an_option_the_provider_kind_does_not_know_is_a_located_spec_error() -> None:
    text = ("version: 1\nname: ok\nproviders:\n  o: {kind: openai, options: {temprature: 0}}\n"
            "  e: {kind: echo}\nsteps:\n  a:\n    llm: e\n    prompt: hi\n"
            "    options: {latncy: 1}\n  b:\n    llm: o\n    prompt: hi\n"
            "    options: {extra_body: {x: 1}, seed: 3}\n")
    issues = issues_of(text)
    assert [(i.path, i.code) for i in issues] == [
        (("providers", "o", "options", "temprature"), "option"),
        (("steps", "a", "options", "latncy"), "option")]
    assert issues[0].hint is not None and issues[0].hint.startswith(
        "did you mean 'temperature'?")
    assert issues[1].hint == "did you mean 'latency'?"
    assert (issues[0].location.line, issues[1].location.line) == (4, 10)


def test_sub_workflow_inputs_are_checked_against_the_child_file(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "version: 1\nname: child\ninputs:\n  n: {type: integer}\n"
        "  label: {type: string, default: x}\nproviders:\n  m: {kind: echo}\nsteps:\n"
        "  a: {llm: m, prompt: \"${{ inputs.n }} ${{ inputs.label }}\"}\n")
    parent = tmp_path / "parent.yaml"
    parent.write_text("version: 1\nname: parent\nsteps:\n"
                      "  s1:\n    workflow: child.yaml\n    with: {lable: y}\n"
                      "  s2:\n    workflow: child.yaml\n")
    with pytest.raises(SpecError) as info:
        load(parent)
    found = sorted((i.path, i.message) for i in info.value.issues)
    assert found == [
        (("steps", "s1", "with"), "sub-workflow child.yaml needs input(s) n"),
        (("steps", "s1", "with", "lable"), "sub-workflow child.yaml has no input 'lable'"),
        (("steps", "s2", "workflow"), "sub-workflow child.yaml needs input(s) n")]
    parent.write_text("version: 1\nname: parent\nsteps:\n"
                      "  s1:\n    workflow: child.yaml\n    with: {n: 3}\n")
    assert load(parent).kind("s1") == "workflow"


def test_a_test_assertion_that_can_never_work_is_a_spec_error() -> None:
    text = GOOD + ("outputs:\n  o: ${{ steps.a.output }}\ntests:\n  - name: c\n    assert:\n"
                   "      - {output: o, matches: '(unclosed'}\n"
                   "      - {output: o, schema: {type: strnig}}\n"
                   "      - {output: o, matches: '^echo', schema: {type: string}}\n")
    issues = issues_of(text)
    assert [(i.path, i.code) for i in issues] == [
        (("tests", 0, "assert", 0, "matches"), "assertion"),
        (("tests", 0, "assert", 1, "schema"), "assertion")]
    assert "not a valid regular expression" in issues[0].message
    assert "not a valid JSON Schema" in issues[1].message


def test_a_provider_url_or_api_version_that_cannot_work_is_located() -> None:
    text = ("version: 1\nname: urls\nproviders:\n"
            "  x: {kind: openai, base_url: '127.0.0.1:8000/v1', model: m}\n"
            "  az: {kind: azure_openai, endpoint: not a url, api_version: banana,\n"
            "       deployment: d, model: gpt-4o, api_key: k}\n"
            "  fine: {kind: openai, base_url: 'http://127.0.0.1:8000/v1', model: m}\n"
            "steps:\n  a: {llm: x, prompt: hi}\n")
    found = [(i.location.line, i.location.column, i.dotted_path, i.message)
             for i in issues_of(text)]
    assert found == [
        (4, 31, "providers.x.base_url",
         "provider 'x': `base_url` '127.0.0.1:8000/v1' is not an http(s) URL"),
        (5, 38, "providers.az.endpoint",
         "provider 'az': `endpoint` 'not a url' is not an http(s) URL"),
        (5, 62, "providers.az.api_version",
         "provider 'az': `api_version` 'banana' is not an Azure OpenAI API version")]


SCHEDULES = GOOD + """\
inputs:
  x: {type: integer}
on:
  schedule:
    - {cron: "0 25 * * *", inputs: {x: 1}}
    - {cron: "0 0 * * * *", timezone: Europe/Atlantis, inputs: {x: 1}}
    - {cron: "@every 5m", inputs: {x: 1}}
    - {cron: "", inputs: {x: 1}}
    - {cron: "0 0 31 2 *", inputs: {x: 1}}
    - {cron: "0 7 * * 1-5", inputs: {colour: red}}
    - cron: "@daily"
"""


def test_validate_checks_schedules_as_plait_schedule_does() -> None:
    """Each bad cron, zone and schedule input is located (plait schedule loads the same way)."""
    found = [(i.location.line, i.location.column, i.message) for i in issues_of(SCHEDULES)]
    lines = [f"{line}:{col}: {msg}" for line, col, msg in found]
    assert any(t.startswith("13:14: invalid cron expression '0 25 * * *'") for t in lines)
    assert any(t.startswith("14:14: cron expression '0 0 * * * *' has 6 fields") for t in lines)
    assert any(t.startswith("14:39: unknown time zone 'Europe/Atlantis'") for t in lines)
    assert any(t.startswith("15:14: cron expression '@every 5m' has 2 fields") for t in lines)
    assert any(t.startswith("16:14: cron expression is empty;") for t in lines)
    assert any(t.startswith("17:14: cron expression '0 0 31 2 *' never fires") for t in lines)
    assert any(t.startswith("18:38: schedule input 'colour' is not a declared input")
               for t in lines)
    assert any(t.startswith("18:29: the schedule does not give required input x")
               for t in lines)
    assert any(t.startswith("19:7: the schedule does not give required input x")
               for t in lines)
    assert len(lines) == 9, lines


def test_validate_imports_no_croniter_without_a_schedule(tmp_path: Path) -> None:
    import subprocess
    import sys

    wf = tmp_path / "wf.yaml"
    wf.write_text(GOOD)
    root = Path(__file__).resolve().parents[2]
    code = (f"import sys; from engine.spec.loader import load; load({str(wf)!r}); "
            "print('croniter' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=root, timeout=60, check=True)
    assert out.stdout.strip() == "False"
    with_schedule = code.replace("load(", "wf = load(").replace(
        "print(", f"open({str(wf)!r}, 'a').write(\"on: {{schedule: [{{cron: '@daily'}}]}}\\n\"); "
        f"load({str(wf)!r}); print(")
    out = subprocess.run([sys.executable, "-c", with_schedule], capture_output=True, text=True,
                         cwd=root, timeout=60, check=True)
    assert out.stdout.strip() == "True"


def test_a_workflow_with_a_schedule_loads_without_the_cron_extra() -> None:
    """croniter is optional (the `cron` extra): without it a scheduled workflow still loads
    (for plait run and validate), with the cron's shape checked."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['croniter'] = None\n"
        "from engine.errors import SpecError\n"
        "from engine.spec.loader import load_text\n"
        "body = 'version: 1\\nname: s\\non:\\n  schedule:\\n    - cron: {!r}\\n"
        "providers:\\n  p: {{kind: echo}}\\nsteps:\\n  a: {{llm: p, prompt: hi}}\\n'\n"
        "print(load_text(body.format('0 9 * * 1'), 's.yaml').name)\n"
        "try:\n    load_text(body.format('0 9 * *'), 's.yaml')\n"
        "except SpecError as exc:\n    print(exc.issues[0].message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "s" and "has 4 fields" in lines[1]


def test_a_policy_that_can_never_be_resolved_is_located() -> None:
    """`plait validate` reports what `plait run` would refuse before any step: a critical
    policy asking for network or paths, and a rule whose pattern is no regular expression."""
    text = ("version: 1\nname: pol\npolicies:\n"
            "  locked: {level: critical, network: true, filesystem: {read: [data]}}\n"
            "  ruled:\n    rules: [{name: r, pattern: 'a(b'}]\n"
            "  fine: {level: critical, network: false}\n"
            "steps:\n  a: {run: 'true', policy: locked}\n")
    found = [(i.location.line, i.dotted_path, i.message) for i in issues_of(text)]
    assert found == [
        (4, "policies.locked.network", "policy 'locked' is level critical, which allows no "
         "network and no filesystem beyond a private temp dir"),
        (4, "policies.locked.filesystem", "policy 'locked' is level critical, which allows no "
         "network and no filesystem beyond a private temp dir"),
        (6, "policies.ruled.rules[0].pattern", "policy 'ruled': rule 'r' has an invalid "
         "regular expression 'a(b': missing ), unterminated subpattern at position 1")]


@pytest.mark.parametrize(("value", "got"), [
    ("5", "integer 5"), ('"abc"', 'string "abc"'), ("${{ 5 }}", "integer 5"),
    ("${{ 'a' ~ 'b' }}", 'string "ab"')])
def test_a_foreach_known_now_to_be_no_list_is_a_spec_error(value: str, got: str) -> None:
    """Every run would fail at the step: validate says so, at the value (its type worded as
    JSON/YAML words it, as plait does everywhere: not Python's `str`/`int`)."""
    issue = one(GOOD + f"  b:\n    foreach: {value}\n    llm: fast\n    prompt: x\n")
    assert issue.message == f"foreach needs a list (or a mapping), got {got}"
    assert (issue.location.line, issue.location.column) == (10, 14)


@pytest.mark.parametrize("value", ["[1, 2]", "{a: 1}", "${{ [1, 2] }}", "${{ steps.a.output }}"])
def test_a_foreach_of_a_list_mapping_or_later_value_loads(value: str) -> None:
    wf = load_text(GOOD + f"  b:\n    foreach: {value}\n    llm: fast\n    prompt: x\n",
                   "wf.yaml")
    assert wf.kind("b") == "llm"


def test_a_test_case_that_cannot_check_what_it_says_is_a_spec_error() -> None:
    """Two cases of one name (they would share a snapshot), an assertion that checks nothing
    (it always passes) and one about an output the workflow does not have (it always fails)
    are found by validate, at the key, not when the tests run."""
    text = GOOD + ("outputs:\n  answer: ${{ steps.a.output }}\ntests:\n"
                   "  - name: c\n    assert:\n"
                   "      - {output: answer}\n"
                   "      - {output: answr, contains: x}\n"
                   "      - {output: answer, contains: echo}\n"
                   "      - {max_steps: 1}\n"
                   "  - name: c\n    snapshot: false\n")
    issues = issues_of(text)
    assert [(i.path, i.code, i.location.line, i.location.column) for i in issues] == [
        (("tests", 0, "assert", 0), "assertion", 14, 9),
        (("tests", 0, "assert", 1, "output"), "assertion", 15, 18),
        (("tests", 1, "name"), "test", 18, 11)]
    assert issues[0].message == "assertion checks nothing: it names output 'answer' only"
    assert "equals, contains, matches, schema, max_cost or max_steps" in (issues[0].hint or "")
    assert issues[1].message == "the workflow has no output 'answr'"
    assert "did you mean 'answer'" in (issues[1].hint or "")
    assert issues[2].message == "a second test case named 'c' (the first is tests[0])"


def test_two_cases_with_other_inputs_in_one_cassette_directory_is_a_spec_error() -> None:
    """A cassette holds one run: `plait test --record` of the second case overwrote the
    first's, both passed, and the next `plait test` failed the first. Same inputs (defaults
    filled in) may share one."""
    text = GOOD.replace("steps:", "inputs:\n  q: {type: string, default: x}\nsteps:") + (
        "tests:\n"
        "  - {name: one, cassette: tapes/a}\n"
        "  - {name: same, cassette: ./tapes/a/, inputs: {q: x}}\n"
        "  - {name: other, cassette: tapes//a, inputs: {q: y}}\n"
        "  - {name: own, cassette: tapes/b, inputs: {q: y}}\n")
    issue = one(text)
    assert (issue.path, issue.code, issue.location.line) == (("tests", 2, "cassette"), "test", 14)
    assert issue.message == ("case 'other' shares the cassette directory tapes/a with case 'one' "
                             "but runs with other inputs: recording one overwrites the other's")
    assert issue.hint == "give case 'other' a cassette directory of its own"


def test_a_test_case_input_of_the_wrong_type_is_located() -> None:
    """It validated as ok and the case errored when run, with no file or line."""
    text = GOOD.replace("steps:", "inputs:\n  n: {type: integer, default: 1}\n"
                                  "  mode: {type: string, enum: [a, b], default: a}\nsteps:") + (
        "tests:\n  - {name: one, inputs: {n: many, mode: c}}\n  - {name: two, inputs: {n: 2}}\n")
    issues = issues_of(text)
    assert [(i.path, i.location.line, i.message) for i in issues] == [
        (("tests", 0, "inputs", "n"), 13,
         'test input \'n\' must be of type integer, got string "many"'),
        (("tests", 0, "inputs", "mode"), 13,
         'test input \'mode\' must be one of "a", "b"; got "c"')]


@pytest.mark.parametrize(("value", "got"), [
    ("true", "boolean true"),  # not Python's True
    ("{a: 1, b: [x, null]}", 'object {"a": 1, "b": ["x", null]}'),
    ("[1.5, 'it''s']", 'array [1.5, "it\'s"]'),
    ("'" + "y" * 60 + "'", 'string "' + "y" * 36 + '...'),
])
def test_a_test_case_input_of_the_wrong_type_is_shown_as_json_as_a_run_shows_it(
        value: str, got: str) -> None:
    """Worded like the run's own input error (engine/executor/inputs.py): JSON type names
    and JSON values, not Python's repr ('x', True, None)."""
    text = GOOD.replace("steps:", "inputs:\n  n: {type: integer, default: 1}\nsteps:") + (
        f"tests:\n  - {{name: one, inputs: {{n: {value}}}}}\n")
    assert one(text).message == f"test input 'n' must be of type integer, got {got}"


def test_an_input_default_of_the_wrong_type_or_outside_its_enum_is_shown_as_json() -> None:
    text = GOOD.replace("steps:", "inputs:\n  n: {type: integer, default: 'yes'}\n"
                                  "  on: {type: boolean, default: [true]}\n"
                                  "  mode: {type: string, enum: [a, b], default: c}\nsteps:")
    assert [i.message for i in issues_of(text)] == [
        'default of input \'n\' must be of type integer, got string "yes"',
        "default of input 'on' must be of type boolean, got array [true]",
        'default of input \'mode\' must be one of "a", "b"; got "c"']


def test_a_test_case_input_outside_its_enum_names_the_values_as_json() -> None:
    text = GOOD.replace("steps:", "inputs:\n  level: {type: integer, enum: [1, 2, 3]}\n"
                                  "  flag: {type: boolean, enum: [true]}\nsteps:") + (
        "tests:\n  - {name: one, inputs: {level: 4, flag: false}}\n")
    assert [i.message for i in issues_of(text)] == [
        "test input 'level' must be one of 1, 2, 3; got 4",
        "test input 'flag' must be one of true; got false"]


def test_an_enum_of_arrays_tells_true_from_1_as_json_does() -> None:
    """Python's == holds [true] equal to [1]: such a default or case input passed `plait
    validate` and the run (JSON Schema's enum, which editors check, tells them apart)."""
    text = GOOD.replace("steps:", "inputs:\n  pair: {type: array, enum: [[1, 2], [{a: 1}]], "
                                  "default: [true, 2]}\nsteps:") + (
        "tests:\n  - {name: one, inputs: {pair: [{a: true}]}}\n"
        "  - {name: two, inputs: {pair: [1.0, 2]}}\n")  # 1.0 is 1 in JSON: no issue
    assert [i.message for i in issues_of(text)] == [
        "default of input 'pair' must be one of [1, 2], [{\"a\": 1}]; got [true, 2]",
        "test input 'pair' must be one of [1, 2], [{\"a\": 1}]; got [{\"a\": true}]"]


@pytest.mark.parametrize(("text", "where", "said", "hint"), [
    # a quote never closed: reported at the end of the file, nothing said of the quote
    ("version: 1\nname: x\nsteps:\n  a:\n    run: \"echo hi\n", (6, 1),
     "the quoted text that starts at line 5, column 10", "close the quote"),
    ("version: 1\nsteps: [a, b\n", (3, 1),
     "the [ ... ] list that starts at line 2, column 8", "close it with ]"),
    ("version: 1\nsteps:\n  a: {run: echo\n", (4, 1),
     "the { ... } mapping that starts at line 3, column 6", "close it with }"),
    ("version: 1\nsteps:\n  a:\n    run: echo\n   b: 3\n", (5, 4),
     "the mapping that starts at line 3, column 3", "indentation"),
    ("version: 1\nsteps:\n  a:\n    run: echo a: b\n", (4, 16), "", "quote the value"),
])
def test_a_yaml_syntax_error_names_the_construct_it_is_in_and_how_to_fix_it(
        text: str, where: tuple[int, int], said: str, hint: str) -> None:
    """An unclosed quote or bracket was reported where the file ends ("found unexpected end
    of stream", 6:1) with no word of the quote at 5:10 that caused it, and no hint."""
    issue = one(text)
    assert issue.message.startswith("invalid YAML: ")
    assert (issue.location.line, issue.location.column) == where
    assert said in issue.message, issue.format()
    assert issue.hint is not None and hint in issue.hint, issue.format()


@pytest.mark.parametrize("value", ["bogus", "-5", "0", "1.5"])
def test_a_bad_max_spec_bytes_is_a_located_error_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """PLAIT_MAX_SPEC_BYTES=bogus crashed every command that reads a workflow (ValueError:
    invalid literal for int()); -5 said 'file is 758 bytes, over the -5-byte limit'."""
    (tmp_path / "wf.yaml").write_text(GOOD)
    monkeypatch.setenv("PLAIT_MAX_SPEC_BYTES", value)
    with pytest.raises(SpecError) as info:
        load(tmp_path / "wf.yaml")
    issue = info.value.issues[0]
    assert issue.message == f"PLAIT_MAX_SPEC_BYTES={value!r} is not a whole number of bytes " \
        "of at least 1", issue.format()
    assert issue.hint and "unset it" in issue.hint


def test_a_directory_given_as_the_workflow_says_to_give_a_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load(tmp_path)
    issue = info.value.issues[0]
    assert issue.message == "cannot read file: Is a directory", issue.format()
    assert issue.hint == "give the path of a workflow file, e.g. workflow.yaml"


@pytest.mark.parametrize("value", [".nan", ".inf"])
@pytest.mark.parametrize("field", ["defaults: {timeout: VALUE}",
                                   "defaults: {retry: {attempts: 3, initial: VALUE}}",
                                   "policies: {p: {max_execution_time: VALUE}}"])
def test_a_duration_that_is_not_finite_is_a_spec_error(field: str, value: str) -> None:
    """`timeout: .nan` passed validate (NaN < 0 is false) and failed each step at run time
    with "ValueError: deadline must not be NaN"; `.inf` passed as well."""
    issue = one(GOOD + field.replace("VALUE", value) + "\n")
    assert "a duration must be a finite number of seconds" in issue.message, issue.format()
    assert issue.location.line == GOOD.count("\n") + 1


def test_an_echo_latency_that_is_not_finite_is_refused() -> None:
    from engine.errors import ConfigError
    from engine.providers.echo import EchoProvider

    with pytest.raises(ConfigError, match="a duration must be a finite number of seconds"):
        EchoProvider("e", options={"latency": float("nan")})


def test_a_fractional_number_for_a_whole_number_field_says_got_once() -> None:
    """It said `input should be a valid integer, got a number with a fractional part, got
    2.5`: pydantic's message ends in its own `got`, and the value was added after it."""
    issue = one(GOOD.replace("steps:", "concurrency: 2.5\nsteps:"))
    assert issue.format() == ("wf.yaml:5:14: expected an integer, got number 2.5 at "
                              "'concurrency'")


@pytest.mark.parametrize(("step", "where", "message", "hint"), [
    ("  a:\n    lm: fast\n    prompt: hi\n", (7, 5), "this one has none, but has unknown key 'lm'",
     "did you mean 'llm'?"),
    ("  a:\n    prompt: hi\n", (6, 3), "a step needs one of llm, tool, run", "`run: <command>`"),
    ("  a: echo hi\n", (6, 3), 'a step is a mapping with one of llm, tool, run, workflow, '
     'resource, mcp_prompt; got string "echo hi"', "`build: {run: make}`"),
])
def test_a_step_without_a_kind_says_which_key_to_write(step: str, where: tuple[int, int],
                                                        message: str, hint: str) -> None:
    issue = one(BASE + "steps:\n" + step)
    assert message in issue.message
    assert (issue.location.line, issue.location.column) == where
    assert issue.hint is not None and hint in issue.hint


@pytest.mark.parametrize(("text", "where", "message"), [
    (BASE + "steps:\n  my step: {llm: fast, prompt: hi}\n", (6, 3),
     'expected a name of letters, digits, _ and -, starting with a letter or _ (e.g. '
     'fetch_page), got string "my step"'),
    (BASE.replace("name: ok", "name: my wf!") + STEP, (2, 7), 'got string "my wf!"'),
    (BASE + "mcp_servers:\n  files: {command: x}\nsteps:\n  a: {tool: read_file}\n", (8, 13),
     'expected `server.tool`, e.g. files.read_file, got string "read_file"'),
    (BASE + "secrets: [my-key]\n" + STEP, (5, 11),
     'expected an environment variable name: letters, digits and _'),
    (BASE + "steps: {}\n", (5, 8), "it cannot be empty"),
])
def test_a_pattern_or_length_error_says_what_is_expected_in_words(
        text: str, where: tuple[int, int], message: str) -> None:
    issue = one(text)
    assert message in issue.message
    assert "pattern" not in issue.message and "dictionary" not in issue.message
    assert (issue.location.line, issue.location.column) == where


def test_a_second_yaml_document_says_a_file_holds_one() -> None:
    issue = one(GOOD + "---\nversion: 1\n")
    assert issue.message == ("invalid YAML: a second document starts here, and a workflow file "
                             "holds one")
    assert (issue.location.line, issue.location.column) == (9, 1)
    assert issue.hint is not None and "remove this `---` line" in issue.hint


@pytest.mark.parametrize(("value", "fix"), [('"30"', "30s"), ("'1.5'", "1.5s")])
def test_a_duration_given_as_a_quoted_number_says_how_to_write_it(value: str, fix: str) -> None:
    issue = one(GOOD + f"    timeout: {value}\n")
    assert f"(seconds are written {fix}, or as a number without quotes)" in issue.message


@pytest.mark.parametrize(("run", "where", "message"), [
    ('""', (6, 12), "`run:` is empty"),
    ("'   '", (6, 12), "`run:` is empty"),
    ("[]", (6, 12), "`run:` is an empty list"),
    ('["", x]', (6, 13), "`run:` list starts with an empty program name"),
])
def test_an_empty_command_is_refused(run: str, where: tuple[int, int], message: str) -> None:
    # else `run: ""` succeeds having run nothing, and `run: [""]` fails only when run
    issue = one(BASE + f"steps:\n  a: {{run: {run}}}\n")
    assert issue.message.startswith(message)
    assert (issue.location.line, issue.location.column) == where
    assert issue.hint is not None and "make" in issue.hint


def test_an_argv_list_may_hold_empty_arguments() -> None:
    wf = load_text(BASE + "steps:\n  a: {run: [printf, '']}\n", "wf.yaml")
    assert wf.spec.steps["a"].run == ["printf", ""]  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "message"), [
    ("version: 1\nname: ok\nsteps:\n", "expected a mapping, got null"),
    (BASE + "steps:\n  a: {run: echo, foreach: '${{ none }}'}\n",
     "foreach needs a list (or a mapping), got null"),
    (BASE + "steps:\n  a:\n", "a step is a mapping with one of llm"),
])
def test_a_null_value_is_called_null_once(text: str, message: str) -> None:
    issue = one(text)
    assert message in issue.message
    assert "null null" not in issue.message


@pytest.mark.parametrize("step", [
    "  a: {run: echo, if: ${{ true }}}\n",
    "  a: {run: [echo, ${{ inputs.x }}]}\n",
    "  a: {tool: files.read, with: {path: ${{ inputs.x }}}}\n",
])
def test_an_unquoted_expression_in_a_flow_collection_says_to_quote_it(step: str) -> None:
    issue = one(BASE + "steps:\n" + step)
    assert issue.message.startswith("invalid YAML")
    assert issue.location.line == 6
    assert issue.hint is not None and "quote a value that holds an expression" in issue.hint


def test_an_unclosed_flow_mapping_without_an_expression_keeps_its_hint() -> None:
    issue = one(BASE + "steps:\n  a: {run: echo\n  b: {run: ls}\n")
    assert issue.hint is not None and issue.hint.startswith("close it with }")


FOREACH_INPUTS = (BASE + "inputs:\n  files: {type: string, default: 'a,b'}\n"
                  "  n: {type: integer, default: 2}\n  l: {type: array, default: [1]}\n"
                  "  m: {type: object, default: {k: 1}}\n")


@pytest.mark.parametrize(("name", "kind"), [("files", "string"), ("n", "integer")])
def test_foreach_over_an_input_declared_a_scalar_is_refused(name: str, kind: str) -> None:
    # every run would fail at the step: a string is not split into items
    step = f"steps:\n  a: {{run: echo, foreach: '${{{{ inputs.{name} }}}}'}}\n"
    issue = one(FOREACH_INPUTS + step)
    assert issue.message == f"foreach needs a list, but input {name!r} is declared `type: {kind}`"
    assert (issue.location.line, issue.location.column) == (11, 27)
    assert issue.hint is not None and "type: array" in issue.hint


@pytest.mark.parametrize("expr", ["inputs.l", "inputs.m", "range(inputs.n)"])
def test_foreach_over_a_list_input_or_an_expression_still_loads(expr: str) -> None:
    load_text(FOREACH_INPUTS + f"steps:\n  a: {{run: echo, foreach: '${{{{ {expr} }}}}'}}\n",
              "wf.yaml")


@pytest.mark.parametrize(("extra", "hint"), [
    ("concurrency: '8'\n", "write the number without quotes: 8"),
    ("defaults: {retry: {attempts: '3'}}\n", "write the number without quotes: 3"),
    ("defaults: {continue_on_error: 'yes'}\n", "write true or false, without quotes"),
    ("defaults: {policy: p}\npolicies: {p: {max_memory_mb: '512'}}\n",
     "write the number without quotes: 512"),
])
def test_a_quoted_number_or_boolean_says_to_drop_the_quotes(extra: str, hint: str) -> None:
    assert one(GOOD + extra).hint == hint


def test_a_single_need_says_to_write_a_list() -> None:
    issue = one(BASE + "steps:\n  a: {run: echo}\n  b: {run: echo, needs: a}\n")
    assert issue.message == 'expected a list, got string "a"'
    assert issue.hint == "write a list, even of one: [a]"


@pytest.mark.parametrize("step", [
    "{llm: '${{ inputs.p }}', prompt: x}",
    "{tool: 'files.${{ inputs.p }}'}",
    "{llm: fast, prompt: x, tools: ['${{ inputs.p }}']}",
    "{run: echo, needs: ['${{ inputs.p }}']}",
    "{run: echo, policy: '${{ inputs.p }}'}",
])
def test_a_name_written_as_an_expression_is_one_error_that_says_so(step: str) -> None:
    # it was two: the name's pattern quoted back, and "unknown provider '${{ inputs.p }}'"
    text = (BASE + "inputs: {p: {default: x}}\nmcp_servers: {files: {command: x}}\n"
            f"steps:\n  a: {step}\n")
    issue = one(text)
    assert issue.message == "this is a name, written out: an expression is not evaluated here"
    line = text.splitlines()[7]
    assert (issue.location.line, issue.location.column) == (8, line.index("'", 6) + 1)
    assert issue.hint is not None and "`if:`" in issue.hint
