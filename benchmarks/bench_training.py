"""Training throughput of the Charades-STA presets on this CPU, and the time of one epoch.

One training step = the real pipeline: GroundingDataset items (LGI's sampling to N = 128 clips with
a random offset), collate, forward, the paper's loss, backward and an Adam step, at the paper's
batch of 100. Features are random 1024-d I3D-sized sequences of 60-190 vectors (Charades-STA
videos are ~30 s: ~94 I3D vectors at 25 fps, one per 8 frames); queries are real Charades-STA
sentences when ../shared/data is present, else generated ones of the same length. Prints samples/s,
s per step, the estimated time of one Charades-STA epoch (12,408 queries) and of the recipe's 500
epochs, and each setting's ratio to the charades-simple fp32 baseline measured in the same run.

Shared machines are noisy, so the run also measures its own baseline: an fp32 GEMM of the model's
typical shape (B*N x 512 x 512), and the FLOPs of one training step (torch's FlopCounterMode);
"GEMM share" = the step's achieved FLOP/s over that GEMM's. An idle 2-core machine here does
~270 GFLOP/s fp32 (FACTS.md); the last column rescales the epoch time to that, as an estimate.

    python benchmarks/bench_training.py [--steps 2] [--threads 2] [--bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from cmagrounding.model.losses import GroundingLoss
from cmagrounding.model.network import CMANetwork
from cmagrounding.model.presets import get_preset
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.training.annotations import Annotation, load_annotations
from cmagrounding.training.dataset import GroundingDataset, collate
from cmagrounding.training.stores import MemoryStore

CHARADES_TRAIN_QUERIES = 12_408
RECIPE_EPOCHS = 500  # fallback (LGI), the charades recipes' default


def _annotations(count: int, rng: np.random.Generator) -> list[Annotation]:
    shared = Path(os.environ.get("CMAGROUNDING_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if (shared / "charades_sta").is_dir():
        rows = list(load_annotations("charades-sta", shared / "charades_sta", "train"))[:count]
        return [Annotation(f"v{i}", a.duration, a.query, a.start, a.end) for i, a in enumerate(rows)]
    words = "person opens the door then sits on a chair holding cup".split()
    return [Annotation(f"v{i}", 30.0, " ".join(rng.choice(words, size=7)), 5.0, 13.0) for i in range(count)]


IDLE_GEMM_GFLOPS = 270.0  # FACTS.md: fp32 GEMM on this 2-core machine when idle


def gemm_gflops(repeats: int = 5) -> float:
    a, b = torch.randn(12800, 512), torch.randn(512, 512)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * 12800 * 512 * 512 / statistics.median(times) / 1e9


def measure(preset: str, steps: int, batch: int, bf16: bool, rng_seed: int = 0) -> dict:
    rng = np.random.default_rng(rng_seed)
    p = get_preset(preset)
    rows = _annotations(batch * (steps + 1), rng)
    tok = WordTokenizer.build([a.query for a in rows], style="lgi")
    cfg = p.model.replace(vocab_size=tok.vocab_size)
    store = MemoryStore({a.video: rng.normal(size=(int(rng.integers(60, 190)), cfg.video_dim)).astype(np.float32)
                         for a in rows})
    ds = GroundingDataset(rows, store, tok, cfg.num_clips, cfg.max_words, train=True)
    torch.manual_seed(0)
    net = CMANetwork(cfg).train()
    loss_fn = GroundingLoss(p.loss)
    opt = torch.optim.Adam([q for q in net.parameters() if q.requires_grad], lr=1e-3)
    from torch.utils.flop_counter import FlopCounterMode

    times, flops = [], 0
    for s in range(steps + 1):  # step 0 is a warm-up, and counts the FLOPs
        t = time.perf_counter()
        b = collate([ds[i] for i in range(s * batch, (s + 1) * batch)])
        counter = FlopCounterMode(display=False) if s == 0 else contextlib.nullcontext()
        with counter:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = net(b["video"], b["video_mask"], b["words"], b["word_mask"])
            lo = loss_fn(out, b["target"], b["clip_mask"])
            opt.zero_grad(set_to_none=True)
            lo.total.backward()
        opt.step()
        if s == 0:
            flops = counter.get_total_flops()
        else:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    return {"preset": preset, "bf16": bf16, "params": sum(q.numel() for q in net.parameters()),
            "step_s": step, "samples_per_s": batch / step, "step_gflop": flops / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per setting (median reported)")
    ap.add_argument("--batch", type=int, default=100, help="batch size (paper: 100)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast (CPU AMX / AVX512-BF16)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, os.cpu_count()={os.cpu_count()}, "
          f"load average {load:.1f}, batch {args.batch}, N = 128, {args.steps} timed steps each (median)")
    settings = [("charades-simple", False), ("charades-full", False)]
    if args.bf16:
        settings += [("charades-simple", True), ("charades-full", True)]
    gemm_before = gemm_gflops()
    results = [measure(name, args.steps, args.batch, bf16) for name, bf16 in settings]
    gemm = (gemm_before + gemm_gflops()) / 2
    print(f"fp32 GEMM baseline in this run: {gemm:.0f} GFLOP/s (idle machine: ~{IDLE_GEMM_GFLOPS:.0f})")
    base = results[0]["samples_per_s"]
    print(f"{'preset':16s} {'prec':4s} {'params':>11s} {'GFLOP/step':>10s} {'s/step':>7s} {'samples/s':>9s} "
          f"{'vs simple':>9s} {'GEMM share':>10s} {'1 epoch':>8s} {'500 ep':>7s} {'1 epoch idle (est.)':>19s}")
    for r in results:
        epoch_s = CHARADES_TRAIN_QUERIES / r["samples_per_s"]
        share = r["step_gflop"] / r["step_s"] / gemm
        idle = epoch_s * gemm / IDLE_GEMM_GFLOPS
        print(f"{r['preset']:16s} {'bf16' if r['bf16'] else 'fp32':4s} {r['params']:11,d} {r['step_gflop']:10.0f} "
              f"{r['step_s']:7.2f} {r['samples_per_s']:9.1f} {r['samples_per_s'] / base:8.2f}x {share:10.2f} "
              f"{epoch_s / 60:7.1f}m {epoch_s * RECIPE_EPOCHS / 3600:6.1f}h {idle / 60:18.1f}m")
    print(f"1 epoch = {CHARADES_TRAIN_QUERIES:,} Charades-STA training queries (without the per-epoch validation)")
    print(f"training FLOPs of one epoch: {results[0]['step_gflop'] / args.batch * CHARADES_TRAIN_QUERIES / 1e3:.1f} TFLOP "
          f"(simple), {results[1]['step_gflop'] / args.batch * CHARADES_TRAIN_QUERIES / 1e3:.1f} TFLOP (full)")

if __name__ == "__main__":
    main()
