"""Make the demo model through the library's one training path: generate, extract, train, save.

One command from the repository root (docs/demo.md)::

    python -m tools.demo.build --work /tmp/demo-build --out cmagrounding/demo/model

Stages, each resumable (rerun the command after an interruption and finished work is kept):

1. ``generate``: render the training and validation videos (seeds :data:`TRAIN_SEED`,
   :data:`VAL_SEED`) and, with ``--num-long N``, N longer videos (``--long-duration`` s, seed
   :data:`LONG_SEED`) into ``WORK/generated/<split>/``; link them into one folder
   ``WORK/videos/`` (ids ``tr00000``, ``va00000``, ``lo00000``) and write a user's own-data folder
   ``WORK/data/``: ``train.jsonl`` (the training and the long videos), ``val.jsonl`` (also
   ``test.jsonl``) and ``absent.jsonl``, ``absent_ratio`` sentences per event of each long video
   that are in no part of it (:mod:`tools.demo.absent`).
2. ``extract``: ``cmagrounding extract-features WORK/videos -o WORK/features`` with
   :func:`~tools.demo.settings.video_config`'s settings (``--workers`` shards).
3. ``train``: ``cmagrounding train --recipe demo --annotations WORK/data --features WORK/features
   --absent WORK/data/absent.jsonl --output WORK/run``: the network, the standardization (folded),
   the confidence head with its windows and the window settings, all from the recipe.
4. ``save``: the run's model with the demo card (:data:`cmagrounding.demo.DEMO_CARD`) and notes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from cmagrounding._io import write_json_atomic, write_text_atomic
from cmagrounding.errors import ConfigError
from tools.demo.settings import (  # noqa: F401  (re-exported: the build's settings)
    BENCH_SEED, CARD_NOTES, LONG_SEED, TRAIN_SEED, VAL_SEED, BuildConfig, default_build_config, video_config,
)

_logger = logging.getLogger("tools.demo.build")

PREFIX = {"train": "tr", "val": "va"}  # the long split's: "lo"


def _cli(*argv: str) -> None:
    """``cmagrounding ARGV`` in a child process, as a user types it."""
    done = subprocess.run([sys.executable, "-m", "cmagrounding", *argv])
    if done.returncode:
        raise SystemExit(f"cmagrounding {' '.join(argv)}: exit status {done.returncode}")


def stage_generate(build: BuildConfig, work: Path) -> dict[str, int]:
    """Videos, the own-data folder and the absent sentences; returns the count of rows per file."""
    from cmagrounding.demo.generator import generate_dataset, load_annotations
    from cmagrounding.demo.runner import config_for_duration
    from tools.demo.absent import absent_sentences

    cfg = build.generator_config()
    splits = [("train", build.train_seed, build.num_train, cfg, "tr"), ("val", build.val_seed, build.num_val, cfg, "va")]
    if build.num_long > 0:
        splits.append((build.long_name, build.long_seed, build.num_long,
                       config_for_duration(cfg, build.long_duration), "lo"))
    (work / "videos").mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {"train": [], "val": [], "absent": []}
    for split, seed, count, split_cfg, prefix in splits:
        t0 = time.perf_counter()
        folder = work / "generated" / split
        generate_dataset(folder, count, seed=seed, config=split_cfg)
        _, scenes, videos = load_annotations(folder / "annotations.json")
        for scene, path in zip(scenes, videos):
            name = f"{prefix}{scene.index:05d}"
            link = work / "videos" / f"{name}.mp4"
            if not link.exists():
                os.link(path, link)
            events = [{"video": name, "duration": scene.duration, "query": e.sentence, "start": e.start, "end": e.end}
                      for e in scene.events]
            rows["val" if split == "val" else "train"] += events
            if prefix == "lo" and build.absent_ratio > 0:  # "not in this video", as bench_windows asks it
                rng = np.random.default_rng([seed, 17, scene.index])
                count_absent = int(round(build.absent_ratio * len(scene.events)))
                rows["absent"] += [{"video": name, "query": q}
                                   for q in absent_sentences(scene, split_cfg.colours, rng, count_absent)]
        _logger.info("generate %s: %d videos in %.0f s", split, count, time.perf_counter() - t0)
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, key in (("train", "train"), ("val", "val"), ("test", "val"), ("absent", "absent")):
        write_text_atomic(data / f"{name}.jsonl", "".join(json.dumps(r) + "\n" for r in rows[key]))
    return {k: len(v) for k, v in rows.items()}


def stage_extract(build: BuildConfig, work: Path) -> None:
    vcfg = video_config(build)
    flags = ["--fps", str(vcfg.fps), "--clip-len", str(vcfg.clip_len), "--stride", str(vcfg.stride),
             "--resize", str(vcfg.resize), "--crop", str(vcfg.crop), "--precision", vcfg.precision,
             "--batch-size", str(vcfg.batch_size), "--device", build.device, "--no-progress"]
    procs = [subprocess.Popen([sys.executable, "-m", "cmagrounding", "extract-features", str(work / "videos"),
                               "-o", str(work / "features"), *flags, "--rank", str(r), "--world-size", str(build.workers)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"}) for r in range(build.workers)]
    if any(p.wait() for p in procs):
        raise SystemExit("extract-features failed (see above)")
    if build.workers > 1:  # the shards wrote their index entries one after another: one more pass joins them
        _cli("extract-features", str(work / "videos"), "-o", str(work / "features"), *flags)


def stage_train(build: BuildConfig, work: Path, epochs: int | None, threads: int | None) -> Path:
    run = work / "run"
    absent = work / "data" / "absent.jsonl"
    args = ["train", "--recipe", "demo", "--annotations", str(work / "data"), "--features", str(work / "features"),
            "--output", str(run), "--device", build.device, "--no-progress"]
    if absent.is_file() and absent.stat().st_size:
        args += ["--absent", str(absent)]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if (run / "checkpoints" / "latest").exists():
        args.append("--resume")
    _cli(*args)
    return run / "model"


def stage_save(build: BuildConfig, work: Path, model: Path, out: Path) -> Path:
    """The trained folder again, with the demo card, the build settings and the run's notes."""
    from cmagrounding.demo import DEMO_CARD
    from cmagrounding.grounder import Grounder

    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    grounder = Grounder.from_pretrained(model, device="cpu")
    # the build's settings beside the run's recipe (no key in common): cmagrounding.demo.runner
    # reads "generator" to make videos like the training ones
    recipe = {**config.get("recipe", {}), **build.to_dict(), "command": "python -m tools.demo.build --work WORK --out OUT"}
    notes = CARD_NOTES + "\n" + config.get("card", {}).get("notes", "")
    return grounder.save_pretrained(out, metrics=config.get("metrics"), recipe=recipe, card=DEMO_CARD, card_notes=notes)


