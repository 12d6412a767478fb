"""Latency of ``Grounder.localize`` on a 30-s video, split into decoding, extraction and network.

Generates a video (default 30 s, 640x360, 25 fps, H.264) and builds a Grounder from the paper's
Charades-STA preset (random network weights; the network's cost does not depend on its values)
with the default video settings (I3D Kinetics-400 at 25 fps, 16-frame windows every 8 frames,
224 crop, precision "auto"). Then, all in the same run:

1. decoding alone: the video side's clip stream (decode, resize, crop, assemble clips), no model;
2. one pass of the extractor over those clips, already in memory (the baseline);
3. the whole call ``localize(path, query)`` (= ``encode_video`` then the network): decoding
   overlapped with extraction, then the network;
4. a repeated query on cached features ``localize(features, query)`` (median; goal < 10 ms);

and prints the whole call's cost relative to the extractor pass (goal <= 1.2x).

    python benchmarks/bench_grounder.py [--seconds 30] [--size 640x360] [--precision auto] [--repeats 50]
    python benchmarks/bench_grounder.py --cached-only     # step 4 alone, in seconds
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


def cached_query(grounder, feats, query: str, repeats: int) -> dict[str, float]:
    """Median seconds of ``localize(features, query)`` with torch's default threads and with one
    (on a shared, oversubscribed CPU the default threads can be much slower than one)."""
    out = {}
    default = torch.get_num_threads()
    for threads in sorted({default, 1}, reverse=True):
        torch.set_num_threads(threads)
        try:
            grounder.localize(feats, query)  # warm-up
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                grounder.localize(feats, query)
                times.append(time.perf_counter() - t)
            name = f"{threads} thread{'s' if threads > 1 else ''}"
            out[name] = statistics.median(times)
            batch = []
            for _ in range(max(3, repeats // 10)):
                t = time.perf_counter()
                grounder.localize(feats, [query] * 10)
                batch.append(time.perf_counter() - t)
            out[f"{name}, per query of a batch of 10"] = statistics.median(batch) / 10
        finally:
            torch.set_num_threads(default)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--fps", type=int, default=25, help="frame rate of the generated video")
    ap.add_argument("--precision", default="auto", help="extractor precision: auto, fp32, bf16")
    ap.add_argument("--repeats", type=int, default=50, help="repeats of the cached-features query")
    ap.add_argument("--cached-only", action="store_true",
                    help="only the repeated query, on random features shaped like the video's (no decoding, no I3D)")
    args = ap.parse_args()
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

    if args.cached_only:
        n = int((args.seconds * config.fps - config.clip_len) // config.stride) + 1
        edges = np.arange(n) * config.stride / config.fps
        feats = VideoFeatures(np.random.default_rng(0).normal(size=(n, config.feature_dim)).astype(np.float32),
                              np.stack([edges, edges + config.clip_len / config.fps], 1), args.seconds, config)
        for name, sec in cached_query(grounder, feats, query, args.repeats).items():
            print(f"cached features ({n} rows), {name}: {1000 * sec:.2f} ms (goal < 10 ms per query)")
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
        cached = cached_query(grounder, feats, query, args.repeats)
        net_s = min(v for k, v in cached.items() if "batch" not in k)

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
    print(f"\nrepeated query on cached features: {1000 * net_s:.2f} ms (goal < 10 ms): "
          f"{'met' if net_s < 0.010 else 'NOT met'}")
    print(f"whole call / extractor pass: {whole_s / extract_s:.3f}x (goal <= 1.2x): "
          f"{'met' if whole_s / extract_s <= 1.2 else 'NOT met'}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
