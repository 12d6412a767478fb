"""Long videos: the demo model's whole-video pass against windowed grounding, top-5, "not in this video".

Generates ``--count`` fresh videos per length (about 20 s, 60 s and 180 s: the demo generator with
durations 0.8-1.2 x the length and as many events per second as the training videos) with a seed
never used to build or select the model (:data:`BENCH_WINDOWS_SEED`; training used 1, validation
2, ``bench_demo.py`` 3, ``cmagrounding demo`` 1,000,000 up). For each video: extract the features
once from the raw mp4 (``Grounder.encode_video``), then localize every sentence of the video

* whole: the network sees the whole video resampled to its N clips (``windowed=False``; the
  paper's way, and the only one before windows);
* default: what ``Grounder.localize`` does by default (windows for videos longer than the
  model's ``windows.when_longer_than``, the whole video otherwise), with ``top_k=5``;

and as many sentences of events that are *not* in the video (half of them about the video's own
shapes), to measure how well ``Moment.score`` (the confidence head) tells them apart: AUROC of the
best moment's score, present vs absent, and the precision / recall of ``min_score`` at detecting
absent sentences. Each length runs in its own process, so that its peak RSS (decoding, features,
extractor, network) is its own.

Prints R1@0.5, R1@0.7, mIoU (IoU = intersection / (max(ends) - min(starts))) for both passes
side by side, R5@0.5 of the default pass, peak RSS per length, the issue's goals, and the time
(wall and CPU seconds of the process, after one untimed warm-up video) three ways:

* a user's job: extraction + ``FIXED_QUERIES`` sentences per video, per video-minute (the figure
  that should not depend on the length: extraction is linear in it, and so is each sentence);
* every sentence of the benchmark: extraction + 2 x (events) sentences per video, per
  video-minute (longer videos have more events, so this one grows with the length);
* the network alone: milliseconds per sentence per video-minute (windowing is linear in length
  when this is flat).

    python benchmarks/bench_windows.py [--count 30] [--lengths 20,60,180] [--work DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tools/ (repository tooling, not installed)

from tools.demo.absent import absent_sentences

BENCH_WINDOWS_SEED = 4  # never used to build or select a demo model
THRESHOLDS = (0.3, 0.5, 0.7)
FIXED_QUERIES = 10  # sentences a user asks of one video, for the per-video-minute figure


def auroc(scores, labels) -> float:
    from cmagrounding.training.head import binary_auroc

    return binary_auroc(np.asarray(scores), np.asarray(labels))


def run_length(args: argparse.Namespace, length: float) -> dict:
    """One length, in this process: generate, extract, localize; returns the raw figures."""
    import torch

    from cmagrounding.demo.generator import generate_dataset, load_annotations
    from cmagrounding.demo.runner import config_for_duration, generator_config_of
    from cmagrounding.grounder import Grounder
    from cmagrounding.spans import temporal_iou

    if args.threads:
        torch.set_num_threads(args.threads)
    gcfg = config_for_duration(generator_config_of(args.model), length)
    work = Path(args.work) / f"len{int(length)}"
    ann = generate_dataset(work, args.count, seed=args.seed, config=gcfg)
    _, scenes, videos = load_annotations(ann)
    grounder = Grounder.from_pretrained(args.model, device="cpu")
    rng = np.random.default_rng([args.seed, int(length)])
    rows = {"whole": [], "default": [], "top5": [], "gt": [], "dur": [], "present": [], "absent": []}
    extract_s = whole_s = default_s = cpu_s = fixed_s = fixed_cpu_s = extract_cpu_s = 0.0
    queries = 0
    minutes = 0.0
    windowed_videos = 0
    warm = grounder.encode_video(videos[0])  # first-call costs (threads, caches) stay out of the timing
    grounder.localize(warm, [scene.events[0].sentence for scene in scenes[:1]], top_k=5)
    for scene, video in zip(scenes, videos):
        t, c = time.perf_counter(), time.process_time()
        feats = grounder.encode_video(video)  # once per video, from the raw file
        extract_s += time.perf_counter() - t
        extract_cpu_s += time.process_time() - c
        minutes += float(feats.duration) / 60.0
        sents = [e.sentence for e in scene.events]
        t = time.perf_counter()
        whole = grounder.localize(feats, sents, windowed=False)
        whole_s += time.perf_counter() - t
        absent = absent_sentences(scene, gcfg.colours, rng, len(sents))
        t = time.perf_counter()
        ranked = grounder.localize(feats, sents + absent, top_k=5)  # the default: windows when long
        default_s += time.perf_counter() - t
        cpu_s += time.process_time() - c  # extraction + both passes, CPU seconds of this process
        queries += len(sents) + len(absent)
        fixed = [(sents + absent)[i % (len(sents) + len(absent))] for i in range(FIXED_QUERIES)]
        t, c = time.perf_counter(), time.process_time()
        grounder.localize(feats, fixed, top_k=5)  # a user's job: the same number of sentences at every length
        fixed_s += time.perf_counter() - t
        fixed_cpu_s += time.process_time() - c
        windowed_videos += int(any(m.window is not None for ms in ranked for m in ms))
        for e, w, ms in zip(scene.events, whole, ranked[: len(sents)]):
            rows["whole"].append((w.start, w.end))
            rows["default"].append((ms[0].start, ms[0].end))
            gt = (e.start, e.end)
            top = np.array([(m.start, m.end) for m in ms])
            rows["top5"].append(float(temporal_iou(top, np.repeat([gt], len(top), 0)).max()))
            rows["gt"].append(gt)
            rows["dur"].append(float(feats.duration))
            rows["present"].append(ms[0].score)
        rows["absent"].extend(ms[0].score for ms in ranked[len(sents):])
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"length": length, "videos": len(scenes), "minutes": minutes, "extract_s": extract_s, "whole_s": whole_s,
            "default_s": default_s, "cpu_s": cpu_s,
            "extract_cpu_s": extract_cpu_s, "fixed_s": fixed_s, "fixed_cpu_s": fixed_cpu_s, "queries": queries,
            "peak_rss_mb": peak_kb / 1024.0, "windowed_videos": windowed_videos,
            "windows": grounder.windows.to_dict() if grounder.windows is not None else None, **rows}


def summarize(r: dict) -> dict:
    from cmagrounding.training.metrics import compute_metrics

    gt, dur = np.array(r["gt"]), np.array(r["dur"])
    whole = compute_metrics(np.array(r["whole"]), gt, dur).to_dict()
    default = compute_metrics(np.array(r["default"]), gt, dur).to_dict()
    pres, absn = np.array(r["present"]), np.array(r["absent"])
    labels = np.r_[np.ones(len(pres)), np.zeros(len(absn))]
    out = {
        "length": r["length"], "videos": r["videos"], "sentences": len(gt), "absent": len(absn),
        "mean_duration": float(np.mean(sorted(set(r["dur"])))) if r["dur"] else 0.0,
        "whole": {k: whole[k] for k in ("R1@0.5", "R1@0.7", "mIoU")},
        "default": {k: default[k] for k in ("R1@0.5", "R1@0.7", "mIoU")},
        "R5@0.5": float(np.mean(np.array(r["top5"]) >= 0.5)),
        "auroc": auroc(np.r_[pres, absn], labels),
        "s_per_video_minute": (r["extract_s"] + r["default_s"]) / r["minutes"],
        "cpu_s_per_video_minute": r["cpu_s"] / r["minutes"],
        "extract_s_per_video_minute": r["extract_s"] / r["minutes"],
        "localize_s_per_video_minute": r["default_s"] / r["minutes"],
        "job_s_per_video_minute": (r["extract_s"] + r["fixed_s"]) / r["minutes"],
        "job_cpu_s_per_video_minute": (r["extract_cpu_s"] + r["fixed_cpu_s"]) / r["minutes"],
        # per sentence and per minute of the video it searches: flat when windowing is linear in length
        "net_ms_per_query_minute": 1000.0 * r["default_s"] / r["queries"] / (r["minutes"] / r["videos"]),
        "peak_rss_mb": r["peak_rss_mb"], "windowed_videos": r["windowed_videos"],
        "min_score": {},
    }
    for t in THRESHOLDS:  # "absent" declared when the best moment scores below t
        said_absent = np.r_[pres < t, absn < t]
        truly = labels == 0
        tp = int((said_absent & truly).sum())
        out["min_score"][t] = {"precision": tp / max(int(said_absent.sum()), 1), "recall": tp / max(int(truly.sum()), 1),
                               "present_kept": float(np.mean(pres >= t))}
    return out


def main() -> None:
    from cmagrounding.demo import DEMO_MODEL_DIR

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=30, help="videos per length")
    p.add_argument("--lengths", default="20,60,180", help="seconds, comma-separated")
    p.add_argument("--seed", type=int, default=BENCH_WINDOWS_SEED)
    p.add_argument("--model", default=str(DEMO_MODEL_DIR))
    p.add_argument("--work", default=None, help="folder for the videos (default: a temporary one)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--one", type=float, default=None, help=argparse.SUPPRESS)  # a child: one length
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.one is not None:
        print("RESULT " + json.dumps(run_length(args, args.one)))
        return
    recipe = json.loads((Path(args.model) / "config.json").read_text()).get("recipe", {})
    used = {recipe.get("train_seed"), recipe.get("val_seed"), 3}
    if args.seed in used or args.seed >= 1_000_000:
        raise SystemExit(f"seed {args.seed} is used elsewhere (building, bench_demo, the demo command)")
    tmp = tempfile.TemporaryDirectory(prefix="bench-windows-") if args.work is None else None
    work = args.work or tmp.name  # type: ignore[union-attr]
    results = []
    for length in (float(x) for x in args.lengths.split(",")):
        cmd = [sys.executable, __file__, "--one", str(length), "--count", str(args.count), "--seed", str(args.seed),
               "--model", args.model, "--work", work, "--threads", str(args.threads)]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"length {length}: {done.stderr[-3000:]}")
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
        results.append(summarize(json.loads(line[len("RESULT "):])))
        print(f"  length {length:g} s done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    import platform

    print(f"demo model {args.model}; seed {args.seed}; {args.count} videos per length; torch threads {args.threads}; "
          f"CPU {platform.processor() or platform.machine()}")
    w = results[0].get("windows")
    print(f"{'length':>8} {'videos':>6} {'sent':>5} | {'whole R1@.5':>11} {'R1@.7':>6} {'mIoU':>6} | "
          f"{'default R1@.5':>13} {'R1@.7':>6} {'mIoU':>6} {'R5@.5':>6} | {'AUROC':>6} | {'s/vid-min':>9} "
          f"{'(extract':>8} {'+ net)':>7} {'CPU-s/min':>9} {'job s/min':>9} {'net ms/q/min':>12} | {'peak RSS':>8}")
    for r in results:
        wh, de = r["whole"], r["default"]
        print(f"{r['mean_duration']:>7.0f}s {r['videos']:>6} {r['sentences']:>5} | {wh['R1@0.5']:>11.3f} "
              f"{wh['R1@0.7']:>6.3f} {wh['mIoU']:>6.3f} | {de['R1@0.5']:>13.3f} {de['R1@0.7']:>6.3f} {de['mIoU']:>6.3f} "
              f"{r['R5@0.5']:>6.3f} | {r['auroc']:>6.3f} | {r['s_per_video_minute']:>9.2f} "
              f"{r['extract_s_per_video_minute']:>8.2f} {r['localize_s_per_video_minute']:>7.2f} "
              f"{r['cpu_s_per_video_minute']:>9.2f} {r['job_s_per_video_minute']:>9.2f} "
              f"{r['net_ms_per_query_minute']:>12.2f} | "
              f"{r['peak_rss_mb']:>6.0f}MB")
    print(f"default pass: windows {w} for videos over its when_longer_than; windowed videos per length: "
          + ", ".join(f"{r['windowed_videos']}/{r['videos']}" for r in results))
    print("not in this video (absent = best moment's score < min_score): precision / recall of 'absent', "
          "share of present sentences kept")
    for r in results:
        cells = "; ".join(f"min_score {t}: P {v['precision']:.3f} R {v['recall']:.3f} kept {v['present_kept']:.3f}"
                          for t, v in r["min_score"].items())
        print(f"  {r['mean_duration']:>5.0f}s ({r['absent']} absent): {cells}")
    base = results[0]
    print("goals:")
    print(f"  20-s default R1@0.5 >= 0.51: {base['default']['R1@0.5']:.3f} "
          f"({'met' if base['default']['R1@0.5'] >= 0.51 else 'NOT met'})")
    for r in results[1:]:
        gap = base["default"]["R1@0.5"] - r["default"]["R1@0.5"]
        print(f"  {r['mean_duration']:.0f}-s windowed R1@0.5 within 0.10 of the 20-s figure: {r['default']['R1@0.5']:.3f} "
              f"(gap {gap:+.3f}; {'met' if gap <= 0.10 else 'NOT met'})")
    for key, what in (("job_s_per_video_minute", f"wall, extraction + {FIXED_QUERIES} sentences per video"),
                      ("job_cpu_s_per_video_minute", f"CPU, extraction + {FIXED_QUERIES} sentences per video"),
                      ("s_per_video_minute", "wall, extraction + every benchmark sentence"),
                      ("cpu_s_per_video_minute", "CPU, extraction + every benchmark sentence and the whole pass"),
                      ("net_ms_per_query_minute", "network ms per sentence per video-minute, windowed lengths")):
        rows = [r for r in results if key != "net_ms_per_query_minute" or r["windowed_videos"] == r["videos"]]
        if len(rows) < 2:
            continue
        rates = [r[key] for r in rows]
        spread = max(rates) / min(rates) - 1
        print(f"  {what}: constant within 20 %: {', '.join(f'{x:.2f}' for x in rates)} "
              f"(max/min - 1 = {spread:.1%}; {'met' if spread <= 0.20 else 'NOT met'})")
    for r in results:
        print(f"  AUROC >= 0.85 at {r['mean_duration']:.0f} s: {r['auroc']:.3f} ({'met' if r['auroc'] >= 0.85 else 'NOT met'})")
    print(json.dumps([{k: v for k, v in r.items()} for r in results], default=float))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
