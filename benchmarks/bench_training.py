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
~270 GFLOP/s fp32 (measured on an idle machine of this kind); the last column rescales the epoch time to that, as an estimate.

It also measures where the samples come from (``--part stores``): reads of one video's features
from a folder of one ``.npy`` file per video, from the packed store built from that folder
(``cmagrounding pack-features``: one memory-mapped file + index) and from an HDF5 file of the same
features, in the same run, on the same random sequence of videos; per read and through the
``GroundingDataset`` (sampling to N = 128); warm (files in the page cache) and, where the OS
allows it, cold (each file dropped from the page cache with ``posix_fadvise(DONTNEED)`` first).

    python benchmarks/bench_training.py [--steps 2] [--threads 2] [--bf16] [--part all|steps|stores]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cmagrounding.model.losses import GroundingLoss
from cmagrounding.model.network import CMANetwork
from cmagrounding.model.presets import get_preset
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.training.annotations import Annotation, load_annotations
from cmagrounding.training.dataset import GroundingDataset, collate
from cmagrounding.training.packed import PackedStore
from cmagrounding.training.packing import pack_features
from cmagrounding.training.stores import HDF5Store, MemoryStore, NpyFolderStore

CHARADES_TRAIN_QUERIES = 12_408
RECIPE_EPOCHS = 500  # fallback (LGI), the charades recipes' default


def _annotations(count: int, rng: np.random.Generator) -> list[Annotation]:
    shared = Path(os.environ.get("CMAGROUNDING_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if (shared / "charades_sta").is_dir():
        rows = list(load_annotations("charades-sta", shared / "charades_sta", "train"))[:count]
        return [Annotation(f"v{i}", a.duration, a.query, a.start, a.end) for i, a in enumerate(rows)]
    words = "person opens the door then sits on a chair holding cup".split()
    return [Annotation(f"v{i}", 30.0, " ".join(rng.choice(words, size=7)), 5.0, 13.0) for i in range(count)]


IDLE_GEMM_GFLOPS = 270.0  # measured earlier: fp32 GEMM on this 2-core machine when idle


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


def cpu_label() -> str:
    """The CPU model and the flags that matter here, from /proc/cpuinfo (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "unknown CPU")
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []))
    shown = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f in flags]
    return f"{model} ({', '.join(shown) or 'no AVX2'}), {os.cpu_count()} logical cores"


def _drop_from_page_cache(paths: list[Path]) -> bool:
    """Ask the OS to forget the cached pages of ``paths``; False where it cannot be asked."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def _read_rate(open_store, sequence: list[str], files: list[Path], cold: bool, dataset: Any = None) -> float:
    """Reads (or dataset items) per second over ``sequence``; the store is opened after the cache
    drop, so a mapping starts cold too."""
    if cold and not _drop_from_page_cache(files):
        return float("nan")
    store = open_store()
    if dataset is not None:
        ds = dataset(store)
        t = time.perf_counter()
        for i in range(len(sequence)):
            ds[i]
        return len(sequence) / (time.perf_counter() - t)
    t = time.perf_counter()
    for v in sequence:
        store.get(v).reshape(-1)[::1024].sum()  # one value per 4 KiB page: a mapped store must bring every byte in
    return len(sequence) / (time.perf_counter() - t)


def measure_stores(num_videos: int, reads: int, dim: int = 1024, seed: int = 0) -> None:
    """Samples/s of store reads: a folder of .npy files vs the packed store vs HDF5, same run."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as tmp:
        root = Path(tmp)
        folder = root / "npy"
        folder.mkdir()
        feats = {f"v{i:05d}": rng.normal(size=(int(rng.integers(60, 190)), dim)).astype(np.float32)
                 for i in range(num_videos)}
        for k, v in feats.items():
            np.save(folder / f"{k}.npy", v)
        t = time.perf_counter()
        packed = pack_features(folder, root / "packed")
        pack_s = time.perf_counter() - t
        stores: dict[str, tuple[Any, list[Path]]] = {
            "folder of .npy (one file per video)": (lambda: NpyFolderStore(folder), sorted(folder.glob("*.npy"))),
            "packed (one memory-mapped file)": (lambda: PackedStore(root / "packed"), [packed.data_path]),
        }
        try:
            import h5py

            with h5py.File(root / "feats.h5", "w") as f:
                for k, v in feats.items():
                    f.create_dataset(k, data=v)
            stores["HDF5 (one file, h5py)"] = (lambda: HDF5Store(root / "feats.h5"), [root / "feats.h5"])
        except ImportError:
            print("h5py not installed: no HDF5 row")
        sequence = [str(v) for v in rng.choice(sorted(feats), size=reads)]
        rows = [Annotation(v, float(len(feats[v])), "person opens the door", 1.0, 5.0) for v in sequence]
        tok = WordTokenizer.build([rows[0].query], style="lgi")

        def dataset(store: Any) -> GroundingDataset:
            return GroundingDataset(rows, store, tok, num_clips=128, max_words=20, train=True)

        mb = sum(v.nbytes for v in feats.values()) / 2**20
        print(f"\nfeature stores: {num_videos} videos of 60-190 x {dim} float32 ({mb:.0f} MiB), {reads} reads of "
              f"random videos, the same sequence for every store; packing took {pack_s:.1f} s")
        results = {}
        for name, (open_store, files) in stores.items():
            _read_rate(open_store, sequence[: min(200, reads)], files, cold=False)  # warm the cache and the code
            results[name] = (
                _read_rate(open_store, sequence, files, cold=False),
                _read_rate(open_store, sequence, files, cold=False, dataset=dataset),
                _read_rate(open_store, sequence[: min(reads, num_videos)], files, cold=True),
            )
        base = results["folder of .npy (one file per video)"]
        print(f"{'store':38s} {'reads/s':>10s} {'vs npy':>7s} {'items/s':>9s} {'vs npy':>7s} {'cold reads/s':>12s} {'vs npy':>7s}")
        for name, (warm, items, cold) in results.items():
            print(f"{name:38s} {warm:10.0f} {warm / base[0]:6.1f}x {items:9.0f} {items / base[1]:6.1f}x "
                  f"{cold:12.0f} {cold / base[2]:6.1f}x")
        print("reads/s: store.get of one video, then one value of every 4 KiB page read (so every byte is in memory; "
              "warm page cache); items/s: GroundingDataset "
              "items (the read + sampling to N = 128 + the query + tensors); cold: reads after every file was dropped "
              "from the page cache (posix_fadvise DONTNEED)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed steps per setting (median reported)")
    ap.add_argument("--batch", type=int, default=100, help="batch size (paper: 100)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast (CPU AMX / AVX512-BF16)")
    ap.add_argument("--part", choices=["all", "steps", "stores"], default="all",
                    help="training steps, feature-store reads, or both (default)")
    ap.add_argument("--store-videos", type=int, default=400, help="videos in the store comparison")
    ap.add_argument("--store-reads", type=int, default=4000, help="reads per store in the store comparison")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, os.cpu_count()={os.cpu_count()}, "
          f"load average {load:.1f}, batch {args.batch}, N = 128, {args.steps} timed steps each (median)")
    print(f"CPU: {cpu_label()}")
    if args.part in ("all", "stores"):
        measure_stores(args.store_videos, args.store_reads)
        if args.part == "stores":
            return
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
