"""Provider option values: `plait validate` reports one that cannot work at its place in the
file, in the words the run's own check uses (one check per kind, engine.spec.provider_options),
without importing a vendor SDK; a value that is an expression is checked once rendered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.errors import BadRequest, ConfigError, SpecError
from engine.providers import ProviderRegistry
from engine.providers.echo import EchoProvider
from engine.providers.openai import OpenAIProvider
from engine.providers.types import LLMRequest, Message
from engine.spec.loader import load_text
from engine.spec.models import ProviderSpec

ROOT = Path(__file__).resolve().parents[2]

#: kind, the provider's other fields, option, a bad value (as YAML), the run's words for it
BAD = [
    ("echo", {}, "latency", "fast", "option latency: expected a duration such as 500ms, "
     "30s, 5m or 1h, got string \"fast\""),
    ("echo", {}, "failure_rate", "2", "option failure_rate must be a number within 0..1, "
     "got integer 2"),
    ("openai", {"model": "m"}, "temperature", "hot", "option temperature must be a number "
     "within 0..2, got string \"hot\""),
    ("openai", {"model": "m"}, "max_tokens", "'500'", "option max_tokens must be a whole "
     "number of at least 1, got string \"500\""),
    ("azure_openai", {"model": "m", "endpoint": "https://r.openai.azure.com",
                      "api_version": "2024-10-21"},
     "logprobs", "maybe", "option logprobs must be true or false, got string \"maybe\""),
    ("anthropic", {"model": "m"}, "temperature", "1.5", "option temperature must be a "
     "number within 0..1, got number 1.5"),
    ("anthropic", {"model": "m"}, "thinking", "enabled", "option thinking must be a mapping "
     "(key: value), got string \"enabled\""),
    ("google", {"model": "m"}, "top_p", "-0.1", "option top_p must be a number within "
     "0..1, got number -0.1"),
    ("google", {"model": "m"}, "safety_settings", "BLOCK_NONE", "option safety_settings must "
     "be a list, got string \"BLOCK_NONE\""),
]


def _workflow(kind: str, fields: dict[str, Any], options: str, step_options: str = "") -> str:
    extra = "".join(f", {k}: {json.dumps(v)}" for k, v in fields.items())
    step = f"    options: {step_options}\n" if step_options else ""
    return ("version: 1\nname: wf\ninputs:\n  t: {default: '0.5'}\nproviders:\n"
            f"  p: {{kind: {kind}{extra}, options: {options}}}\n"
            f"steps:\n  a:\n    llm: p\n    prompt: hi\n{step}")


def _issues(text: str) -> list[str]:
    try:
        load_text(text, "wf.yaml")
    except SpecError as exc:
        return [issue.format() for issue in exc.issues]
    return []


@pytest.mark.parametrize(("kind", "fields", "option", "value", "said"), BAD)
def test_a_bad_option_value_is_located_and_worded_as_the_run_says_it(
        kind: str, fields: dict[str, Any], option: str, value: str, said: str) -> None:
    text = _workflow(kind, fields, f"{{{option}: {value}}}")
    line = text.splitlines()[5]
    column = line.index(f"{option}: {value}") + len(option) + 3  # the value's first column
    [issue] = _issues(text)
    assert issue.startswith(f"wf.yaml:6:{column}: provider 'p' ({kind}): {said} "
                            f"at 'providers.p.options.{option}'"), issue
    # the run's pre-flight (and `plait providers check`) says the same of the same spec
    spec = ProviderSpec.model_validate({"kind": kind, **fields, "api_key": "k",
                                        "options": {option: _yaml_value(value)}})
    [problem] = ProviderRegistry.from_specs({"p": spec}, env={}).problems()
    assert problem.startswith(f"provider 'p' ({kind}): {said}"), problem


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def test_a_bad_value_in_a_step_options_is_located_there() -> None:
    text = _workflow("openai", {"model": "m"}, "{temperature: 0}", "{top_logprobs: 30}")
    [issue] = _issues(text)
    assert issue.startswith("wf.yaml:11:29: provider 'p' (openai): option top_logprobs must "
                            "be a whole number within 0..20, got integer 30 at "
                            "'steps.a.options.top_logprobs'"), issue


@pytest.mark.parametrize("options", [
    "{temperature: 0.2, max_tokens: 800, seed: 7, logit_bias: {'50256': -100}}",
    "{temperature: '${{ inputs.t }}'}",          # known once rendered: checked by the run
    "{temperature: null}",                       # not set
])
def test_good_and_templated_values_pass(options: str) -> None:
    assert _issues(_workflow("openai", {"model": "m"}, options)) == []


def test_an_openai_compatible_server_may_take_values_the_openai_api_does_not() -> None:
    assert _issues(_workflow("openai", {"model": "m", "base_url": "http://127.0.0.1:8000/v1"},
                             "{temperature: 3}")) == []
    [issue] = _issues(_workflow("openai", {"model": "m"}, "{temperature: 3}"))
    assert "option temperature must be a number within 0..2, got integer 3" in issue


def test_a_rendered_step_option_is_checked_by_the_provider_with_the_same_words() -> None:
    provider = OpenAIProvider("p", ProviderSpec(kind="openai", model="m"), api_key="k")
    request = LLMRequest((Message("user", "hi"),), options={"temperature": "hot"})
    with pytest.raises(BadRequest, match=r"^provider 'p' \(openai\): option temperature must "
                                         r"be a number within 0\.\.2, got string \"hot\""):
        provider.options_for(request)
    with pytest.raises(ConfigError, match="option seed must be a whole number"):
        OpenAIProvider("p", ProviderSpec(kind="openai", model="m", options={"seed": 1.5}),
                       api_key="k")
    with pytest.raises(ConfigError, match="option latency: expected a duration"):
        EchoProvider("e", options={"latency": "${{ rendered already }}"})  # from an input
    echo = EchoProvider("e")
    with pytest.raises(BadRequest, match=r"^provider 'e' \(echo\): option latency: expected "
                                         "a duration"):
        anyio.run(echo.generate, LLMRequest((Message("user", "hi"),),
                                            options={"latency": "fast"}))


def _plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                                           "PYTHONDONTWRITEBYTECODE": "1"})


def test_a_templated_value_is_refused_by_the_run_once_rendered(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    wf = tmp_path / "wf.yaml"
    wf.write_text("version: 1\nname: wf\ninputs:\n  lat: {default: 1ms}\nproviders:\n"
                  "  m: {kind: echo, options: {latency: '${{ inputs.lat }}'}}\n"
                  "policies:\n  open: {level: low}\n"
                  f"steps:\n  first:\n    run: touch {marker}\n    policy: open\n"
                  "  a:\n    llm: m\n    prompt: hi\n", encoding="utf-8")
    assert _plait("-m", "runners.cli.main", "validate", str(wf), cwd=tmp_path).returncode == 0
    run = _plait("-m", "runners.cli.main", "run", str(wf), "-i", "lat=fast", "--no-record",
                 cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    assert "provider 'm' (echo): option latency: expected a duration such as 500ms, 30s, " \
           "5m or 1h, got string \"fast\"" in run.stderr
    assert not marker.exists()  # refused before any step ran


def test_validate_checks_every_kind_without_importing_a_vendor_sdk(tmp_path: Path) -> None:
    providers = {
        "o": {"kind": "openai", "model": "m", "options": {"temperature": "hot"}},
        "c": {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:8000/v1",
              "options": {"presence_penalty": "x"}},
        "z": {"kind": "azure_openai", "model": "m", "endpoint": "https://r.openai.azure.com",
              "api_version": "2024-10-21", "options": {"store": "yes"}},
        "a": {"kind": "anthropic", "model": "m", "options": {"top_k": -1}},
        "g": {"kind": "google", "model": "m", "options": {"candidate_count": 0}},
        "e": {"kind": "echo", "options": {"latency": "fast"}},
        "r": {"kind": "replay", "path": "cassettes"},
    }
    steps = {f"s{name}": {"llm": name, "prompt": "hi"} for name in providers}
    wf = tmp_path / "wf.yaml"
    wf.write_text(json.dumps({"version": 1, "name": "wf", "providers": providers,
                              "steps": steps}), encoding="utf-8")
    out = _plait("-X", "importtime", "-m", "runners.cli.main", "validate", str(wf),
                 cwd=tmp_path)
    assert out.returncode == 2
    said = [line for line in out.stderr.splitlines() if line.startswith(str(wf))]
    assert len(said) == 6, out.stderr  # one per kind that has options to check
    for name in ("o", "c", "z", "a", "g", "e"):
        assert any(f"provider '{name}' (" in line for line in said), name
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines()
                if line.startswith("import time:")}
    assert "engine.spec.provider_options" in imported  # the list is the real one
    vendors = {m for m in imported
               if m.split(".")[0] in ("openai", "anthropic") or m.startswith("google.genai")}
    assert not vendors, sorted(vendors)
