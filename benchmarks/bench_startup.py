"""Start-up cost: ``import cmagrounding`` and ``Grounder.from_pretrained`` of the demo model.

Every figure is a fresh Python subprocess (nothing cached in the interpreter; the OS file cache
is warm after the first round), median of ``--repeats``, as wall-clock seconds and as CPU seconds
(user + system of the child: on a shared, loaded machine the wall clock waits for other work,
the CPU time does not). Printed, all from the same run:

* ``python -c pass`` (the interpreter) and ``import torch`` alone: torch's import is a floor that
  no change here can go below;
* ``import cmagrounding``, ``from cmagrounding import Grounder``;
* ``from_pretrained`` of the demo model, whole (import included: the issue's goal, <= 1 s) and
  split into its parts inside one process: resolving the folder and reading config.json, the
  tokenizer, building the network, reading and loading its weights, checking the extractor's
  weights (the recorded checksum in the weights file's header), and the extractor build that is
  deferred to the first video (network build, weights read, checksum over the tensors).

    python benchmarks/bench_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

SNIPPETS = [
    ("python -c pass", "pass"),
    ("import torch", "import torch"),
    ("import cmagrounding", "import cmagrounding"),
    ("from cmagrounding import Grounder", "from cmagrounding import Grounder"),
    ("import + Grounder.from_pretrained(demo model)",
     "from cmagrounding import Grounder\nfrom cmagrounding.demo import DEMO_MODEL_DIR\n"
     "Grounder.from_pretrained(DEMO_MODEL_DIR, device='cpu')"),
]

# one process: from_pretrained's parts, timed in the order _pretrained.load runs them
SPLIT = r"""
import json, logging, sys, time
logging.disable(logging.WARNING)
t = time.perf_counter()
import torch
from cmagrounding import Grounder, _io, _pretrained
from cmagrounding.demo import DEMO_MODEL_DIR
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.config import VideoConfig
parts = {"imports (torch, cmagrounding)": time.perf_counter() - t}
def step(name, fn):
    t = time.perf_counter(); out = fn(); parts[name] = time.perf_counter() - t; return out
folder = step("resolve folder + read config.json", lambda: _pretrained.resolve(DEMO_MODEL_DIR))
config = _pretrained.read_config(folder)
model_cfg = CMAConfig.from_dict(config["model"]); video_cfg = VideoConfig.from_dict(config["video"])
step("tokenizer.json", lambda: WordTokenizer.from_file(folder / _pretrained.TOKENIZER_FILE))
net = step("build the network", lambda: CMANetwork(model_cfg))
w = folder / _pretrained.WEIGHTS_FILE
step("read + load the network's weights",
     lambda: net.load_state_dict(_io.load_safetensors(w), strict=True))
check = getattr(_pretrained, "check_extractor_weights", None)  # absent before the deferred build
checked = step("extractor weights: checksum from the file header", lambda: check and check(video_cfg))
t = time.perf_counter(); g = Grounder.from_pretrained(DEMO_MODEL_DIR, device="cpu")
parts["from_pretrained, whole, in this warm process"] = time.perf_counter() - t
t = time.perf_counter(); g.video_encoder
parts["extractor build (deferred to the first video)"] = time.perf_counter() - t
print(json.dumps({"parts": parts, "header_checked": checked}))
"""


def run_child(code: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, stdout) of ``python -c code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{code}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"{sys.executable}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} "
          f"(wall-clock figures include waiting for other work on the machine; CPU figures do not)")
    run_child("import torch")  # warm the OS file cache
    walls: dict[str, list[float]] = {name: [] for name, _ in SNIPPETS}
    cpus: dict[str, list[float]] = {name: [] for name, _ in SNIPPETS}
    for _ in range(args.repeats):  # interleaved, so load changes hit every row alike
        for name, code in SNIPPETS:
            wall, cpu, _ = run_child(code)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"\n{'fresh process (median of ' + str(args.repeats) + ')':52s} {'wall s':>8s} {'CPU s':>8s} {'CPU - torch':>12s}")
    torch_cpu = statistics.median(cpus["import torch"])
    for name, _ in SNIPPETS:
        w, c = statistics.median(walls[name]), statistics.median(cpus[name])
        print(f"{name:52s} {w:8.3f} {c:8.3f} {c - torch_cpu:12.3f}")

    splits = [json.loads(run_child(SPLIT)[2])["parts"] for _ in range(args.repeats)]
    print(f"\nfrom_pretrained of the demo model, split (one process each, median of {args.repeats}):")
    for key in splits[0]:
        print(f"  {key:58s} {statistics.median(s[key] for s in splits):8.3f} s")
    whole = statistics.median(walls[SNIPPETS[-1][0]])
    whole_cpu = statistics.median(cpus[SNIPPETS[-1][0]])
    print(f"\nimport + from_pretrained: {whole:.2f} s wall, {whole_cpu:.2f} s CPU (goal <= 1 s); "
          f"import torch alone: {statistics.median(walls['import torch']):.2f} s wall, {torch_cpu:.2f} s CPU "
          f"(a floor: the goal is {'within reach' if torch_cpu < 1.0 else 'below it'} on this machine)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
