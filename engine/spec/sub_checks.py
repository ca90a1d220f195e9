"""The checks of `workflow:` steps: the file exists and is valid, no recursion, not too deep,
`with:` against the inputs it declares, `steps.X.output.key` against the outputs it declares.
Mixed into :class:`engine.spec.checks.Checker`, whose state and issue helpers they use."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import SpecIssue
from engine.jsontext import typed
from engine.spec.input_types import input_required, type_ok
from engine.spec.subworkflows import MAX_DEPTH, SubWorkflows
from engine.spec.suggest import did_you_mean
from engine.spec.yaml_source import Path_, Source

if TYPE_CHECKING:
    from engine.expr import Compiled
    from engine.spec.checks import Checked


class SubWorkflowChecks:
    """Checker's checks of `workflow:` steps (the attributes and helpers below are
    Checker's)."""

    src: Source
    base_dir: Path
    subs: SubWorkflows
    steps: dict[str, Any]
    issues: list[SpecIssue]
    out: Checked

    if TYPE_CHECKING:
        def issue(self, message: str, path: Path_, hint: str | None = None, *,
                  key: bool = False, code: str = "reference") -> None: ...

        def issue_at_use(self, message: str, path: Path_, compiled: Compiled | None,
                         what: str, name: str, hint: str | None = None, *,
                         code: str = "reference") -> None: ...

    def _sub_workflow(self, step: dict[str, Any], base: Path_) -> None:
        """The file exists, and `with:` gives it the inputs it declares, all it requires."""
        target = step["workflow"]
        if not isinstance(target, str):
            return
        if "${{" in target:  # never evaluated: the run would look for a file of that name
            self.issue("`workflow:` is a file path, not an expression", (*base, "workflow"),
                       "name the file; to choose between files, give each its own step with "
                       "an `if:`", code="file")
            return
        child = self.base_dir / target
        if not child.is_file():
            self.issue(f"sub-workflow file {target!r} not found", (*base, "workflow"),
                       "paths are relative to this workflow file", code="file")
            return
        resolved = child.resolve()
        here = Path(self.src.path).parent if self.src.path != "<string>" else self.base_dir
        self.subs.meet(resolved, here / target)
        if self._recursion(target, resolved, (*base, "workflow")) or \
                self._too_deep(target, resolved, (*base, "workflow")):
            return
        self._child_issues(target, resolved, (*base, "workflow"))
        declared = self.subs.declared_inputs(resolved)
        if declared is None:  # unreadable or not a workflow: its own errors say so
            return
        given = step.get("with")
        if not isinstance(given, dict):
            given = {}
        for key, value in given.items():
            if isinstance(key, str) and key not in declared:
                self.issue(f"sub-workflow {target} has no input {key!r}", (*base, "with", key),
                           did_you_mean(key, declared, what="input"), key=True, code="input")
            elif isinstance(key, str):
                self._input_type(target, key, declared[key], value, (*base, "with", key))
        missing = sorted(name for name, spec in declared.items()
                         if name not in given and input_required(spec))
        if missing:
            where = (*base, "with") if "with" in step else (*base, "workflow")
            self.issue(f"sub-workflow {target} needs input(s) {', '.join(missing)}", where,
                       "give them to it: with: {" + ", ".join(f"{m}: ..." for m in missing)
                       + "}",
                       code="input")

    def _input_type(self, target: str, name: str, spec: Any, value: Any, path: Path_) -> None:
        """A literal `with:` value of the wrong type (expressions are checked when run)."""
        kind = spec.get("type", "string") if isinstance(spec, dict) else None
        if value is None or (isinstance(value, str) and "${{" in value) or type_ok(kind, value):
            return
        article = "an" if str(kind)[0] in "aeiou" else "a"
        # worded as the run words it (engine/executor/inputs.py): JSON type names and values
        self.issue(f"sub-workflow {target}: input {name!r} must be of type {kind}, got "
                   f"{typed(value, 40)}", path, f"give it {article} {kind}",
                   code="input")

    def _child_issues(self, target: str, child: Path, path: Path_) -> None:
        """The sub-workflow's own errors (each at its file:line:col), under one of this file
        that says which step calls it. Called only when no recursion was found and the calls
        below nest within the limit, so loading the child (and its children) ends."""
        issues = self.subs.issues(child)
        if issues:
            n = len(issues)
            self.issue(f"sub-workflow {target} is not a valid workflow ({n} error"
                       f"{'s' if n != 1 else ''}, shown below)", path,
                       f"fix {'them' if n != 1 else 'it'} in {target}", code="file")
            self.issues.extend(issues)

    def _recursion(self, target: str, child: Path, path: Path_) -> bool:
        """A run refuses sub-workflow recursion (direct or through others): say so here."""
        me = Path(self.src.path).resolve() if self.src.path != "<string>" else None
        chain = self.subs.cycle(me, child)
        if chain is None:
            return False
        names = " -> ".join(_shown(f, self.base_dir) for f in chain)
        what = "calls this workflow again" if chain[0] == me else "calls itself"
        self.issue(f"sub-workflow {target} {what}: {names}", path,
                   "a workflow cannot call itself, directly or through others; move the "
                   "steps they share into a file that calls neither", code="file")
        return True

    def _too_deep(self, target: str, child: Path, path: Path_) -> bool:
        """A run refuses to nest sub-workflows deeper than MAX_DEPTH files: say so here, at
        the first call on the chain that goes too deep."""
        chain = self.subs.deepest(child)
        if 1 + len(chain) <= MAX_DEPTH:
            return False
        me = _shown(Path(self.src.path).resolve(), self.base_dir) \
            if self.src.path != "<string>" else self.src.path
        shown = [me, *(_shown(f, self.base_dir) for f in chain[:MAX_DEPTH])]
        names = " -> ".join(shown + (["..."] if len(chain) > MAX_DEPTH else []))
        self.issue(f"sub-workflows nested {1 + len(chain)} levels deep through {target}, "
                   f"deeper than the {MAX_DEPTH} a run allows: {names}", path,
                   "call fewer levels deep: let a workflow call the files below its child "
                   "itself", code="file")
        return True

    def check_sub_workflow_outputs(self) -> None:
        """`steps.X.output.key` where X is a `workflow:` step whose file declares no output
        `key`: the step reading it would fail, after X's run."""
        declared: dict[str, set[str] | None] = {}
        for sid, step in self.steps.items():
            # a foreach step's output is a list of the runs' outputs: not checked here
            target = step.get("workflow") if self.out.kinds.get(sid) == "workflow" \
                and "foreach" not in step else None
            child = self.base_dir / target if isinstance(target, str) \
                and "${{" not in target else None
            declared[sid] = self.subs.declared_outputs(child.resolve()) \
                if child is not None and child.is_file() else None
        values: list[tuple[Path_, Compiled]] = [
            (("steps", sid, name), compiled) for sid, fields in self.out.steps.items()
            for name, compiled in fields.items()]
        values += [(("outputs", name), compiled) for name, compiled in self.out.outputs.items()]
        for path, compiled in values:
            for ref, key in sorted(compiled.output_keys):
                outputs = declared.get(ref)
                if outputs is None or key in outputs:
                    continue
                target = self.steps[ref]["workflow"]
                names = f"the outputs {', '.join(sorted(outputs))}" if outputs else "no outputs"
                self.issue_at_use(f"steps.{ref}.output has no key {key!r}: sub-workflow "
                                  f"{target} declares {names}", path, compiled, "output",
                                  f"{ref}.{key}", did_you_mean(key, outputs) or
                                  f"add `{key}:` to the `outputs:` of {target}",
                                  code="reference")


def _shown(file: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(file, base)).as_posix()
    except ValueError:  # another drive (Windows)
        return str(file)
