"""Latency of ``Grounder.localize`` on a 30-s video, split into decoding, extraction and network.

Generates a video (default 30 s, 640x360, 25 fps, H.264) and builds a Grounder from the paper's
Charades-STA preset (random network weights; the network's cost does not depend on its values)
with the default video settings (I3D Kinetics-400 at 25 fps, 16-frame windows every 8 frames,
224 crop, precision "auto"). Then, all in the same run:

1. decoding alone: the video side's clip stream (decode, resize, crop, assemble clips), no model;
2. one pass of the extractor over those clips, already in memory (the baseline);
3. the whole call ``localize(path, query)`` (= ``encode_video`` then the network): decoding
   overlapped with extraction, then the network;
4. a repeated query on cached features ``localize(features, query)`` and per query of a batch of
   10, in fp32 and (where the CPU has native bf16) the opt-in bf16 network, at torch's default
   threads and one (medians; goals <= 3 ms at batch 1, <= 1 ms per query in a batch of 10), next
   to the arithmetic floor: the query's FLOPs (counted) at the same run's matrix-product rates;

and prints the whole call's cost relative to the extractor pass (goal <= 1.2x).

    python benchmarks/bench_grounder.py [--seconds 30] [--size 640x360] [--precision auto] [--repeats 50]
    python benchmarks/bench_grounder.py --cached-only     # step 4 alone, in seconds (with its floor)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_video(path: Path, seconds: float, fps: int, width: int, height: int) -> None:
    """Moving gradient and a bouncing square: cheap to draw, not trivially compressible."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (xx + 3 * i) % 256
            img[..., 1] = (yy + 2 * i) % 256
            img[..., 2] = (xx + yy + i) % 256
            x = int((width - 60) * (0.5 + 0.5 * np.sin(i / 20)))
            y = int((height - 60) * (0.5 + 0.5 * np.cos(i / 15)))
            img[y : y + 60, x : x + 60] = 255
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def cached_query(grounder, feats, query: str, repeats: int, precisions: list[str]) -> dict[str, float]:
    """Median seconds of ``localize(features, query)`` and per query of ``localize(features, [query] * 10)``
    for each network precision and thread count (torch's default and one: on a shared,
    oversubscribed CPU the default threads can be slower). Rounds interleave the settings, so a
    change of load on the machine hits each alike."""
    default = torch.get_num_threads()
    settings = [(p, t) for p in precisions for t in sorted({default, 1}, reverse=True)]
    single: dict = {s: [] for s in settings}
    batch: dict = {s: [] for s in settings}
    rounds = max(3, repeats // 10)
    try:
        for r in range(rounds + 1):  # round 0 warms up (bf16 copy, cached V_in, oneDNN primitives)
            for precision, threads in settings:
                grounder.network_precision = precision
                torch.set_num_threads(threads)
                for _ in range(max(1, repeats // rounds)):
                    t = time.perf_counter()
                    grounder.localize(feats, query)
                    if r:
                        single[precision, threads].append(time.perf_counter() - t)
                t = time.perf_counter()
                grounder.localize(feats, [query] * 10)
                if r:
                    batch[precision, threads].append((time.perf_counter() - t) / 10)
    finally:
        torch.set_num_threads(default)
        grounder.network_precision = "fp32"
    out = {}
    for precision, threads in settings:
        name = f"{precision}, {threads} thread{'s' if threads > 1 else ''}"
        out[name] = statistics.median(single[precision, threads])
        out[f"{name}, per query of a batch of 10"] = statistics.median(batch[precision, threads])
    return out


def matmul_rate(dtype: torch.dtype, m: int, k: int, n: int, repeats: int = 5) -> float:
    """Best GFLOP/s of an (m, k) x (k, n) product at the current thread count (torch.mm: MKL in
    fp32, oneDNN in bf16; best of ``repeats`` timings of enough calls to last ~50 ms)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    calls = max(1, int(2e9 / (2 * m * k * n)))  # ~2 GFLOP per timing
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - t) / calls)
    return 2 * m * k * n / best / 1e9


def whole_clips(grounder, feats) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips (1, n, D), mask (1, n)): the one window a whole video is (``windows.whole_video_window``)."""
    from cmagrounding.windows import whole_video_window

    index, _ = whole_video_window(len(feats.features), grounder.num_clips, float(feats.duration))
    clips = torch.from_numpy(np.asarray(feats.features, dtype=np.float32)[index])
    return clips, torch.ones(clips.shape[:2], dtype=torch.bool)


def query_flops(grounder, feats, query: str) -> tuple[float, float]:
    """(FLOPs of one query's network pass, FLOPs of its video embedding V_in alone), counted by
    torch's FlopCounterMode (matrix products and attention; element-wise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    clips, mask = whole_clips(grounder, feats)
    ids, wmask = grounder.tokenizer.pad([grounder._prepare([query])[0].ids])
    net = grounder.network
    with torch.inference_mode():
        with FlopCounterMode(display=False) as whole:
            net(clips, mask, ids, wmask)
        with FlopCounterMode(display=False) as embed:
            net.video_position(net.video_proj(clips))  # Eq. 2 (= net.embed_video)
    return float(whole.get_total_flops()), float(embed.get_total_flops())


def print_floor(grounder, feats, query: str, cached: dict[str, float], precisions: list[str]) -> None:
    """The arithmetic floor: FLOPs per query at this run's matrix-product rates, next to the figures."""
    flops, embed_flops = query_flops(grounder, feats, query)
    n, hidden = whole_clips(grounder, feats)[0].shape[1], grounder.network.config.hidden
    default = torch.get_num_threads()
    print(f"\narithmetic per query: {flops / 1e9:.3f} GFLOP (video embedding V_in {embed_flops / 1e9:.3f} of it, "
          f"kept per video, so a repeated query costs the rest); the floor is that at the same run's matrix-product rate:")
    print(f"{'setting':52s} {'measured':>9s} {'peak GF/s':>10s} {'floor':>8s} {'shape GF/s':>11s} {'floor':>8s} {'x floor':>8s}")
    for precision in precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        for threads in sorted({default, 1}, reverse=True):
            torch.set_num_threads(threads)
            try:
                peak = matmul_rate(dtype, 2048, 2048, 2048)
                shaped = matmul_rate(dtype, n, hidden, hidden)  # the attention blocks' projections
            finally:
                torch.set_num_threads(default)
            name = f"{precision}, {threads} thread{'s' if threads > 1 else ''}"
            # a repeated query on the same features finds V_in kept: its work is the rest
            for label, per_query in ((name, flops - embed_flops), (f"{name}, per query of a batch of 10", flops - embed_flops)):
                sec = cached.get(label)
                if sec is None:
                    continue
                floor_peak, floor_shape = per_query / peak / 1e9, per_query / shaped / 1e9
                print(f"{label:52s} {1000 * sec:7.2f}ms {peak:10.0f} {1000 * floor_peak:6.2f}ms {shaped:11.0f} "
                      f"{1000 * floor_shape:6.2f}ms {sec / floor_shape:8.2f}")
    print("(peak: a 2048^3 product; shape: an (n, D) x (D, D) product, the size of most of the network's; "
          "x floor: measured / the shape floor)")
    # a batch-1 query also reads every weight once: a memory floor where the weights do not stay in cache
    src = torch.empty(64 * 2**20, dtype=torch.float32).fill_(1.0)  # 256 MiB, far above any cache
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = min(_timed(lambda: dst.copy_(src)) for _ in range(5))
    bandwidth = 2 * src.numel() * 4 / best / 1e9  # read + write
    params = sum(p.numel() for n_, p in grounder.network.named_parameters() if "embedding" not in n_)
    for precision in precisions:
        size = params * (4 if precision == "fp32" else 2)
        print(f"memory floor, {precision}: {size / 1e6:.1f} MB of weights read per call at the same run's "
              f"{bandwidth:.1f} GB/s copy bandwidth ({torch.get_num_threads()} threads) = {1000 * size / bandwidth / 1e9:.2f} ms")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def precision_agreement(build: Path) -> None:
    """bf16 against fp32 answers of the demo model on a demo build's validation features and queries
    (a ``tools/demo/build.py`` work folder: ``data/val.jsonl``, ``features/<video>.npy``)."""
    import json
    import logging

    from cmagrounding import Grounder
    from cmagrounding.demo import DEMO_MODEL_DIR
    from cmagrounding.video.features import VideoFeatures

    logging.getLogger("cmagrounding").setLevel(logging.ERROR)  # the demo model's warning
    g = Grounder.from_pretrained(DEMO_MODEL_DIR, device="cpu", load_extractor=False)
    c = g.video_config
    rows = [json.loads(line) for line in (build / "data" / "val.jsonl").read_text().splitlines() if line.strip()]
    by_video: dict[str, list[dict]] = {}
    for r in rows:
        by_video.setdefault(r["video"], []).append(r)
    diffs, unit, hits = [], [], {"fp32": 0, "bf16": 0}
    for video, items in by_video.items():
        f = np.load(build / "features" / f"{video}.npy")
        starts = np.arange(len(f)) * c.stride / c.fps
        feats = VideoFeatures(f, np.stack([starts, starts + c.clip_len / c.fps], 1), items[0]["duration"], c)
        answers = {}
        for precision in ("fp32", "bf16"):
            g.network_precision = precision
            answers[precision] = g.localize(feats, [r["query"] for r in items])
        for r, a, b in zip(items, answers["fp32"], answers["bf16"]):
            diffs.append(max(abs(a.start - b.start), abs(a.end - b.end)))
            unit.append(max(abs(a.span[0] - b.span[0]), abs(a.span[1] - b.span[1])))
            for name, m in (("fp32", a), ("bf16", b)):
                inter = max(0.0, min(m.end, r["end"]) - max(m.start, r["start"]))
                union = max(m.end, r["end"]) - min(m.start, r["start"])
                hits[name] += inter / union >= 0.5
    g.network_precision = "fp32"
    d, u = np.array(diffs), np.array(unit)
    print(f"demo model, {len(d)} validation queries on {len(by_video)} videos: bf16 vs fp32 answer ends differ by "
          f"median {np.median(d):.4f} s, 95th percentile {np.percentile(d, 95):.4f} s, max {d.max():.4f} s "
          f"(normalized span: median {np.median(u):.5f}, max {u.max():.5f}); "
          f"R1@0.5 fp32 {100 * hits['fp32'] / len(d):.2f}, bf16 {100 * hits['bf16'] / len(d):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25, help="frame rate of the generated video")
    ap.add_argument("--precision", default="auto", help="extractor precision: auto, fp32, bf16")
    ap.add_argument("--repeats", type=int, default=50, help="repeats of the cached-features query")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the repeated query, on random features shaped like the video's (no decoding, no I3D)")
    ap.add_argument("--agreement", type=Path, metavar="DEMO_BUILD",
                    help="only compare bf16 with fp32 answers of the demo model on a demo build's validation set")
    args = ap.parse_args()
    if args.agreement is not None:
        precision_agreement(args.agreement)
        return
    width, height = (int(v) for v in args.size.split("x"))

    from cmagrounding import Grounder
    from cmagrounding.model import CMANetwork, get_preset
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.decode import probe
    from cmagrounding.video.encoder import iter_clips
    from cmagrounding.video.features import VideoFeatures

    torch.manual_seed(0)
    tok = WordTokenizer.build(["person opens the door", "person sits on a chair", "a person eats leftovers"])
    net = CMANetwork(get_preset("charades-simple").model.replace(vocab_size=tok.vocab_size))
    config = VideoConfig(precision=args.precision)
    grounder = Grounder(net, tok, config, device="cpu")
    query = "person opens the door"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (other work on the machine slows every figure alike)")
    print(f"network: charades-simple preset, {sum(p.numel() for p in net.parameters()):,} parameters, N = {grounder.num_clips}")

    from cmagrounding.video.precision import cpu_has_fast_bf16

    precisions = ["fp32"] + (["bf16"] if cpu_has_fast_bf16() and hasattr(grounder, "network_precision") else [])
    print(f"network precisions measured: {', '.join(precisions)} (bf16 only where the CPU has native bf16)")
    if args.cached_only:
        n = int((args.seconds * config.fps - config.clip_len) // config.stride) + 1
        edges = np.arange(n) * config.stride / config.fps
        feats = VideoFeatures(np.random.default_rng(0).normal(size=(n, config.feature_dim)).astype(np.float32),
                              np.stack([edges, edges + config.clip_len / config.fps], 1), args.seconds, config)
        cached = cached_query(grounder, feats, query, args.repeats, precisions)
        for name, sec in cached.items():
            goal = 1.0 if "batch" in name else 3.0
            print(f"cached features ({n} rows), {name}: {1000 * sec:.2f} ms (goal <= {goal:g} ms per query)")
        print_floor(grounder, feats, query, cached, precisions)
        return

    t = time.perf_counter()
    encoder = grounder.video_encoder
    print(f"extractor {encoder!r} built in {time.perf_counter() - t:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "bench.mp4"
        make_video(video, args.seconds, args.fps, width, height)
        info = probe(video)
        print(f"video: {info.duration:.2f} s, {info.width}x{info.height}, {info.fps:g} fps, {info.num_frames} frames")

        # 1. decoding alone (the clips a localize call would feed the extractor)
        t = time.perf_counter()
        clips = [c.frames for c in iter_clips(encoder.config, video, info)]
        decode_s = time.perf_counter() - t
        frames = len(clips) * encoder.config.clip_len

        # 2. one extractor pass over the same clips, in memory, batched as encode() batches them
        bs = encoder.config.batch_size
        encoder.encode_clips(np.stack(clips[:bs]))  # warm-up (oneDNN primitive creation)
        t = time.perf_counter()
        for i in range(0, len(clips), bs):
            encoder.encode_clips(np.stack(clips[i : i + bs]))
        extract_s = time.perf_counter() - t
        del clips

        # 3. the whole call from the file: localize(path, q) is exactly encode_video(path) followed
        #    by localize(features, q); written out to keep the features for step 4 (one pass less)
        t = time.perf_counter()
        feats = grounder.encode_video(video)
        moment = grounder.localize(feats, query)
        whole_s = time.perf_counter() - t

        # 4. repeated query on cached features
        cached = cached_query(grounder, feats, query, args.repeats, precisions)
        net_s = min(v for k, v in cached.items() if "batch" not in k and k.startswith("fp32"))

    print(f"\n{len(feats.features)} clips of {encoder.config.clip_len} frames ({frames} frames through I3D), "
          f"N = {grounder.num_clips}; answer {moment.start:.2f}-{moment.end:.2f} s")
    print(f"{'part (medians)':66s} {'seconds':>9s} {'x extractor':>12s}")
    rows = [
        ("decoding alone (decode, resize, crop, clips)", decode_s),
        ("extractor pass over the clips in memory (baseline)", extract_s),
        *[(f"network on cached features: {k}", v) for k, v in cached.items()],
        ("whole call localize(path, query)", whole_s),
        ("  decoding + extraction + network if run serially", decode_s + extract_s + net_s),
    ]
    for name, sec in rows:
        print(f"{name:66s} {sec:9.4f} {sec / extract_s:12.4f}")
    print_floor(grounder, feats, query, cached, precisions)
    print(f"\nrepeated query on cached features, fp32: {1000 * net_s:.2f} ms (goal <= 3 ms): "
          f"{'met' if net_s <= 0.003 else 'NOT met'}")
    print(f"whole call / extractor pass: {whole_s / extract_s:.3f}x (goal <= 1.2x): "
          f"{'met' if whole_s / extract_s <= 1.2 else 'NOT met'}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
