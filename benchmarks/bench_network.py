"""Parameter counts of the four presets and CPU forward latency of the CMA network.

Prints, for each preset, the parameter count beside LGI's (the paper claims under half), then the
forward latency at N = 128 clips for batch 1 and 100 with L = 10 and 25 words: eager fp32 against
the fast path (inference mode, plus bf16 autocast where the hardware has native bf16: AMX or
AVX512-BF16 on CPU, any recent GPU), as a ratio measured in the same run.
Usage: python benchmarks/bench_network.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cmagrounding.model import PRESETS, CMANetwork, get_preset

LGI_PARAMS = {"charades": 33_818_355, "activitynet": 53_591_583}  # LGI instantiated from its own code and configs


def cpu_has_native_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:  # fp32 means fp32: no TF32 in the baseline
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    bf16 = torch.cuda.is_bf16_supported() if cuda else cpu_has_native_bf16()
    where = torch.cuda.get_device_name(dev) if cuda else f"CPU, threads {torch.get_num_threads()}"
    print(f"torch {torch.__version__}, {where}, native bf16: {bf16}")
    print("\nParameters (trainable excludes frozen GloVe):")
    print(f"{'preset':20s} {'total':>12s} {'trainable':>12s} {'LGI':>12s} {'ratio':>6s}")
    for name in PRESETS:
        net = CMANetwork(get_preset(name).model)
        total = sum(p.numel() for p in net.parameters())
        train = sum(p.numel() for p in net.parameters() if p.requires_grad)
        lgi = LGI_PARAMS[name.split("-")[0]]
        print(f"{name:20s} {total:12,d} {train:12,d} {lgi:12,d} {total / lgi:6.2f}")

    # the recipes that switch one choice the paper does not state (docs/reproduce.md): the
    # parameter claim ("less than half of LGI's") is what argues against the feed-forward
    from cmagrounding.training.recipes import RECIPES

    print(f"\n{'unstated-choice recipe':30s} {'total':>12s} {'vs preset':>10s} {'LGI ratio':>9s}")
    for r in RECIPES.values():
        if "unstated choice" not in r.source:
            continue
        base = get_preset(r.preset).model
        total = sum(p.numel() for p in CMANetwork(base.replace(**r.model)).parameters())
        ref = sum(p.numel() for p in CMANetwork(base).parameters())
        print(f"{r.name:30s} {total:12,d} {total - ref:+10,d} {total / LGI_PARAMS[r.preset.split('-')[0]]:9.2f}")

    repeats = 3 if args.quick else 10
    print(f"\nForward latency, N = 128, median of {repeats} (ms):")
    print(f"{'preset':20s} {'B':>4s} {'L':>3s} {'fp32 eager':>11s} {'fast':>9s} {'speed-up':>9s}")
    for name in ("charades-full", "activitynet-full"):
        cfg = get_preset(name).model
        net = CMANetwork(cfg).eval().to(dev)
        for B in (1, 100):
            for L in (10, 25):
                if L > cfg.max_words:
                    continue
                video = torch.randn(B, 128, cfg.video_dim, device=dev)
                vmask = torch.ones(B, 128, dtype=torch.bool, device=dev)
                words = torch.randint(4, cfg.vocab_size, (B, L), device=dev)
                wmask = torch.ones(B, L, dtype=torch.bool, device=dev)

                def sync():
                    if cuda:
                        torch.cuda.synchronize(dev)

                def eager():
                    with torch.no_grad():
                        net(video, vmask, words, wmask)
                    sync()

                def fast():
                    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                        net(video, vmask, words, wmask)
                    sync()

                r = repeats if cuda else max(2, repeats // (10 if B == 100 else 1))
                t0, t1 = timed(eager, r), timed(fast, r)
                print(f"{name:20s} {B:4d} {L:3d} {t0 * 1e3:11.1f} {t1 * 1e3:9.1f} {t0 / t1:8.2f}x")


if __name__ == "__main__":
    main()
