"""Peak memory and time of refusing an oversized config.json (issue 22's goal: < 1.5 GB), against
loading the demo model itself, each in a fresh subprocess of the same run.

The oversized cases are the demo folder with only its config changed (the original 3.8 MB weights
beside it): ``hidden=4096, lstm_hidden=2048`` (within the bounds: refused by the header check,
once 3.7 GB allocated first) and ``hidden=16384`` (past the bounds: refused by name).

    python benchmarks/bench_untrusted_config.py
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "cmagrounding" / "demo" / "model"
CHILD = """
import resource, sys, time
t = time.perf_counter()
from cmagrounding import Grounder
from cmagrounding.errors import CMAGroundingError
try:
    Grounder.from_pretrained(sys.argv[1], device="cpu")
    outcome = "loaded"
except CMAGroundingError as e:
    outcome = type(e).__name__
print(outcome, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    cases = {"demo model as shipped": {}, "hidden=4096, lstm_hidden=2048": {"hidden": 4096, "lstm_hidden": 2048},
             "hidden=16384, lstm_hidden=8192": {"hidden": 16384, "lstm_hidden": 8192}}
    print(f"CPU: {_cpu()} ({os.cpu_count()} cores); peak resident memory of a fresh process (MB)")
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in cases.items():
            folder = Path(tmp) / name.replace(" ", "_").replace(",", "").replace("=", "")
            shutil.copytree(DEMO, folder)
            cfg = json.loads((folder / "config.json").read_text())
            cfg["model"].update(changes)
            (folder / "config.json").write_text(json.dumps(cfg))
            r = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
            outcome, seconds, peak = r.stdout.split()
            print(f"  {name:32s} {outcome:20s} {float(seconds):6.2f} s  peak {float(peak):7.0f} MB")


if __name__ == "__main__":
    main()
