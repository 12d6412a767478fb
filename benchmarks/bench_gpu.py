"""One prepared CUDA check of the video side: I3D fidelity and throughput per precision.

Runs the real Kinetics-400 I3D on CUDA in fp32 (TF32 off), bf16 and fp16 autocast, on the same
seeded clips of smooth moving patterns, and prints clips/s and the cosine similarity of each fast
path's pooled features to fp32, plus the agreement of CUDA fp32 with CPU fp32 on a few clips.
Usage: python benchmarks/bench_gpu.py --weights PATH.safetensors [--clips 64] [--size 224]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cmagrounding.video.config import VideoConfig
from cmagrounding.video.encoder import VideoEncoder


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", required=True, help="converted I3D safetensors (any float dtype)")
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}; {args.clips} clips of 16x{args.size}x{args.size}")
    clips = moving_pattern_clips(args.clips, 16, args.size)
    feats, speed = {}, {}
    for precision in ("fp32", "bf16", "fp16"):
        enc = VideoEncoder(VideoConfig(precision=precision, weights=None), device=dev, weights_path=args.weights)
        enc.encode_clips(clips[: args.batch])  # warm-up (cuDNN autotuning)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        out = np.concatenate([enc.encode_clips(clips[i : i + args.batch]) for i in range(0, args.clips, args.batch)])
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        speed[precision] = args.clips / (time.perf_counter() - t)
        feats[precision] = out
    print(f"{'precision':10s} {'clips/s':>9s} {'vs fp32':>8s} {'cos min':>9s} {'cos mean':>9s}")
    for p in feats:
        c = cosine(feats[p], feats["fp32"])
        print(f"{p:10s} {speed[p]:9.1f} {speed[p] / speed['fp32']:7.2f}x {c.min():9.6f} {c.mean():9.6f}")
    if dev.type == "cuda":
        cpu = VideoEncoder(VideoConfig(precision="fp32", weights=None), device="cpu", weights_path=args.weights)
        ref = cpu.encode_clips(clips[:4])
        diff = np.abs(ref - feats["fp32"][:4]).max()
        print(f"CUDA fp32 vs CPU fp32 on 4 clips: max |diff| {diff:.2e}, cos min {cosine(ref, feats['fp32'][:4]).min():.7f}")


if __name__ == "__main__":
    main()
