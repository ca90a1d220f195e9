"""Every YAML example in docs/providers is a valid workflow whose providers pass check()."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.errors import ConfigError
from engine.providers import ProviderRegistry
from engine.spec.models import WorkflowSpec

DOCS = Path(__file__).resolve().parents[2] / "docs" / "providers"
EXAMPLES = [(page.name, block) for page in sorted(DOCS.glob("*.md"))
            for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)]
ENV = {"OPENAI_API_KEY": "k", "AZURE_OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k",
       "GOOGLE_API_KEY": "k", "GOOGLE_CLOUD_PROJECT": "p", "GOOGLE_CLOUD_LOCATION": "l"}


def test_every_kind_has_a_page() -> None:
    for kind in ("openai", "azure_openai", "anthropic", "google", "echo", "replay"):
        assert (DOCS / f"{kind}.md").exists()
    assert len(EXAMPLES) >= 7


@pytest.mark.parametrize(("page", "block"), EXAMPLES, ids=[p for p, _ in EXAMPLES])
def test_example_is_valid(page: str, block: str) -> None:
    spec = WorkflowSpec.model_validate(yaml.safe_load(block))
    registry = ProviderRegistry.from_specs(spec.providers, env=ENV, pricing=spec.pricing)
    registry.check()


def test_a_replay_provider_without_a_cassette_is_refused() -> None:
    spec = WorkflowSpec.model_validate(yaml.safe_load(
        "version: 1\nname: r\nproviders: {p: {kind: replay}}\nsteps: {a: {llm: p, prompt: x}}"))
    registry = ProviderRegistry.from_specs(spec.providers, env={})
    with pytest.raises(ConfigError, match="needs a cassette"):
        registry.check()
