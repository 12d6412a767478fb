"""Accuracy of the shipped demo model on newly generated videos, from the raw video files.

Generates ``--count`` videos (default 200) with a seed never used to train or select the model
(``BENCH_SEED``; training used seed 1, validation seed 2), then for each video: decodes the mp4,
extracts Kinetics-400 I3D features with the model's extraction settings, and localizes every
sentence of the video (``Grounder.encode_video`` + ``Grounder.localize``). Prints R1@{0.1, 0.3,
0.5, 0.7} and mIoU (R1@m counts IoU >= m) beside query-blind baselines measured on the same videos:

* ``mean span``: the mean normalized span of the training annotations, for every query (blind to
  the video and the query);
* ``model, other sentence``: the model's answer to *another* sentence of the same video, scored
  against this sentence's moment (the model without the right query);
* ``true event, query-blind``: one of the video's true event spans picked at random, expected
  value; the ceiling of any method that finds every event perfectly but cannot read.

Goal of the demo model (issue 6): R1@0.5 >= 0.7 and R1@0.7 >= 0.4.

    python benchmarks/bench_demo.py [--count 200] [--work /tmp/bench-demo] [--model PATH]

With ``--work`` the videos and their features stay in that folder, so that a second model with the
same extraction settings is scored without extracting again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tools/ (repository tooling, not installed)

from cmagrounding.demo import DEMO_MODEL_DIR
from cmagrounding.demo.generator import generate_dataset, generate_scene, load_annotations
from cmagrounding.demo.runner import generator_config_of
from tools.demo.settings import BENCH_SEED
from cmagrounding.spans import seconds_to_unit
from cmagrounding.training.metrics import compute_metrics
from cmagrounding.video.features import VideoFeatures

GOALS = {"R1@0.5": 0.7, "R1@0.7": 0.4}


def _row(name: str, m: dict) -> str:
    return f"{name:<28}" + "".join(f"{m[k]:>9.3f}" for k in ("R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seed", type=int, default=BENCH_SEED)
    p.add_argument("--model", default=str(DEMO_MODEL_DIR))
    p.add_argument("--work", default=None, help="folder for the videos (default: a temporary one)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from cmagrounding.grounder import Grounder

    if args.threads:
        torch.set_num_threads(args.threads)
    from cmagrounding._pretrained import read_config  # names resolve as in from_pretrained

    model_cfg = read_config(args.model)
    recipe = model_cfg.get("recipe", {})
    used = {recipe.get("train_seed"), recipe.get("val_seed")}
    if args.seed in used:
        raise SystemExit(f"seed {args.seed} was used to build the model ({sorted(s for s in used if s is not None)})")
    gcfg = generator_config_of(args.model)
    tmp = tempfile.TemporaryDirectory(prefix="bench-demo-") if args.work is None else None
    work = Path(args.work or tmp.name)  # type: ignore[union-attr]

    t0 = time.perf_counter()
    ann = generate_dataset(work, args.count, seed=args.seed, config=gcfg)
    _, scenes, videos = load_annotations(ann)
    render_s = time.perf_counter() - t0

    grounder = Grounder.from_pretrained(args.model, device="cpu")
    pred, gt, dur, other, blind_hits = [], [], [], [], {m: [] for m in (0.1, 0.3, 0.5, 0.7)}
    extract_s = localize_s = 0.0
    # with --work, features are kept there (keyed by the extraction settings) for the next run
    cache = None
    if args.work is not None:
        key = json.dumps(grounder.video_config.compatibility_key(), sort_keys=True)
        cache = work / f"features-{hashlib.sha256(key.encode()).hexdigest()[:10]}"
        cache.mkdir(exist_ok=True)
    cached = 0
    for scene, video in zip(scenes, videos):
        t = time.perf_counter()
        saved = cache / (video.stem + ".safetensors") if cache is not None else None
        if saved is not None and saved.exists():
            feats = VideoFeatures.load(saved)
            cached += 1
        else:
            feats = grounder.encode_video(video)  # from the raw file
            if saved is not None:
                feats.save(saved)
        extract_s += time.perf_counter() - t
        t = time.perf_counter()
        moments = grounder.localize(feats, [e.sentence for e in scene.events])
        localize_s += time.perf_counter() - t
        k = len(scene.events)
        for i, (e, m) in enumerate(zip(scene.events, moments)):
            pred.append((m.start, m.end))
            gt.append((e.start, e.end))
            dur.append(scene.duration)
            o = moments[(i + 1) % k]  # the answer to the next sentence of the same video
            other.append((o.start, o.end))
    pred_a, gt_a, dur_a = np.array(pred), np.array(gt), np.array(dur)
    model = compute_metrics(pred_a, gt_a, dur_a).to_dict()
    other_m = compute_metrics(np.array(other), gt_a, dur_a).to_dict()
    # mean normalized training span (annotations only: no rendering needed)
    train_spans = [
        seconds_to_unit(e.start, e.end, s.duration)  # Eq. 22
        for s in (generate_scene(gcfg, recipe.get("train_seed", 1), i) for i in range(int(recipe.get("num_train", 1000))))
        for e in s.events
    ]
    mean_span = np.mean(train_spans, axis=0)
    prior = compute_metrics(mean_span[None, :] * dur_a[:, None], gt_a, dur_a).to_dict()
    # picking one of the video's true events at random: events are disjoint, so IoU is 1 for the
    # right one and 0 for the others; expected R1 = mean of 1 / (events in the video)
    oracle_r = float(np.mean([1.0 / len(s.events) for s in scenes for _ in s.events]))
    oracle = {"R1@0.1": oracle_r, "R1@0.3": oracle_r, "R1@0.5": oracle_r, "R1@0.7": oracle_r, "mIoU": oracle_r}

    n = len(pred)
    print(f"demo model {args.model}")
    print(f"{args.count} generated videos (seed {args.seed}), {n} sentences; features from the raw mp4 files "
          f"with the model's extraction settings; {model['convention']}")
    print(f"{'':<28}" + "".join(f"{k:>9}" for k in ("R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU")))
    print(_row("model", model))
    print(_row("baseline: mean span", prior))
    print(_row("baseline: other sentence", other_m))
    print(_row("ceiling: true event, blind", oracle))
    for k, goal in GOALS.items():
        verdict = "met" if model[k] >= goal else "NOT met"
        print(f"goal {k} >= {goal}: {model[k]:.3f} ({verdict}); x{model[k] / max(prior[k], 1e-9):.1f} the mean-span "
              f"baseline, x{model[k] / max(other_m[k], 1e-9):.1f} the other-sentence baseline")
    fresh = args.count - cached
    print(f"time: render {render_s:.0f} s, extract {extract_s:.0f} s ({extract_s / max(fresh, 1):.2f} s/video"
          f"{f'; {cached} videos read from the cache in {cache}' if cached else ''}), localize {localize_s:.1f} s")
    def short(m: dict) -> dict:
        return {k: round(v, 4) for k, v in m.items() if k.startswith(("R1@", "mIoU"))}

    print(json.dumps({"model": short(model), "mean_span": short(prior), "other_sentence": short(other_m),
                      "true_event_blind": round(oracle_r, 4), "videos": args.count, "sentences": n, "seed": args.seed}))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
