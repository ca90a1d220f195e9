"""The sub-workflow files a workflow calls (`workflow:` steps), as one validation sees them.

`plait validate` (and every run, which validates first) checks the files a workflow calls
before anything runs: each must exist and be a valid workflow itself, the chain of calls must
not lead back to a file already on it (a run refuses recursion), and must not nest deeper than
a run allows (:data:`MAX_DEPTH`). One :class:`SubWorkflows` is shared by the loads of every
file reached from the file being validated, so each file is read, parsed and validated once,
however many paths lead to it (a diamond of sub-workflows costs one check per file, not one
per path), and no chain is followed forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import SpecError, SpecIssue
from engine.spec.yaml_source import Source, read

#: The most workflow files on one chain of `workflow:` calls, the top one included: a run
#: refuses to call deeper (engine.executor.handlers.subworkflow), so validate does too.
MAX_DEPTH = 8


class SubWorkflows:
    """What one validation has learnt of the workflow files it met, by resolved path."""

    def __init__(self) -> None:
        self._sources: dict[Path, Source] = {}
        self._shown: dict[Path, Path] = {}  # how a file not read yet will be named
        self._issues: dict[Path, list[SpecIssue]] = {}
        self._loading: set[Path] = set()
        self._acyclic: set[Path] = set()  # no cycle is reachable from these
        self._height: dict[Path, tuple[int, Path | None]] = {}

    def source(self, path: Path) -> Source:
        """The file read and parsed once, named in its errors as the first call that met it
        named it (see meet())."""
        key = path.resolve()
        if key not in self._sources:
            self._sources[key] = read(self._shown.get(key) or path)
        return self._sources[key]

    def meet(self, path: Path, shown: Path) -> None:
        """Name `path` as `shown` in its errors, unless a call met earlier named it."""
        self._shown.setdefault(path.resolve(), shown)

    def targets(self, path: Path) -> list[Path]:
        """The files that the `workflow:` steps of `path` name literally (resolved)."""
        src = self.source(path)
        steps = src.data.get("steps") if isinstance(src.data, dict) else None
        if not isinstance(steps, dict):
            return []
        found = []
        for step in steps.values():
            name = step.get("workflow") if isinstance(step, dict) else None
            if isinstance(name, str) and "${{" not in name:
                target = (path.parent / name).resolve()
                # named in its errors as the calls that lead to it name it
                self._shown.setdefault(target, Path(src.path).parent / name)
                found.append(target)
        return found

    def declared_inputs(self, path: Path) -> dict[str, Any] | None:
        """The `inputs:` a sub-workflow file declares (None when it cannot be read as one)."""
        data = self.source(path).data
        if not isinstance(data, dict):
            return None
        inputs = data.get("inputs")
        return {k: v for k, v in inputs.items() if isinstance(k, str)} \
            if isinstance(inputs, dict) else {}

    def declared_outputs(self, path: Path) -> set[str] | None:
        """The names of the `outputs:` a sub-workflow file declares (None when it cannot be
        read as a workflow)."""
        data = self.source(path).data
        if not isinstance(data, dict):
            return None
        outputs = data.get("outputs")
        return {k for k in outputs if isinstance(k, str)} if isinstance(outputs, dict) \
            else set()

    def issues(self, path: Path) -> list[SpecIssue]:
        """The file's own problems (each at its file:line:col), found by the same loader as
        any workflow's; checked once per validation."""
        key = path.resolve()
        if key in self._issues:
            return self._issues[key]
        if key in self._loading:  # a cycle: reported by cycle(), never followed
            return []
        from engine.spec.loader import load_source

        self._loading.add(key)
        try:
            src = self.source(key)
            load_source(src, Path(src.path), self)
            found: list[SpecIssue] = []
        except SpecError as exc:
            found = list(exc.issues)
        finally:
            self._loading.discard(key)
        self._issues[key] = found
        return found

    def cycle(self, me: Path | None, child: Path) -> list[Path] | None:
        """The first chain of calls from `child` back to a file already on it (`me`, the
        caller, first on it); None when calling `child` can never recurse."""
        chain: list[Path] = [me] if me is not None else []
        if child in chain:
            return [child, child]
        if child in self._acyclic:
            return None
        chain.append(child)
        walks: list[Iterator[Path]] = [iter(self.targets(child))]
        while walks:
            node = next(walks[-1], None)
            if node is None:  # every call below this file was followed: no cycle there
                walks.pop()
                self._acyclic.add(chain.pop())
            elif node in chain:
                return [*chain[chain.index(node):], node]
            elif node not in self._acyclic:
                chain.append(node)
                walks.append(iter(self.targets(node)))
        return None

    def deepest(self, child: Path) -> list[Path]:
        """The longest chain of files `child` calls, `child` first (no cycle is reachable
        from it: see cycle())."""
        self._heights(child)
        chain: list[Path] = []
        node: Path | None = child
        while node is not None:
            chain.append(node)
            node = self._height[node][1]
        return chain

    def _heights(self, top: Path) -> None:
        """The files on the longest chain below each file reachable from `top`, worked out
        bottom-up without recursion (a chain may be long)."""
        stack: list[tuple[Path, bool]] = [(top, False)]
        open_: set[Path] = set()  # expanded, not finished (met again only in a cycle)
        while stack:
            node, expanded = stack.pop()
            if node in self._height or (node in open_ and not expanded):
                continue
            if not expanded:
                open_.add(node)
                stack.append((node, True))
                stack.extend((t, False) for t in self.targets(node) if t not in self._height)
                continue
            below = [t for t in self.targets(node) if t in self._height]
            best = max(below, key=lambda t: self._height[t][0], default=None)
            self._height[node] = (1 + (self._height[best][0] if best else 0), best)
