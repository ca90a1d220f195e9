"""Checks that need the whole file: references, expressions and the dependency graph.

They read the raw parsed data, not the models, so that they still run (and report) when some
other part of the file failed schema validation: `plait validate` shows every problem at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import SpecIssue
from engine.expr import Compiled, ExprSyntaxErrors, compile_value, quoted_shquotes
from engine.graph import Edges, check_edges
from engine.jsontext import one_of, shown, shown_choices, typed
from engine.spec.input_types import type_ok
from engine.spec.models import STEP_KINDS
from engine.spec.provider_options import OptionIssue, endpoint_problem, option_issues
from engine.spec.sub_checks import SubWorkflowChecks
from engine.spec.subworkflows import SubWorkflows
from engine.spec.suggest import NAME_NOT_EXPRESSION, did_you_mean
from engine.spec.tool_filters import hidden_by
from engine.spec.yaml_source import Path_, Source

#: Step fields that may hold ${{ }} expressions, by step kind.
TEMPLATED_COMMON = ("if", "foreach")
TEMPLATED = {
    "llm": ("model", "system", "prompt", "messages", "images", "options"),
    "tool": ("with",),
    "run": ("run", "env", "cwd", "stdin"),
    "workflow": ("with",),
    "resource": ("uri",),
    "mcp_prompt": ("with",),
}
#: Context names allowed outside steps (provider and server settings, run inputs).
_ITEM_NAMES = frozenset({"item", "index"})
#: a value that is exactly one input: ${{ inputs.name }}
_WHOLE_INPUT = re.compile(r"^\s*\$\{\{\s*inputs\.([A-Za-z_][\w-]*)\s*\}\}\s*$")
_SECRET_REF = re.compile(r"secrets\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")


@dataclass
class Checked:
    """What the checks produce besides issues: compiled expressions and the graph."""

    steps: dict[str, dict[str, Compiled]] = field(default_factory=dict)
    outputs: dict[str, Compiled] = field(default_factory=dict)
    providers: dict[str, Compiled] = field(default_factory=dict)
    servers: dict[str, Compiled] = field(default_factory=dict)
    #: step id -> field -> step ids it references (the graph is built from this on use)
    deps: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    #: predecessors and successors of every step, found by the graph check
    edges: Edges | None = None
    #: step id -> its kind (llm, tool, run, ...)
    kinds: dict[str, str] = field(default_factory=dict)


class Checker(SubWorkflowChecks):
    def __init__(self, src: Source, base_dir: Path, subs: SubWorkflows | None = None) -> None:
        self.src = src
        self.base_dir = base_dir
        #: the sub-workflow files this validation has met (shared with the files it calls)
        self.subs = subs or SubWorkflows()
        data = src.data if isinstance(src.data, dict) else {}
        self.data = data
        self.steps = _mapping(data.get("steps"))
        self.providers = _mapping(data.get("providers"))
        self.servers = _mapping(data.get("mcp_servers"))
        self.policies = _mapping(data.get("policies"))
        self.secrets = {s for s in data.get("secrets") or [] if isinstance(s, str)}
        self.inputs = _mapping(data.get("inputs"))
        self.issues: list[SpecIssue] = []
        self.out = Checked()

    # ------------------------------------------------------------------ helpers

    def issue(self, message: str, path: Path_, hint: str | None = None, *, key: bool = False,
              code: str = "reference") -> None:
        self.issues.append(SpecIssue(message, self.src.location(path, key=key), path, hint=hint,
                                     code=code))

    def issue_at_use(self, message: str, path: Path_, compiled: Compiled | None, what: str,
                     name: str, hint: str | None = None, *, code: str = "reference") -> None:
        """An issue about `name` used in the value at `path`: placed at the ``${{`` that uses
        it (inside a multi-line string, a `with:` mapping, a list), not at the value's start."""
        place = compiled.place(what, name) if compiled is not None else None
        if place is None:
            self.issue(message, path, hint, code=code)
            return
        where = (*path, *place[0])
        self.issues.append(SpecIssue(message, self.src.location_in_string(where, place[1]),
                                     where, hint=hint, code=code))

    def ref(self, name: Any, known: dict[str, Any], what: str, path: Path_) -> None:
        if self._expression_as_name(name, path):
            return
        if isinstance(name, str) and name not in known:
            self.issue(f"unknown {what} {name!r}", path, did_you_mean(name, known, what=what))

    def _expression_as_name(self, name: Any, path: Path_) -> bool:
        """`llm: ${{ inputs.provider }}`: reported once (the models report the same issue,
        worded the same, for the fields they give a pattern), not as an unknown name."""
        if not isinstance(name, str) or "${{" not in name:
            return False
        self.issue(NAME_NOT_EXPRESSION[0], path, NAME_NOT_EXPRESSION[1], code="invalid")
        return True

    def compile(self, value: Any, path: Path_) -> Compiled | None:
        for name, sub, offset in _secret_refs(value, path):
            if name not in self.secrets:
                self.issues.append(SpecIssue(
                    f"secret {name!r} is used but not declared in `secrets:`",
                    self.src.location_in_string(sub, offset), sub,
                    hint=f"add it: secrets: [{name}]", code="secret"))
        try:
            compiled = compile_value(value)
        except ExprSyntaxErrors as exc:
            for item in exc.issues:
                where = (*path, *item.subpath)
                self.issues.append(SpecIssue(item.message,
                                             self.src.location_in_string(where, item.offset),
                                             where, hint=item.hint, code="expression"))
            return None
        for name in sorted(compiled.inputs - set(self.inputs)):
            declared = ", ".join(sorted(self.inputs)) or "none"
            self.issue_at_use(f"input {name!r} is used but not declared in `inputs:` "
                              f"(declared: {declared})", path, compiled, "inputs", name,
                              did_you_mean(name, self.inputs) or
                              f"declare it: inputs: {{{name}: {{type: string}}}}", code="input")
        return compiled

    # ------------------------------------------------------------------ checks

    def run(self) -> Checked:
        self.check_config()
        self.check_policies()
        deps = {sid: self.check_step(sid, step) for sid, step in self.steps.items()}
        self.check_outputs(deps)
        self.check_sub_workflow_outputs()
        self.check_inputs_and_tests()
        self.check_schedules()
        self.out.edges, problems = check_edges(deps)
        for problem in problems:
            if problem.code in ("unknown_step", "self_dependency") and problem.step \
                    and problem.field and problem.related:
                self._step_ref_issue(problem.message, problem.step, problem.field,
                                     problem.related[0], problem.hint, problem.code)
            else:
                self.issue(problem.message, ("steps", problem.step or ""), problem.hint,
                           key=True, code=problem.code)
        self.out.deps = deps
        return self.out

    def _step_ref_issue(self, message: str, sid: str, field_name: str, ref: str,
                        hint: str | None, code: str) -> None:
        """An issue about step `sid` naming step `ref` in `field_name`: at the `needs:` item,
        or at the ``${{`` of the expression, that names it."""
        path: Path_ = ("steps", sid, field_name)
        others = [other for other in self.steps if other != sid]
        if code == "unknown_step" and others:  # the close one, else the ids to choose from
            hint = did_you_mean(ref, others) or hint
        if field_name == "needs":
            step = self.steps.get(sid, {})
            needs = _list(step.get("needs"))
            path = (*path, needs.index(ref)) if ref in needs else path
            self.issue(message, path, hint, code=code)
            return
        compiled = self.out.steps.get(sid, {}).get(field_name)
        self.issue_at_use(message, path, compiled, "steps", ref, hint, code=code)

    def check_config(self) -> None:
        for name, prov in self.providers.items():
            for i, other in enumerate(_list(prov.get("fallback"))):
                if other == name:
                    self.issue("a provider cannot fall back to itself",
                               ("providers", name, "fallback", i), code="fallback")
                self.ref(other, self.providers, "provider", ("providers", name, "fallback", i))
            self._options(name, prov, prov.get("options"), ("providers", name, "options"))
            for field_name in ("base_url", "endpoint", "api_version"):
                problem = endpoint_problem(field_name, prov.get(field_name))
                if problem is not None:
                    self.issue(f"provider {name!r}: {problem[0]}",
                               ("providers", name, field_name), problem[1], code="provider")
            compiled = self.compile(prov, ("providers", name))
            if compiled is not None:
                self._no_step_refs(compiled, ("providers", name))
                self.out.providers[name] = compiled
        for name, server in self.servers.items():
            self.ref(server.get("policy"), self.policies, "policy",
                     ("mcp_servers", name, "policy"))
            compiled = self.compile(server, ("mcp_servers", name))
            if compiled is not None:
                self._no_step_refs(compiled, ("mcp_servers", name))
                self.out.servers[name] = compiled
        defaults = _mapping(self.data.get("defaults"))
        self.ref(defaults.get("policy"), self.policies, "policy", ("defaults", "policy"))

    def check_policies(self) -> None:
        """What resolving a policy refuses before any step runs (engine.policy), found here
        so that `plait validate` reports it with its place."""
        for name, policy in self.policies.items():  # each a mapping
            fs = policy.get("filesystem")
            fs = fs if isinstance(fs, dict) else {}
            if policy.get("level") == "critical":
                for key, asks in (("network", policy.get("network") is True),
                                  ("filesystem", bool(fs.get("read") or fs.get("write")))):
                    if asks:
                        self.issue(f"policy {name!r} is level critical, which allows no "
                                   "network and no filesystem beyond a private temp dir",
                                   ("policies", name, key), "remove `network` and "
                                   "`filesystem` from the policy, or use level high",
                                   code="policy")
            if policy.get("level") in ("low", "medium") and policy.get("network") is False:
                self.issue(f"policy {name!r} asks for `network: false` at level "
                           f"{policy['level']}, which cannot enforce it (only level high "
                           "cuts the network)", ("policies", name, "network"),
                           "use level high (or critical), or remove `network: false`",
                           code="policy")
            for i, rule in enumerate(_list(policy.get("rules"))):
                pattern = rule.get("pattern") if isinstance(rule, dict) else None
                if not isinstance(pattern, str):
                    continue
                try:
                    re.compile(pattern)
                except re.error as exc:
                    self.issue(f"policy {name!r}: rule {rule.get('name')!r} has an "
                               f"invalid regular expression {pattern!r}: {exc}",
                               ("policies", name, "rules", i, "pattern"),
                               "write a Python regular expression (escape ( ) [ ] . * + ? "
                               "with a backslash to match them literally)", code="policy")

    def _options(self, name: str, provider: Any, options: Any, path: Path_) -> set[str]:
        """Option names the provider kind does not know, and values it cannot take (see
        option_issues); the options found wrong."""
        return self._option_issues(option_issues(name, provider, options), path)

    def _option_issues(self, found: list[OptionIssue], path: Path_) -> set[str]:
        for issue in found:
            self.issue(issue.message, (*path, issue.option), issue.hint, key=issue.key,
                       code="option")
        return {issue.option for issue in found}

    def _step_options(self, name: str, provider: Any, options: Any, path: Path_) -> None:
        """A step's options, checked against its provider and each of that provider's
        fallbacks: a run sends them to whichever of them it calls (engine.providers.run).
        An option wrong for the step's own provider is reported once, for that provider."""
        wrong = self._options(name, provider, options, path)
        if not isinstance(provider, dict) or not isinstance(options, dict):
            return
        for other in dict.fromkeys(_list(provider.get("fallback"))):
            fallback = self.providers.get(other) if isinstance(other, str) else None
            if fallback is not None and other != name:  # else reported in check_config
                self._option_issues([issue for issue in option_issues(
                    other, fallback, options, via=name) if issue.option not in wrong], path)

    def _no_step_refs(self, compiled: Compiled, path: Path_) -> None:
        """Provider and server settings are rendered once, before any step: no step output,
        no foreach item."""
        if compiled.refs:
            ref = sorted(compiled.refs)[0]
            self.issue_at_use("provider and server settings cannot use step outputs "
                              f"(found steps.{ref})", path, compiled, "steps", ref,
                              "use inputs, secrets or env here", code="expression")
        for used in sorted(compiled.names & _ITEM_NAMES):
            what = "provider" if path[0] == "providers" else "MCP server"
            self.issue_at_use(f"{used} is used in the settings of {what} {path[1]!r}, "
                              "evaluated once, before any step", path, compiled,
                              "names", used, "item and index exist in the fields of a "
                              "foreach step, per item; use inputs, secrets or env here",
                              code="expression")

    def check_step(self, sid: str, step: Any) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {"needs": {n for n in _list(
            step.get("needs") if isinstance(step, dict) else None)
            if isinstance(n, str) and "${{" not in n}}  # such a need: the models report it
        if not isinstance(step, dict):
            return deps
        kinds = [k for k in STEP_KINDS if k in step]
        kind = kinds[0] if len(kinds) == 1 else None
        if kind is not None:
            self.out.kinds[sid] = kind
        base: Path_ = ("steps", sid)
        self.ref(step.get("policy"), self.policies, "policy", (*base, "policy"))
        self._pointless_policy(kind, step, base)
        if step.get("max_parallel") is not None and "foreach" not in step:
            self.issue("max_parallel is set on a step without `foreach:`",
                       (*base, "max_parallel"), "it caps the items of a foreach run at once; "
                       "remove it, or add foreach: (the whole run is capped by `concurrency`)",
                       key=True, code="invalid")
        if kind == "llm" and "max_turns" in step and not step.get("tools"):
            self.issue("max_turns is set on an `llm:` step without `tools:`",
                       (*base, "max_turns"), "it bounds the model turns of an agent loop, "
                       "which only `tools:` starts; give the step `tools:` (e.g. "
                       "[files.*]), or remove max_turns", key=True, code="invalid")
        self._kind_checks(kind, step, base)
        compiled: dict[str, Compiled] = {}
        for name in (*TEMPLATED_COMMON, *TEMPLATED.get(kind or "", ())):
            if name in step:
                result = self.compile(step[name], (*base, name))
                if result is not None:
                    compiled[name] = result
                    if result.refs:
                        deps[name] = set(result.refs)
                    self._item_outside_foreach(step, name, result, (*base, name))
        if "foreach" in compiled:
            self._foreach_value(compiled["foreach"], (*base, "foreach"))
            self._foreach_input(step["foreach"], (*base, "foreach"))
        self._plain_text_if(step.get("if"), (*base, "if"))
        self.out.steps[sid] = compiled
        return deps

    def _pointless_policy(self, kind: str | None, step: dict[str, Any], base: Path_) -> None:
        """`policy:` where nothing would check it: a step's policy governs its command or
        its MCP calls, and a `workflow:` step or an `llm:` step without tools makes none."""
        if "policy" not in step or not (kind == "workflow" or (kind == "llm"
                                                              and not step.get("tools"))):
            return
        what = "a `workflow:` step" if kind == "workflow" else "an `llm:` step without `tools:`"
        hint = ("a sub-workflow's steps run under the policies of its own file: set them "
                "there, with `policy:` on its steps or its `defaults.policy`, and remove this "
                "one" if kind == "workflow" else "remove it, or give the step `tools:`: its "
                "policy then checks each call the model makes")
        self.issue(f"`policy:` has no effect on {what}: a step's policy applies to `run:`, "
                   "`tool:`, `resource:` and `mcp_prompt:` steps and to the tool calls of an "
                   "`llm:` step with `tools:`", (*base, "policy"), hint, key=True,
                   code="policy")

    def _kind_checks(self, kind: str | None, step: dict[str, Any], base: Path_) -> None:
        """What only a step of this kind can get wrong: its provider, server, file, command."""
        if kind == "llm":
            self.ref(step["llm"], self.providers, "provider", (*base, "llm"))
            provider = self.providers.get(step["llm"]) if isinstance(step["llm"], str) else None
            if provider is not None:
                self._step_options(step["llm"], provider, step.get("options"),
                                   (*base, "options"))
            for i, pattern in enumerate(_list(step.get("tools"))):
                self._tool_server(pattern, (*base, "tools", i), allow_glob=True)
            self._output_schema(step.get("output_schema"), (*base, "output_schema"))
        elif kind in ("tool", "mcp_prompt"):
            self._tool_server(step[kind], (*base, kind), allow_glob=False,
                              filtered=kind == "tool")
        elif kind == "resource":
            self.ref(step["resource"], self.servers, "MCP server", (*base, "resource"))
        elif kind == "workflow":
            self._sub_workflow(step, base)
        elif kind == "run":
            self._empty_command(step["run"], (*base, "run"))
            self._quoted_shquote(step["run"], (*base, "run"))

    def _quoted_shquote(self, command: Any, path: Path_) -> None:
        """``"${{ x | shquote }}"``: inside shell quotes the value is shell code again."""
        if not isinstance(command, str):
            return
        for offset in quoted_shquotes(command):
            self.issues.append(SpecIssue(
                "`| shquote` inside quotes in `run:`: the quotes it adds are literal there (or "
                "close yours), so $(...) in the value runs as a command",
                self.src.location_in_string(path, offset), path,
                hint="remove the quotes around ${{ ... | shquote }}: shquote already makes "
                "the value one shell word", code="expression"))

    def _empty_command(self, command: Any, path: Path_) -> None:
        """`run: ""` would succeed having run nothing (/bin/sh -c ""), and `run: []` too;
        `run: [""]` would fail only when run."""
        if isinstance(command, str) and not command.strip():
            self.issue("`run:` is empty: the step would succeed having run nothing", path,
                       "write the command line, e.g. run: make test", code="invalid")
        elif isinstance(command, list) and not command:
            self.issue("`run:` is an empty list: the step would succeed having run nothing",
                       path, "list the program and its arguments, e.g. run: [make, test]",
                       code="invalid")
        elif isinstance(command, list) and isinstance(command[0], str) \
                and not command[0].strip():
            self.issue("`run:` list starts with an empty program name", (*path, 0),
                       "the first item is the program to run, e.g. run: [make, test]",
                       code="invalid")

    def _foreach_input(self, value: Any, path: Path_) -> None:
        """`foreach: ${{ inputs.x }}` where x is declared a string, number or boolean: every
        run would fail at this step (a string is not split into items)."""
        match = _WHOLE_INPUT.match(value) if isinstance(value, str) else None
        spec = self.inputs.get(match.group(1)) if match else None
        kind = spec.get("type", "string") if spec is not None else None
        if match and spec is not None and kind not in ("array", "object"):
            name = match.group(1)
            self.issue(f"foreach needs a list, but input {name!r} is declared `type: {kind}`",
                       path, f"declare it `type: array` and give it as JSON, e.g. "
                       f"-i {name}='[\"a\", \"b\"]'", code="input")

    def _foreach_value(self, compiled: Compiled, path: Path_) -> None:
        """A foreach whose value is known now (a literal, or an expression that reads no
        name) must give a list or a mapping: otherwise every run would fail at this step."""
        if not compiled.is_literal and compiled.names:
            return
        try:
            value = compiled.render({})
        except Exception:  # the run reports it, located, with its context
            return
        if not isinstance(value, list | tuple | dict):
            self.issue(f"foreach needs a list (or a mapping), got {typed(value)}",
                       path, "give a YAML list, or an expression that "
                       "returns one (e.g. ${{ inputs.items }})", code="invalid")

    def _plain_text_if(self, value: Any, path: Path_) -> None:
        """`if: steps.check.output == 'yes'` without ``${{ }}`` is text, and text is true:
        the step would always run. Only the words that spell a truth value may be bare."""
        if not isinstance(value, str) or "${{" in value \
                or value.strip().lower() in _TRUTH_WORDS:
            return
        self.issue(f"`if:` is the plain text {shown(value, 60)}, which is always true: "
                   "a condition is an expression", path,
                   f"write it between ${{{{ and }}}}: if: ${{{{ {value.strip()} }}}}",
                   code="invalid")

    def _item_outside_foreach(self, step: dict[str, Any], field: str, compiled: Compiled,
                              path: Path_) -> None:
        """`item`/`index` exist only per item of a foreach step, not in its `if:` or
        `foreach:` (evaluated once, before any item)."""
        used = sorted(compiled.names & _ITEM_NAMES)
        if not used or ("foreach" in step and field not in ("if", "foreach")):
            return
        where = (f"in the step's `{field}:` (evaluated once, before any item)"
                 if "foreach" in step else "in a step without `foreach:`")
        self.issue_at_use(f"{' and '.join(used)} is used {where}", path, compiled, "names",
                          used[0], "item and index exist in the fields of a foreach step, "
                          "per item", code="expression")

    def _tool_server(self, name: Any, path: Path_, *, allow_glob: bool,
                     filtered: bool = False) -> None:
        if self._expression_as_name(name, path) or not isinstance(name, str) \
                or "." not in name:
            return  # the schema reports the shape
        server = name.split(".", 1)[0]
        if allow_glob and server == "*":
            return
        self.ref(server, self.servers, "MCP server", path)
        if filtered:
            self._tool_filtered(name, path)

    def _tool_filtered(self, name: Any, path: Path_) -> None:
        """A tool its server's own allow/deny globs hide: the step could never run."""
        if not isinstance(name, str) or "." not in name:
            return
        server, tool = name.split(".", 1)
        spec = self.servers.get(server)
        filters = spec.get("tools") if isinstance(spec, dict) else None
        if not isinstance(filters, dict):
            return
        allow = filters.get("allow")
        why = hidden_by(tool, None if allow is None else _list(allow),
                        _list(filters.get("deny")), server=server)
        if why is not None:
            self.issue(f"tool {name!r} is filtered out by the server's {why}", path,
                       "remove that pattern from `tools.deny`, or call another tool"
                       if why.startswith("`tools.deny`") else
                       "add the tool to `tools.allow`, or call another tool", code="reference")

    def check_outputs(self, deps: dict[str, dict[str, set[str]]]) -> None:
        outputs = self.data.get("outputs")
        for name, value in (outputs.items() if isinstance(outputs, dict) else ()):
            compiled = self.compile(value, ("outputs", name))
            if compiled is None:
                continue
            self.out.outputs[name] = compiled
            for used in sorted(compiled.names & _ITEM_NAMES):
                self.issue_at_use(f"{used} is used in output {name!r}, and outputs are "
                                  "evaluated once, after every step", ("outputs", name),
                                  compiled, "names", used, "item and index exist in the "
                                  "fields of a foreach step, per item; here use that step's "
                                  "output, a list with one entry per item", code="expression")
            for ref in sorted(compiled.refs - set(self.steps)):
                self.issue_at_use(f"output {name!r} references unknown step {ref!r}",
                                  ("outputs", name), compiled, "steps", ref,
                                  did_you_mean(ref, self.steps, what="step"))

    def check_inputs_and_tests(self) -> None:
        inputs = _mapping(self.data.get("inputs"))
        for name, spec in inputs.items():
            default = spec.get("default")
            kind = spec.get("type", "string")
            if default is not None and not type_ok(kind, default):
                self.issue(f"default of input {name!r} must be of type {kind}, got "
                           f"{typed(default, 40)}",
                           ("inputs", name, "default"), code="input")
            enum = spec.get("enum")
            if default is not None and isinstance(enum, list) and not one_of(default, enum):
                self.issue(f"default of input {name!r} must be one of "
                           f"{shown_choices(enum)}; got {shown(default, 40)}",
                           ("inputs", name, "default"), code="input")
            if default is not None and spec.get("required") is True:
                self.issue(f"input {name!r} is `required: true` but has a default, which "
                           "would never be used", ("inputs", name, "required"),
                           "remove `default:` to make callers give it, or `required: true` "
                           "to fall back on the default", code="input")
        named: dict[str, int] = {}
        for i, case in enumerate(_list(self.data.get("tests"))):
            case_name = case.get("name") if isinstance(case, dict) else None
            if isinstance(case_name, str) and case_name in named:  # they would share one snapshot
                self.issue(f"a second test case named {case_name!r} (the first is "
                           f"tests[{named[case_name]}])", ("tests", i, "name"),
                           "give every case its own name", code="test")
            elif isinstance(case_name, str):
                named[case_name] = i
            given = case.get("inputs") if isinstance(case, dict) else None
            for key, value in (given.items() if isinstance(given, dict) else ()):
                if key not in inputs:
                    self.issue(f"test input {key!r} is not a declared input",
                               ("tests", i, "inputs", key), did_you_mean(key, inputs) or
                               "declare it under `inputs:`, or remove it from the case",
                               key=True, code="input")
                else:
                    self._test_input(key, value, inputs[key], ("tests", i, "inputs", key))
            checks = case.get("assert") if isinstance(case, dict) else None
            for j, check in enumerate(_list(checks)):
                if isinstance(check, dict):
                    self._assertion(check, ("tests", i, "assert", j))
        self._shared_cassettes(inputs)

    def _test_input(self, name: str, value: Any, spec: dict[str, Any], path: Path_) -> None:
        """A case's input value of another type than declared, or not among its enum: the
        case could only error when run (case inputs are YAML values, taken as they are)."""
        kind = spec.get("type", "string")
        enum = spec.get("enum")
        if value is None or (isinstance(value, str) and "${{" in value):
            return
        if not type_ok(kind, value):
            self.issue(f"test input {name!r} must be of type {kind}, got "
                       f"{typed(value, 40)}", path, code="input")
        elif isinstance(enum, list) and not one_of(value, enum):
            self.issue(f"test input {name!r} must be one of "
                       f"{shown_choices(enum)}; got {shown(value, 40)}",
                       path, code="input")

    def _shared_cassettes(self, inputs: dict[str, Any]) -> None:
        """Two cases recording into one cassette directory with other inputs (defaults
        filled in): a cassette holds one run, so recording either overwrites the other's."""
        defaults = {k: v["default"] for k, v in inputs.items() if "default" in v}
        first: dict[str, tuple[str, dict[str, Any]]] = {}
        for i, case in enumerate(_list(self.data.get("tests"))):
            if not isinstance(case, dict) or not isinstance(case.get("cassette"), str):
                continue
            given = case.get("inputs")
            full = {**defaults, **(given if isinstance(given, dict) else {})}
            where = os.path.normpath(case["cassette"])
            if where not in first:
                first[where] = (str(case.get("name")), full)
            elif first[where][1] != full:
                name = case.get("name")
                self.issue(f"case {name!r} shares the cassette directory {where} with case "
                           f"{first[where][0]!r} but runs with other inputs: recording one "
                           "overwrites the other's", ("tests", i, "cassette"),
                           f"give case {name!r} a cassette directory of its own", code="test")

    def check_schedules(self) -> None:
        on = self.data.get("on")
        schedules = on.get("schedule") if isinstance(on, dict) else None
        if not schedules:
            return  # no croniter import for workflows without a schedule
        from engine.spec.triggers import schedule_problems

        for problem in schedule_problems(schedules, self.data.get("inputs")):
            self.issue(problem.message, problem.path, problem.hint, key=problem.key,
                       code="schedule")

    def _assertion(self, check: dict[str, Any], path: Path_) -> None:
        """An assertion that checks nothing (it would always pass), one about an output the
        workflow does not have, a `matches:` that is no regular expression, or a `schema:`
        that is no JSON Schema (they would only fail when the test runs)."""
        if not set(check) & _ASSERTION_CHECKS:
            named = f"it names output {check['output']!r} only" if "output" in check else \
                "it is empty"
            self.issue(f"assertion checks nothing: {named}", path,
                       "add one of equals, contains, matches, schema, max_cost or max_steps",
                       code="assertion")
        output = check.get("output")
        outputs = self.data.get("outputs")
        outputs = outputs if isinstance(outputs, dict) else {}
        if isinstance(output, str) and output not in outputs:
            self.issue(f"the workflow has no output {output!r}", (*path, "output"),
                       did_you_mean(output, outputs, what="output"), code="assertion")
        pattern = check.get("matches")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.issue(f"`matches` is not a valid regular expression: {exc}",
                           (*path, "matches"), "Python re syntax; escape special characters "
                           "with a backslash", code="assertion")
        self._assertion_schema(check, path)

    def _output_schema(self, schema: Any, path: Path_) -> None:
        """An output_schema the providers would refuse (draft 2020-12), found before the run
        instead of failing its step once other steps may have run."""
        if not isinstance(schema, dict):
            return  # the models report the shape
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.issue(f"output_schema is not a valid JSON Schema: {exc.message}",
                       (*path, *exc.absolute_path), "fix the schema; see "
                       "https://json-schema.org/understanding-json-schema", code="invalid")

    def _assertion_schema(self, check: dict[str, Any], path: Path_) -> None:
        schema = check.get("schema")
        if isinstance(schema, dict):
            from jsonschema import SchemaError
            from jsonschema.validators import validator_for

            try:
                validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                self.issue(f"`schema` is not a valid JSON Schema: {exc.message}",
                           (*path, "schema"), "check its keywords and type names (JSON Schema)",
                           code="assertion")


#: what a bare (no ``${{ }}``) `if:` may say: the texts engine.expr.truthy reads as false,
#: and their opposites
_TRUTH_WORDS = frozenset({"", "false", "0", "no", "off", "null", "none", "true", "1", "yes",
                          "on"})

#: the keys of an assertion that check something (`output:` only picks what)
_ASSERTION_CHECKS = frozenset({"equals", "contains", "matches", "schema", "max_cost",
                               "max_steps"})


def _mapping(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(v, dict)} \
        if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _secret_refs(value: Any, path: Path_) -> list[tuple[str, Path_, int]]:
    """`secrets.X` in the strings of `value`: the name, the string's path and the offset of
    the ``${{`` before it."""
    found: list[tuple[str, Path_, int]] = []
    if isinstance(value, str):
        if "${{" in value:
            found.extend(((m.group(1) or m.group(2)), path,
                          max(value.rfind("${{", 0, m.start()), 0))
                         for m in _SECRET_REF.finditer(value))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(_secret_refs(item, (*path, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_secret_refs(item, (*path, i)))
    return found


