from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import engine.providers as providers

ROOT = Path(__file__).resolve().parents[2]


def test_exported_members() -> None:
    assert sorted(providers.__all__) == sorted(set(providers.__all__))
    for name in providers.__all__:
        module = getattr(getattr(providers, name), "__module__", "engine.providers")
        assert module.startswith(("engine.providers", "types")), name
    assert {"LLMProvider", "LLMRequest", "LLMResponse", "LLMStreamChunk", "ProviderRegistry",
            "run_llm", "LLMResult", "ToolCaller", "Usage", "EchoProvider"} <= set(providers.__all__)


def test_importing_providers_loads_no_vendor_sdk() -> None:
    code = ("import sys, engine.providers\n"
            "from engine.providers import ProviderRegistry\n"
            "from engine.spec.models import ProviderSpec\n"
            "r = ProviderRegistry.from_specs({'a': ProviderSpec(kind='openai', model='m')},"
            " env={'OPENAI_API_KEY': 'k'}); r.check()\n"
            "bad = [m for m in ('openai', 'anthropic', 'google.genai', 'httpx2')"
            " if m in sys.modules]\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_missing_sdk_names_the_extra() -> None:
    code = ("import sys; sys.modules['anthropic'] = None\n"
            "from engine.providers import ProviderRegistry\n"
            "from engine.spec.models import ProviderSpec\n"
            "r = ProviderRegistry.from_specs({'a': ProviderSpec(kind='anthropic', model='m',"
            " api_key='k')}, env={})\n"
            "p = r.get('a')\n"
            "try:\n    p.client\nexcept ImportError as e:\n    print(type(e).__name__, e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == ("MissingDependencyError anthropic is not installed "
                                  "(hint: pip install 'plait[anthropic]')")


def test_a_provider_whose_sdk_is_missing_is_refused_before_the_run(tmp_path: Path) -> None:
    """`plait run` refuses it before any step starts (exit 2) and `plait providers check`
    reports it, naming the extra, instead of saying "ok" and failing every step of it."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: w\nproviders:\n  p: {kind: openai, model: m, api_key: k}\n"
        "steps:\n  a: {llm: p, prompt: hi}\n")
    code = ("import sys; sys.modules['openai'] = None\n"  # the SDK is not installed
            "from runners.cli.main import main\n"
            "sys.argv[0] = 'plait'\n"
            "main()\n")
    for args in (["run", "wf.yaml"], ["providers", "check", "wf.yaml"]):
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path,
                             capture_output=True, text=True, check=False, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 2, out.stdout + out.stderr
        assert ("provider 'p' (openai) needs the openai SDK, which is not installed "
                "(hint: pip install 'plait[openai]')") in out.stderr
        assert "started" not in out.stderr  # no step ran
