"""`plait validate` costs: process wall time on an example, a generated 5,000-step file, and a
ladder of sub-workflow diamonds (each file checked once, however many paths reach it).

    python bench/validate.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def generated(steps: int, seed: int = 5) -> str:
    """A layered workflow: 50 steps per layer, each depending on 2 steps of the layer before
    through expressions, with a prompt, an `if` and a retry."""
    rng = random.Random(seed)
    lines = ["version: 1", "name: big", "inputs:", "  topic: {type: string, default: x}",
             "providers:", "  m: {kind: echo}", "steps:"]
    width = 50
    for i in range(steps):
        layer = i // width
        lines.append(f"  s{i}:")
        lines.append("    llm: m")
        if layer:
            a, b = rng.sample(range((layer - 1) * width, layer * width), 2)
            ref = f"${{{{ steps.s{a}.output }}}}"
            lines.append(f'    prompt: "about ${{{{ inputs.topic }}}}: {ref}"')
            lines.append(f"    if: ${{{{ steps.s{b}.status == 'succeeded' }}}}")
        else:
            lines.append('    prompt: "start ${{ inputs.topic }}"')
        lines.append("    retry: {attempts: 2}")
    return "\n".join(lines) + "\n"


def ladder(root: Path, levels: int = 8, width: int = 6) -> Path:
    """`levels` levels of `width` files, each calling every file of the next level (the last
    level an echo step): width ** (levels - 1) paths from the top, levels * width files."""
    for level in range(levels):
        for k in range(width):
            if level < levels - 1:
                steps = "".join(f"  c{j}:\n    workflow: l{level + 1}_{j}.yaml\n"
                                for j in range(width))
            else:
                steps = "  s:\n    llm: e\n    prompt: hi\n"
            head = "providers:\n  e: {kind: echo}\n" if level == levels - 1 else ""
            (root / f"l{level}_{k}.yaml").write_text(
                f"version: 1\nname: l{level}_{k}\n{head}steps:\n{steps}")
    return root / "l0_0.yaml"


def wall(args: list[str], repeat: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runners.cli.main", *args], check=True,
                       capture_output=True, env=env)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = [{"what": "plait validate workflows/digest/digest.yaml (process wall)",
             "median_s": round(wall(["validate", str(ROOT / "workflows/digest/digest.yaml")],
                                    args.repeat), 3)},
            {"what": "python -c pass (interpreter start, for reference)",
             "median_s": round(statistics.median(
                 _time([sys.executable, "-c", "pass"]) for _ in range(args.repeat)), 3)}]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.yaml"
        big.write_text(generated(5000))
        rows.append({"what": "plait validate of a generated 5,000-step workflow (process wall)",
                     "median_s": round(wall(["validate", str(big)], args.repeat), 3)})
        sys.path.insert(0, str(ROOT))
        from engine.spec.loader import load

        in_process = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            load(big)
            in_process.append(time.perf_counter() - started)
        rows.append({"what": "engine.load of the 5,000-step workflow (in process)",
                     "median_s": round(statistics.median(in_process), 3)})
        top = ladder(Path(tmp))
        rows.append({"what": "plait validate of a ladder of sub-workflow diamonds (8 levels x "
                             "6 files, 6**7 paths; process wall)",
                     "median_s": round(wall(["validate", str(top)], args.repeat), 3)})
    for row in rows:
        print(json.dumps(row))


def _time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
