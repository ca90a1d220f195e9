"""The README's first command runs workflows/digest/digest.yaml in a plain install
(`pip install -e '.[mcp]'`): no trio, so no sniffio either (anyio no longer installs it).
The test suite's own install has both, so the run is made here with sniffio hidden."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: runs `plait` as if sniffio and trio were not installed
WITHOUT_SNIFFIO = """
import sys
sys.modules["sniffio"] = None  # import sniffio: ImportError, as in a plain install
sys.modules["trio"] = None
from runners.cli.main import main
sys.argv = ["plait", *sys.argv[1:]]
main()
"""


def test_the_digest_example_runs_its_mcp_server_without_sniffio(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "workflows" / "digest", tmp_path / "digest",
                    ignore=shutil.ignore_patterns(".plait"))
    bin_dir = str(Path(sys.executable).parent)  # plait-mcp-files, as the venv's PATH has it
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    out = subprocess.run([sys.executable, "-c", WITHOUT_SNIFFIO, "run", "digest.yaml",
                          "--no-record", "--json"], cwd=tmp_path / "digest", env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "succeeded"
    assert result["steps"]["ls"]["status"] == "succeeded"  # the MCP server's tool answered
