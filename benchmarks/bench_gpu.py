"""One prepared CUDA check (issue 24 item 4): I3D per precision against the card's own product rate,
and one Charades-STA-sized training epoch of ``charades-simple``.

Prints, all from one run on one card:
- the card and the dense matrix-product rate per precision (n = 8192, best of 5; TF32 off in fp32):
  the reference every I3D ratio is taken against is the **bf16** product rate;
- I3D (Kinetics-400 weights when ``--weights`` is given, else random: speed only) in fp32 (TF32
  off), bf16 and fp16 autocast, channels_last_3d, cuDNN autotuning on: clips/s of the network on
  clips already on the card, clips/s of ``encode_clips`` (uint8 from the host included), GFLOP/s
  (55.58 GFLOP per 16 x 224 x 224 clip, torch's FLOP counter), the ratio to the bf16 product rate
  and each precision's cosine to fp32; and CUDA fp32 against CPU fp32 on a few clips;
- one training epoch of ``charades-simple`` through the real ``Trainer`` (12,408 queries, N = 128,
  1024-d random features of 60-190 clips, batch 100, bf16 autocast as the trainer does on CUDA):
  its seconds (the goal is under 5 s) and queries/s.

    python benchmarks/bench_gpu.py [--weights PATH.safetensors] [--clips 256] [--batch 32]
    python benchmarks/bench_gpu.py --device cpu --clips 4 --batch 2 --size 112 --epoch-queries 200   # dry run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cmagrounding.video.config import VideoConfig
from cmagrounding.video.encoder import VideoEncoder

sys.path.insert(0, str(Path(__file__).resolve().parent))
CHARADES_TRAIN_QUERIES = 12_408


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn, dev: torch.device, reps: int) -> float:
    """Best seconds of ``reps`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(reps):
        sync(dev)
        t = time.perf_counter()
        fn()
        sync(dev)
        best = min(best, time.perf_counter() - t)
    return best


def product_rates(dev: torch.device, n: int) -> dict[str, float]:
    """GFLOP/s of an n^3 matrix product per precision on ``dev``."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
        out[name] = 2.0 * n**3 / timed(lambda: a @ b, dev, 5) / 1e9
    return out


def moving_pattern_clips(n: int, t: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 clips (n, t, size, size, 3): drifting sinusoid gratings and a moving blob, seeded."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, t, size, size, 3), dtype=np.uint8)
    for i in range(n):
        fx, fy, v = rng.uniform(2, 8), rng.uniform(2, 8), rng.uniform(-0.05, 0.05, 2)
        colour = rng.uniform(0.2, 1.0, 3)
        for j in range(t):
            g = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * xx + fy * yy + j * 0.1))
            cx, cy = 0.5 + v[0] * j, 0.5 + v[1] * j
            blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)
            img = np.clip(g[..., None] * colour * 0.7 + blob[..., None] * 0.3, 0, 1)
            out[i, j] = (img * 255).astype(np.uint8)
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def i3d(args, dev: torch.device, bf16_rate: float) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    clips = moving_pattern_clips(args.clips, 16, args.size)
    feats, rows = {}, []
    flops_clip = None
    for precision in ("fp32", "bf16", "fp16"):
        enc = VideoEncoder(VideoConfig(precision=precision, weights=None), device=dev, weights_path=args.weights)
        if flops_clip is None:
            with FlopCounterMode(display=False) as counter, torch.inference_mode():
                enc.model.features(enc.preprocess(clips[:1]))
            flops_clip = counter.get_total_flops()
        x = enc.preprocess(clips[: args.batch])  # on the card, channels_last_3d
        with torch.inference_mode():
            net_s = timed(lambda: enc.runner.features(x), dev, 3)
        enc.encode_clips(clips[: args.batch])  # warm-up (cuDNN autotuning of any last batch size)
        sync(dev)
        t = time.perf_counter()
        out = np.concatenate([enc.encode_clips(clips[i : i + args.batch]) for i in range(0, args.clips, args.batch)])
        sync(dev)
        rows.append((precision, args.batch / net_s, args.clips / (time.perf_counter() - t)))
        feats[precision] = out
    print(f"\nI3D, {args.clips} clips of 16 x {args.size} x {args.size}, batch {args.batch}, "
          f"{flops_clip / 1e9:.2f} GFLOP per clip; ratio = network GFLOP/s over the bf16 product rate")  # fmt: skip
    print(f"{'precision':10s} {'net clips/s':>12s} {'GFLOP/s':>9s} {'ratio':>6s} {'encode clips/s':>15s} {'cos min':>9s} {'cos mean':>9s}")
    for precision, net, enc_rate in rows:
        c = cosine(feats[precision], feats["fp32"])
        gflops = net * flops_clip / 1e9
        print(f"{precision:10s} {net:12.1f} {gflops:9.0f} {gflops / bf16_rate:6.3f} {enc_rate:15.1f} {c.min():9.6f} {c.mean():9.6f}")
    if dev.type == "cuda":
        cpu = VideoEncoder(VideoConfig(precision="fp32", weights=None), device="cpu", weights_path=args.weights)
        ref = cpu.encode_clips(clips[:4])
        diff = np.abs(ref - feats["fp32"][:4]).max()
        print(f"CUDA fp32 vs CPU fp32 on 4 clips: max |diff| {diff:.2e}, cos min {cosine(ref, feats['fp32'][:4]).min():.7f}")


def training_epoch(args, dev: torch.device) -> None:
    from bench_training import _annotations

    from cmagrounding.model.losses import GroundingLoss
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.model.presets import get_preset
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.dataset import GroundingDataset
    from cmagrounding.training.stores import MemoryStore
    from cmagrounding.training.trainer import Trainer

    rng = np.random.default_rng(0)
    preset = get_preset("charades-simple")
    rows = _annotations(args.epoch_queries, rng)
    tok = WordTokenizer.build([a.query for a in rows], style="lgi")
    cfg = preset.model.replace(vocab_size=tok.vocab_size)
    lengths = rng.integers(60, 190, size=len(rows))
    store = MemoryStore({a.video: rng.normal(size=(int(n), cfg.video_dim)).astype(np.float32) for a, n in zip(rows, lengths)})
    train = GroundingDataset(rows, store, tok, cfg.num_clips, cfg.max_words, train=True)
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=100, device=str(dev), progress=False)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(CMANetwork(cfg), GroundingLoss(preset.loss), train, None, config, out)
        trainer._train_epoch(0)  # warm-up epoch: cuDNN/cuBLAS set-up, allocator
        sync(dev)
        t = time.perf_counter()
        record = trainer._train_epoch(1)
        sync(dev)
        seconds = time.perf_counter() - t
    print(f"\ntraining, charades-simple, one epoch of {len(rows):,} queries (N = {cfg.num_clips}, {cfg.video_dim}-d, batch 100, "
          f"autocast {trainer.amp_dtype if trainer.amp else 'off'}): {seconds:.2f} s, {len(rows) / seconds:.0f} queries/s, "
          f"mean loss {record['total']:.4f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="converted I3D safetensors (else random weights: speed only)")
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--mm", type=int, default=8192, help="matrix-product size n (n^3)")
    ap.add_argument("--epoch-queries", type=int, default=CHARADES_TRAIN_QUERIES)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--part", choices=("all", "i3d", "training"), default="all")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (dry run)"
    print(f"torch {torch.__version__} on {name}")
    rates = product_rates(dev, args.mm)
    print(f"dense product, n = {args.mm}: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    if args.part in ("all", "i3d"):
        i3d(args, dev, rates["bf16"])
    if args.part in ("all", "training"):
        training_epoch(args, dev)


if __name__ == "__main__":
    main()
