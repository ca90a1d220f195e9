"""Replaying a 100-call cassette: the whole `plait run --replay` process, wall clock.

    PYTHONPATH=. python bench/cassettes.py [--calls 100] [--repeat 5]

Builds a workflow in a temp dir with N steps: 3/4 are LLM calls to the echo provider (with
output schemas on some), 1/4 are MCP tool calls to the bundled files server (started from
this checkout). Records it once with `plait run --record`, then times `plait run --replay`
as a fresh process `--repeat` times (median reported), next to `plait validate` of the same
file (the fixed cost of starting Python and importing plait) for context.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workflow(calls: int) -> str:
    tools = calls // 4
    lines = ["version: 1", "name: bench-cassette",
             "providers:", "  p: {kind: echo, model: bench}",
             "mcp_servers:", "  files:",
             f"    command: {json.dumps(sys.executable)}",
             "    args: [-m, engine.mcp.servers.files, --root, data]",
             f"    env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}",
             "policies:", "  low: {level: low}", "defaults: {policy: low}", "steps:"]
    for i in range(calls - tools):
        shape = ", output_schema: {type: object, required: [n], properties: {n: " \
                "{type: integer}}}" if i % 5 == 0 else ""
        lines.append(f'  s{i}: {{llm: p, prompt: "step {i} of the benchmark"{shape}}}')
    for i in range(tools):
        lines.append(f"  t{i}: {{tool: files.read_file, with: {{path: f{i % 5}.txt}}}}")
    lines += ["outputs:", "  last: ${{ steps.s0.output }}"]
    return "\n".join(lines) + "\n"


def plait(*args: str, cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plait {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="plait-bench-") as tmp:
        base = Path(tmp)
        (base / "data").mkdir()
        for i in range(5):
            (base / "data" / f"f{i}.txt").write_text(f"file {i}\n" * 20)
        (base / "wf.yaml").write_text(workflow(opts.calls))
        record = plait("run", "wf.yaml", "--record", "tape", "--no-record", cwd=base)
        cassette = base / "tape" / "bench-cassette.cassette.yaml"
        count = cassette.read_text().count("- kind:")
        size = cassette.stat().st_size
        validate = [plait("validate", "wf.yaml", cwd=base) for _ in range(opts.repeat)]
        replay = [plait("run", "wf.yaml", "--replay", "tape", "--no-record", cwd=base)
                  for _ in range(opts.repeat)]
    print(f"interactions in the cassette: {count} ({size} bytes)")
    print(f"record (live, one run):           {record:.3f} s")
    print(f"plait validate (median of {opts.repeat}):  {statistics.median(validate):.3f} s")
    print(f"plait run --replay (median of {opts.repeat}): {statistics.median(replay):.3f} s "
          f"(all: {', '.join(f'{t:.3f}' for t in replay)})")


if __name__ == "__main__":
    main()
