from __future__ import annotations

import subprocess
import sys

import engine.providers as providers


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
