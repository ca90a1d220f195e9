"""A step's `options:` are sent to whichever provider of its chain answers (the step's
provider, then its `fallback:` providers, engine.providers.run), so `plait validate` checks
them against each fallback's kind too, at the step's option, naming the fallback. It checked
them against the step's own provider only: an option a fallback refuses passed validation and
failed the step the day the primary went down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.spec.loader import load

ROOT = Path(__file__).resolve().parents[2]
FILES = Path(__file__).resolve().parent / "fallback_options"


def _plait(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    keep = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=FILES,
                          capture_output=True, text=True, timeout=60,
                          env={**keep, "PYTHONPATH": str(ROOT), **env})


def _at(name: str, option: str, *, value: bool) -> str:
    """file:line:col of the step's option (its value, or its name)."""
    for number, line in enumerate((FILES / name).read_text().splitlines(), 1):
        if line.strip().startswith(f"{option}:"):
            column = line.index(option) + 1
            return f"{name}:{number}:{column + len(option) + 2 if value else column}"
    raise AssertionError(f"{option} not in {name}")


def test_validate_checks_a_steps_options_against_each_fallback() -> None:
    out = _plait("validate", "chain.yaml")
    assert out.returncode == 2, out.stderr
    said = [line for line in out.stderr.splitlines() if line.startswith("chain.yaml:")]
    chain = ("set {0} in providers.fast.options instead (a provider's own options are not "
             "sent to its fallbacks), or use an option every provider of the chain takes")
    assert said == [
        f"{_at('chain.yaml', 'seed', value=False)}: fallback provider 'careful' (anthropic) "
        "of provider 'fast' has no option 'seed', and a step's options are sent to its "
        f"provider's fallbacks too at 'steps.draft.options.seed' ({chain.format('seed')})",
        f"{_at('chain.yaml', 'temperature', value=True)}: fallback provider 'careful' "
        "(anthropic) of provider 'fast': option temperature must be a number within 0..1, "
        "got number 1.5 (a step's options are sent to its provider's fallbacks too) at "
        "'steps.draft.options.temperature' (use a number within 0..1, or "
        f"{chain.format('temperature')})",
        # wrong for the step's own provider: said once, for it, not again for each fallback
        f"{_at('chain.yaml', 'colour', value=False)}: openai providers have no option "
        "'colour' at 'steps.draft.options.colour' (expected one of: extra_body, "
        "frequency_penalty, logit_bias, logprobs, max_completion_tokens, max_tokens, "
        "metadata, parallel_tool_calls, presence_penalty, prompt_cache_key, "
        "reasoning_effort, safety_identifier, ... (vendor-specific fields go under "
        "options.extra_body))",
    ], out.stderr


def test_options_every_provider_of_the_chain_takes_pass() -> None:
    load(FILES / "fits.yaml")  # raises SpecError otherwise
    out = _plait("validate", "fits.yaml")
    assert out.returncode == 0, out.stderr


def test_a_run_sends_the_steps_options_to_the_fallback(tmp_path: Path) -> None:
    """What validate's check stands on: the fallback gets the step's options (here rendered
    from an input, so validate cannot know them) and refuses what its kind cannot take."""
    assert _plait("validate", "rendered.yaml").returncode == 0
    out = _plait("run", "rendered.yaml", "--json", "--state", str(tmp_path / "runs.db"),
                 ANTHROPIC_API_KEY="sk-ant-test-not-used")
    assert out.returncode == 1, out.stderr
    step = json.loads(out.stdout)["steps"]["draft"]
    assert step["status"] == "failed"
    assert step["error"]["message"].startswith(
        "provider 'careful' (anthropic): option temperature must be a number within 0..1, "
        "got number 1.5"), step["error"]
    assert step["error"]["kind"] == "bad_request"
