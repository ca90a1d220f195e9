"""One run's cassette: recording calls into it, or answering calls from it.

A ``Cassette`` is opened by the run's Services when ``record_dir`` or ``replay_dir`` is set.
Recording wraps every provider (``ProviderRegistry.add_wrapper``) and every MCP tool call
(``ToolExecutor.add_wrapper``) and writes the file when the run ends. Replaying swaps every
provider for a ``ReplayProvider`` before any client is built (no key, no SDK client) and
answers tool calls without starting a server. Matching is on the normalised request (see
``format.llm_request``), preferring an unused interaction recorded by the same step (and the
same foreach item, so items making equal calls each get their own reply); equal
requests are answered in recorded order, so a recorded failure followed by its retry replays
the same way.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cassettes import format as fmt
from engine.cassettes.diff import unified
from engine.errors import CassetteError, PlaitError, ProviderError, ReplayMiss, ToolError
from engine.executor.current import current_item, current_step

if TYPE_CHECKING:
    from engine.mcp.executor import ToolExecutor
    from engine.mcp.results import ToolResult
    from engine.providers.registry import ProviderRegistry
    from engine.providers.types import LLMProvider, LLMRequest, LLMResponse, LLMStreamChunk
    from engine.spec.workflow import Workflow

log = logging.getLogger("plait.cassettes")
#: what a declared secret is set to under --replay when the environment lacks it
REPLAY_SECRET = "plait-replay-placeholder"


@dataclass
class Report:
    """What a replay found, for `plait test` (unused interactions, spec-hash mismatch)."""

    path: Path
    mode: str
    unused: list[str] = field(default_factory=list)
    spec_mismatch: str | None = None
    interactions: int = 0


_collector: ContextVar[list[Report] | None] = ContextVar("plait_cassette_reports",
                                                         default=None)


@contextmanager
def collect_reports() -> Iterator[list[Report]]:
    """Collect the Report of every cassette closed inside the block (plait test)."""
    reports: list[Report] = []
    token = _collector.set(reports)
    try:
        yield reports
    finally:
        _collector.reset(token)


@dataclass
class _Item:
    seq: int
    data: dict[str, Any]
    key: str
    used: bool = False


class Cassette:
    """The interactions of one workflow run, being recorded or replayed."""

    def __init__(self, path: Path, mode: str, workflow: Workflow, *,
                 live: bool = False, versioned: bool = True) -> None:
        self.path = path
        self.mode = mode  # "record" | "replay"
        self.live = live
        #: whether a cassette of another workflow version is reported: not for the cassette
        #: of a `kind: replay` provider, whose workflow differs from the recorded one by design
        #: (the provider's kind was switched to replay after recording)
        self.versioned = versioned
        self.workflow_name = workflow.name
        self.spec_hash = fmt.cassette_hash(workflow)
        #: the hashes a current cassette may carry (this one, and the older form of it)
        self.spec_hashes = fmt.cassette_hashes(workflow)
        self.redact: Callable[[Any], Any] = lambda value: value
        self._items: list[_Item] = []
        self._index: dict[str, list[_Item]] = {}
        self._seq = 0
        self.report = Report(path, mode)
        self.users = 0
        self.scope: object = None
        #: set by begin(): a run that never began (refused resume, failed checks) writes
        #: nothing, so an existing cassette at `path` is left as it was
        self.began = False
        #: what _save() wrote: {"path", "sha256"}, kept in the run record so that a resume
        #: can tell whether the file still holds this run's interactions
        self.saved: dict[str, str] | None = None
        #: the recorded run's `run.id` and `run.started_at` (header `run:`), see run_view()
        self.run: dict[str, Any] | None = None
        if mode == "replay":
            self._load()
        else:
            fmt.check_writable(path)

    @property
    def offline(self) -> bool:
        """Replaying with misses failing: nothing real (client, server) will be started."""
        return self.mode == "replay" and not self.live

    # ------------------------------------------------------------ loading and saving

    def _load(self) -> None:
        data = fmt.read_cassette(self.path)
        if data.get("workflow") != self.workflow_name:
            raise CassetteError(f"cassette {self.path} was recorded for workflow "
                                f"{data.get('workflow')!r}, not {self.workflow_name!r}",
                                hint="point --replay at this workflow's cassette directory")
        if self.versioned and data.get("spec_hash") not in self.spec_hashes:
            self.report.spec_mismatch = (
                f"cassette {self.path} was recorded from another version of workflow "
                f"{self.workflow_name!r} (spec hash {data.get('spec_hash')}, now "
                f"{self.spec_hash}); calls that changed will not match")
            if _collector.get() is None:  # a collector (plait test) reports it itself
                log.warning("%s; re-record it with --record", self.report.spec_mismatch)
        run = data.get("run")
        if (isinstance(run, dict) and isinstance(run.get("id"), str)
                and isinstance(run.get("started_at"), int | float)):
            self.run = {"id": run["id"], "started_at": run["started_at"]}
        for seq, raw in enumerate(data["interactions"]):
            item = _Item(seq, raw, fmt.key_of({"kind": raw["kind"], **raw["request"]}))
            self._items.append(item)
            self._index.setdefault(item.key, []).append(item)
        self.report.interactions = len(self._items)

    def run_view(self, run_id: str, started_at: float) -> tuple[str, float]:
        """The `run.id` and `run.started_at` expressions see: recording, this run's (kept
        for the header); replaying, the recorded run's, so that a prompt or an output using
        them replays and snapshots the same (the run's records keep its own id)."""
        if self.mode == "record":
            self.run = {"id": run_id, "started_at": started_at}
        elif self.run is not None:
            return self.run["id"], self.run["started_at"]
        return run_id, started_at

    def begin(self, previous: Any = None, restored: Iterable[str] = ()) -> None:
        """The run is past its checks and starts now. Recording a resume, the interactions of
        the ``restored`` steps are kept from ``previous`` (the ``saved`` of the run being
        resumed), but only when the file is still exactly what that run wrote."""
        if self.began or self.mode != "record":
            self.began = True
            return
        self.began = True
        restored = set(restored)
        if not restored:
            return
        kept = self._previous_interactions(previous, restored)
        if kept is None:
            log.warning("cassette %s: the previous attempt of this run did not leave its "
                        "interactions there, so those of the restored step(s) %s are not "
                        "in the new cassette (a replay from scratch misses them; record a "
                        "fresh run to have them all)", self.path, ", ".join(sorted(restored)))
            return
        for offset, data in enumerate(kept):
            self._items.append(_Item(offset - len(kept), data, ""))

    def _previous_interactions(self, previous: Any,
                               steps: set[str]) -> list[dict[str, Any]] | None:
        if not isinstance(previous, dict) or previous.get("path") != str(self.path):
            return None
        try:
            raw = self.path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(raw).hexdigest() != previous.get("sha256"):
            return None
        try:  # the bytes that were hashed, not a second read that may differ
            data = fmt.parse_cassette(raw.decode("utf-8"), self.path)
        except (CassetteError, UnicodeDecodeError):
            return None
        return [item for item in data["interactions"] if item.get("step") in steps]

    def close(self) -> None:
        if self.mode == "record":
            if self.began:
                self._save()
            return
        unused = [i for i in self._items if not i.used]
        self.report.unused = [_describe(i.data) for i in unused]
        reports = _collector.get()
        if reports is not None:  # the collector (plait test) reports what was not used
            reports.append(self.report)
        elif unused:
            log.warning("cassette %s: %d recorded interaction(s) were not used: %s",
                        self.path, len(unused), "; ".join(self.report.unused[:5]))

    def _save(self) -> None:
        items = sorted(self._items, key=lambda i: i.seq)
        text = fmt.write_cassette(self.path, {
            "plait_cassette": fmt.FORMAT_VERSION, "workflow": self.workflow_name,
            "spec_hash": self.spec_hash, **({"run": self.run} if self.run else {}),
            "interactions": [i.data for i in items]})
        self.saved = {"path": str(self.path),
                      "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}

    # ------------------------------------------------------------ recording

    def start(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, seq: int, kind: str, request: dict[str, Any], *,
            response: Any = None, error: PlaitError | None = None,
            chunks: list[dict[str, Any]] | None = None) -> None:
        data: dict[str, Any] = {"kind": kind}
        step = current_step.get()
        if step is not None:
            data["step"] = step
        item = current_item.get()
        if item is not None:  # a foreach item: equal requests of its items replay per item
            data["item"] = item
        data["request"] = request
        if error is not None:
            data["error"] = fmt.error_data(error)
        elif chunks is not None:
            data["chunks"] = chunks
        else:
            data["response"] = response
        data = self.redact(data)
        self._items.append(_Item(seq, data, ""))

    # ------------------------------------------------------------ replaying

    def take(self, kind: str, request: dict[str, Any], *,
             ignore_model: bool = False) -> dict[str, Any] | None:
        """The recorded interaction for this request (marked used), or None."""
        request = self.redact(request)
        step = current_step.get()
        if ignore_model:
            candidates = [i for i in self._items if i.data["kind"] == kind and not i.used
                          and _without_model(i.data["request"]) == _without_model(request)]
        else:
            candidates = [i for i in self._index.get(fmt.key_of({"kind": kind, **request}), ())
                          if not i.used]
        if not candidates:
            return None
        item = current_item.get()
        chosen = next((i for i in candidates if i.data.get("step") == step
                       and i.data.get("item") == item), None) or next(
            (i for i in candidates if i.data.get("step") == step), candidates[0])
        chosen.used = True
        return chosen.data

    def miss(self, kind: str, request: dict[str, Any]) -> ReplayMiss:
        step = current_step.get()
        where = f"step {step!r}" if step else "a call outside any step"
        what = {"llm": "LLM call", "llm_stream": "LLM call", "tool": "tool call",
                "tool_list": "tool listing", "resource": "resource read",
                "prompt": "prompt get"}[kind]
        text = f"{where}: no recorded {what} matches this request in {self.path}"
        closest = self._closest(kind, self.redact(request))
        if closest is not None:
            item, diff = closest
            used = " (already used)" if item.used else ""
            text += (f"; the closest recorded request (step {item.data.get('step')!r}"
                     f"{used}) differs:\n{diff}")
        else:
            text += f"; it holds no {what} at all"
        return ReplayMiss(text, hint="re-record the cassette (plait run --record DIR, or "
                                     "plait test --record), or pass --replay-missing=live",
                          step=step)

    def _closest(self, kind: str, request: dict[str, Any]) -> tuple[_Item, str] | None:
        kinds = ("llm", "llm_stream") if kind in ("llm", "llm_stream") else (kind,)
        same = [i for i in self._items if i.data["kind"] in kinds]
        if not same:
            return None
        mine = _pretty(request)
        step = current_step.get()
        best = max(same, key=lambda i: (
            difflib.SequenceMatcher(None, mine, _pretty(i.data["request"])).quick_ratio(),
            i.data.get("step") == step, not i.used))
        lines = unified(best.data["request"], request, "recorded", "this run", context=1,
                        limit=40)
        return best, "\n".join(lines)

    # ------------------------------------------------------------ hooking into a run

    def attach_providers(self, registry: ProviderRegistry) -> None:
        if self.mode == "record":
            registry.add_wrapper(lambda name, provider: RecordingProvider(provider, self))
        elif self.live:
            registry.add_wrapper(lambda name, provider: LiveReplay(provider, self))
        else:
            from engine.providers.replay import ReplayProvider

            registry.substitute(lambda name, spec: ReplayProvider(
                name, model=getattr(spec, "deployment", None) or spec.model, cassette=self))

    def attach_tools(self, executor: ToolExecutor) -> None:
        executor.add_wrapper(self.record_tool if self.mode == "record" else self.replay_tool)
        executor.add_request_wrapper(self._request)

    async def _request(self, server: str, method: str, params: dict[str, Any],
                       call: Callable[[], Awaitable[Any]]) -> Any:
        """`resource:` and `mcp_prompt:` steps (the executor's request wrapper)."""
        if method == "resources/read":
            return await self._through("resource", {"server": server, "uri": params["uri"]},
                                       call)
        return await self._through("prompt", {"server": server, "name": params["name"],
                                              "arguments": dict(params["arguments"])}, call)

    async def _through(self, kind: str, request: dict[str, Any],
                       call: Callable[[], Awaitable[Any]]) -> Any:
        """Record or replay one plain-data MCP read (a resource or a prompt)."""
        request = dict(fmt.plain(request))
        if self.mode == "replay":
            found = self.take(kind, request)
            if found is not None:
                if "error" in found:
                    raise fmt.error_from(found["error"], ToolError)
                return found.get("response")
            if not self.live:
                raise self.miss(kind, request)
            return await call()
        seq = self.start()
        try:
            value = await call()
        except PlaitError as exc:
            self.add(seq, kind, request, error=exc)
            raise
        self.add(seq, kind, request, response=fmt.plain(value))
        return value

    async def record_tool(self, server: str, tool: str, arguments: dict[str, Any],
                          call: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
        request = _tool_request(server, tool, arguments)
        seq = self.start()
        try:
            result = await call()
        except PlaitError as exc:
            self.add(seq, "tool", request, error=exc)
            raise
        self.add(seq, "tool", request, response=fmt.tool_result_data(result))
        return result

    async def replay_tool(self, server: str, tool: str, arguments: dict[str, Any],
                          call: Callable[[], Awaitable[ToolResult]]) -> ToolResult:
        request = _tool_request(server, tool, arguments)
        found = self.take("tool", request)
        if found is None:
            if self.live:
                return await call()
            raise self.miss("tool", request)
        if "error" in found:
            raise fmt.error_from(found["error"], ToolError)
        return fmt.tool_result_from(server, tool, found.get("response") or {})

    async def tool_definitions(self, patterns: list[str], runtime: Any) -> list[Any]:
        """An agent step's tools: listed from the servers (and recorded), or replayed."""
        from engine.mcp.runtime import ToolDefinition

        request = {"patterns": list(patterns)}
        if self.mode == "replay":
            found = self.take("tool_list", request)
            if found is not None:
                return [ToolDefinition(str(t["name"]), str(t.get("description", "")),
                                       dict(t.get("input_schema") or {}))
                        for t in (found.get("response") or {}).get("tools", [])]
            if not self.live:
                raise self.miss("tool_list", request)
            return list(await runtime.tool_definitions(patterns))
        seq = self.start()
        defs = list(await runtime.tool_definitions(patterns))
        self.add(seq, "tool_list", request, response={"tools": fmt.plain(
            [{"name": d.name, "description": d.description, "input_schema": d.input_schema}
             for d in defs])})
        return defs

    # ------------------------------------------------------------ LLM replay

    # Streaming is display-only (`plait run --stream`): a call is answered by a recording of
    # either kind, its own kind first.

    def _take_llm(self, kind: str, name: str, model: str | None,
                  req: LLMRequest) -> dict[str, Any]:
        request = fmt.llm_request(name, model, req)
        ignore_model = model is None and req.model is None
        other = "llm_stream" if kind == "llm" else "llm"
        found = (self.take(kind, request, ignore_model=ignore_model)
                 or self.take(other, request, ignore_model=ignore_model))
        if found is None:
            raise self.miss(kind, request)
        if "error" in found:
            raise fmt.error_from(found["error"], ProviderError)
        return found

    def replay_generate(self, name: str, model: str | None,
                        req: LLMRequest) -> LLMResponse:
        found = self._take_llm("llm", name, model, req)
        if found["kind"] == "llm_stream":
            return fmt.response_from_chunks(found.get("chunks") or [])
        return fmt.response_from(found.get("response") or {})

    def replay_stream(self, name: str, model: str | None,
                      req: LLMRequest) -> list[LLMStreamChunk]:
        found = self._take_llm("llm_stream", name, model, req)
        if found["kind"] == "llm":
            return fmt.chunks_from_response(found.get("response") or {})
        return [fmt.chunk_from(c) for c in found.get("chunks") or ()]


def _tool_request(server: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return dict(fmt.plain({"server": server, "tool": tool, "arguments": arguments}))


def _without_model(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "model"}


def _pretty(request: Any) -> str:
    return json.dumps(request, indent=1, sort_keys=True, ensure_ascii=False)


def _describe(data: dict[str, Any]) -> str:
    req = data.get("request") or {}
    step = f"step {data['step']}: " if data.get("step") else ""
    if data["kind"] == "tool":
        return f"{step}tool {req.get('server')}.{req.get('tool')}"
    if data["kind"] == "tool_list":
        return f"{step}tool_list {req.get('patterns')}"
    if data["kind"] in ("resource", "prompt"):
        return f"{step}{data['kind']} {req.get('server')} {req.get('uri') or req.get('name')}"
    return f"{step}{data['kind']} to {req.get('provider')} ({req.get('model')})"


# ---------------------------------------------------------------- provider wrappers


class _Delegate:
    def __init__(self, inner: LLMProvider, cassette: Cassette) -> None:
        self.inner = inner
        self.cassette = cassette
        self.name = inner.name
        self.kind = inner.kind
        self.model: str | None = getattr(inner, "model", None)

    async def health_check(self) -> bool:
        return await self.inner.health_check()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RecordingProvider(_Delegate):
    """Delegates every call and writes it (request, reply or error) into the cassette."""

    async def generate(self, req: LLMRequest) -> LLMResponse:
        request = fmt.llm_request(self.name, self.model, req)
        seq = self.cassette.start()
        try:
            response = await self.inner.generate(req)
        except PlaitError as exc:
            self.cassette.add(seq, "llm", request, error=exc)
            raise
        self.cassette.add(seq, "llm", request, response=fmt.response_data(response))
        return response

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        request = fmt.llm_request(self.name, self.model, req)
        seq = self.cassette.start()
        chunks: list[dict[str, Any]] = []
        try:
            async for chunk in self.inner.stream(req):
                chunks.append(fmt.chunk_data(chunk))
                yield chunk
        except PlaitError as exc:
            self.cassette.add(seq, "llm_stream", request, error=exc)
            raise
        self.cassette.add(seq, "llm_stream", request, chunks=chunks)


class LiveReplay(_Delegate):
    """--replay-missing=live: answer from the cassette, else call the real provider."""

    async def generate(self, req: LLMRequest) -> LLMResponse:
        try:
            return self.cassette.replay_generate(self.name, self.model, req)
        except ReplayMiss:
            return await self.inner.generate(req)

    async def stream(self, req: LLMRequest) -> AsyncIterator[LLMStreamChunk]:
        try:
            chunks = self.cassette.replay_stream(self.name, self.model, req)
        except ReplayMiss:
            async for chunk in self.inner.stream(req):
                yield chunk
            return
        for chunk in chunks:
            yield chunk


# ---------------------------------------------------------------- opening


#: cassettes shared by the sub-workflow runs of one top-level run, keyed by path and by the
#: top-level run's scope (a fresh object per top-level run, inherited by its child tasks), so
#: a cassette left open by a run that failed to start is never picked up by a later run
_OPEN: dict[tuple[Path, object], Cassette] = {}
_scope: ContextVar[object | None] = ContextVar("plait_cassette_scope", default=None)


def open_cassette(workflow: Workflow, *, record_dir: Path | None, replay_dir: Path | None,
                  replay_missing: str = "fail", share: bool = False,
                  versioned: bool = True) -> Cassette:
    """The cassette of this workflow in the given directory. With ``share`` (sub-workflow
    runs), runs of the same workflow inside one top-level run (a sub-workflow in a foreach)
    share one cassette; ``release`` closes it after the last. ``versioned=False`` does not
    report a cassette recorded from another version of the workflow."""
    if record_dir is not None and replay_dir is not None:
        raise CassetteError("--record and --replay cannot be used together",
                            hint="record first, then replay the directory")
    if replay_missing not in ("fail", "live"):
        raise CassetteError(f"--replay-missing must be fail or live, not {replay_missing!r}")
    directory = Path(record_dir or replay_dir)  # type: ignore[arg-type]
    path = fmt.cassette_path(directory, workflow.name).resolve()
    scope = _scope.get() if share else None
    if scope is None:
        scope = object()
        _scope.set(scope)
    cassette = _OPEN.get((path, scope))
    if cassette is None:
        mode = "record" if record_dir is not None else "replay"
        cassette = Cassette(path, mode, workflow, live=replay_missing == "live",
                            versioned=versioned)
        cassette.scope = scope
        _OPEN[(path, scope)] = cassette
    cassette.users += 1
    return cassette


def release(cassette: Cassette) -> None:
    cassette.users -= 1
    if cassette.users > 0:
        return
    _OPEN.pop((cassette.path, cassette.scope), None)
    cassette.close()
