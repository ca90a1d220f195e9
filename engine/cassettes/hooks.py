"""How a run's Services plug a cassette in (kept here so services.py only calls three hooks)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cassettes.session import REPLAY_SECRET, Cassette, open_cassette
from engine.errors import CassetteError

if TYPE_CHECKING:
    from engine.executor.context import RunOptions
    from engine.providers.registry import ProviderRegistry
    from engine.spec.workflow import Workflow


def open_for_run(workflow: Workflow, options: RunOptions,
                 environ: dict[str, str]) -> Cassette | None:
    """The run's cassette (None without --record/--replay). Under replay, a declared secret
    missing from the environment gets a placeholder: nothing real will be called."""
    if options.record_dir is None and options.replay_dir is None:
        return None
    cassette = open_cassette(workflow, record_dir=_path(options.record_dir),
                             replay_dir=_path(options.replay_dir),
                             replay_missing=options.replay_missing,
                             share=options.parent_run_id is not None)
    if cassette.mode == "replay" and not cassette.live:
        for name in workflow.spec.secrets:
            environ.setdefault(name, REPLAY_SECRET)
    return cassette


def _path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def prepare_registry(registry: ProviderRegistry, workflow: Workflow,
                     cassette: Cassette | None) -> None:
    """`kind: replay` providers answer from their `path:` (relative to the workflow); then
    the run's cassette, if any, records or replaces every provider."""
    from engine.providers.replay import ReplayProvider

    # replaced by the run's own cassette under an offline --replay; else each one's cassette
    # is opened now, so a missing or unusable one refuses the run before any step (exit 2)
    eager = cassette is None or not cassette.offline
    opened: list[ReplayProvider] = []

    def replay(name: str, spec: Any) -> ReplayProvider:
        path = str(workflow.base_dir / spec.path) if spec.path else None
        provider = ReplayProvider(name, path=path, model=spec.model, workflow=workflow)
        if cassette is None and path is None:  # nothing could ever answer it: refuse now
            for other in opened:
                other.close()
            raise provider.refusal()
        if eager and path is not None:
            try:
                provider.open(spec.path)
            except CassetteError:
                for other in opened:
                    other.close()
                raise
            opened.append(provider)
        return provider

    registry.substitute(replay, kinds=("replay",))
    if cassette is not None:
        cassette.attach_providers(registry)