# command-line options that set the BuildConfig field of the same name
_FIELD_OPTIONS = ("num_train", "num_val", "num_long", "long_duration", "long_name", "long_seed", "workers", "device",
                  "absent_ratio")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.demo.build", description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="working folder for videos, features and the run")
    p.add_argument("--out", required=True, help="pretrained folder to write")
    p.add_argument("--stages", default="generate,extract,train,save", help="comma-separated subset")
    p.add_argument("--num-train", type=int, default=None, help="training videos (default 1,500)")
    p.add_argument("--num-val", type=int, default=None, help="validation videos (default 100)")
    p.add_argument("--num-long", type=int, default=None, help="longer training videos (default 0)")
    p.add_argument("--long-duration", type=float, default=None, help="their seconds, about (default 180)")
    p.add_argument("--long-name", default=None, help="their split's name in WORK/generated (default 'long')")
    p.add_argument("--long-seed", type=int, default=None, help=f"their generator seed (default {LONG_SEED})")
    p.add_argument("--absent-ratio", type=float, default=None,
                   help="absent sentences per event of each long video (default 2; tools.demo.absent)")
    p.add_argument("--epochs", type=int, default=None, help="default: the demo recipe's")
    p.add_argument("--threads", type=int, default=None, help="torch threads of the training")
    p.add_argument("--workers", type=int, default=None, help="extraction processes")
    p.add_argument("--device", default=None, help="cpu (default) or cuda: where extraction and training run")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=JSON",
                   help="override a generator or video setting, e.g. --set video.resize=112")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build = default_build_config()
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if section not in ("generator", "video") or not name:
            p.error(f"--set {item!r}: expected generator.KEY=VALUE or video.KEY=VALUE (the network's settings "
                    "are the demo recipe's: cmagrounding train --recipe demo --set model.KEY=VALUE)")
        getattr(build, section)[name] = json.loads(value)
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
    if "generate" in stages:
        _logger.info("generate: %s", stage_generate(build, work))
    if "extract" in stages:
        stage_extract(build, work)
    model = work / "run" / "model"
    if "train" in stages:
        model = stage_train(build, work, args.epochs, args.threads)
    if "save" in stages:
        _logger.info("saved %s", stage_save(build, work, model, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
