"""What each query-side speed layer buys, each against the plain path in the same run.

On the paper's Charades-STA network (``charades-simple``, random weights) with a 92-clip video (a
30-s video) and one query (``--queries`` asked together), in eval mode without autograd:
- the whole forward with V_in (Eq. 2) given, as the video cache hands it (model/video_cache.py),
  against computing it;
- the bf16 copy of the network (model/reduced_precision.py, opt-in) against fp32.
Median milliseconds over interleaved rounds; ``--clock cpu`` (default) counts this process's CPU
time with one thread, which leaves out the time other processes hold the core on a shared machine.

    python benchmarks/bench_query_layers.py [--words 4] [--repeats 200] [--clock wall]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cmagrounding.model import CMANetwork, get_preset
from cmagrounding.model.reduced_precision import reduced_copy


def compare(pairs: dict[str, callable], repeats: int, now) -> dict[str, float]:
    """Median ms of each function, called in interleaved rounds after one warm-up call each."""
    times: dict[str, list[float]] = {k: [] for k in pairs}
    for fn in pairs.values():
        fn()
    for _ in range(repeats):
        for k, fn in pairs.items():
            t = now()
            fn()
            times[k].append(now() - t)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--words", type=int, default=4)
    ap.add_argument("--clips", type=int, default=92)
    ap.add_argument("--queries", type=int, default=1, help="queries asked together (the batch), each of --words words")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(1)
    now = time.process_time if args.clock == "cpu" else time.perf_counter
    from cmagrounding.video.machine_record import cpu_model

    print(f"machine: {cpu_model()}; torch {torch.__version__}, 1 thread, clock {args.clock}; "
          f"charades-simple, {args.clips} clips, {args.queries} queries of {args.words} words, median of {args.repeats}")  # fmt: skip
    torch.manual_seed(0)
    cfg = get_preset("charades-simple").model
    net = CMANetwork(cfg).eval()
    q = args.queries
    video = torch.randn(1, args.clips, cfg.video_dim).expand(q, -1, -1)  # one video, as the Grounder tiles it
    vmask = torch.ones(q, args.clips, dtype=torch.bool)
    words = torch.randint(4, cfg.vocab_size, (q, args.words))
    wmask = torch.ones(q, args.words, dtype=torch.bool)
    with torch.inference_mode():
        v_in = net.embed_video(video)
        bf16 = reduced_copy(net, torch.bfloat16)
        rows = [
            ("forward, V_in computed vs given", compare({"plain": lambda: net(video, vmask, words, wmask),
                                                         "layer": lambda: net(video, vmask, words, wmask, video_embedding=v_in)},
                                                        args.repeats, now)),
            ("forward, fp32 vs bf16 copy", compare({"plain": lambda: net(video, vmask, words, wmask),
                                                    "layer": lambda: bf16(video.bfloat16(), vmask, words, wmask)},
                                                   max(1, args.repeats // 4), now)),
        ]  # fmt: skip
    print(f"\n{'what':34s} {'plain ms':>9s} {'with layer ms':>14s} {'speed-up':>9s}")
    for name, r in rows:
        print(f"{name:34s} {r['plain']:9.2f} {r['layer']:14.2f} {r['plain'] / r['layer']:8.2f}x")


if __name__ == "__main__":
    main()
