"""Before/after check of a refactoring of the inference path: the same answers, bit for bit.

Encode a few generated videos once (with any checkout's code), then dump every answer of a set of
``localize`` calls (whole, windowed, top-k, min_score, small batches, repeated calls) with each
checkout's code, and compare the dumps: floats are written as ``float.hex`` so that the comparison
is exact. Issue 21 (one inference path) used it on 2 videos of 20 s and 2 of 180 s::

    PYTHONPATH=OLD python benchmarks/check_answers.py encode WORK
    PYTHONPATH=OLD python benchmarks/check_answers.py answer WORK before.json [--headless]
    PYTHONPATH=NEW python benchmarks/check_answers.py answer WORK after.json [--headless]
    python benchmarks/check_answers.py compare before.json after.json

``--headless`` drops the model's confidence head, so that the attention-mass score is compared too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def encode(work: Path, model: str, count: int, seed: int) -> None:
    from cmagrounding.demo.generator import generate_dataset, load_annotations
    from cmagrounding.demo.runner import config_for_duration, generator_config_of
    from cmagrounding.grounder import Grounder

    g = Grounder.from_pretrained(model, device="cpu")
    queries = {}
    for length in (20, 180):
        ann = generate_dataset(work / f"len{length}", count, seed=seed, config=config_for_duration(generator_config_of(model), length))
        _, scenes, videos = load_annotations(ann)
        for i, (scene, video) in enumerate(zip(scenes, videos)):
            name = f"len{length}_{i}.npz"
            g.encode_video(video).save(work / name)
            queries[name] = [e.sentence for e in scene.events] + ["a red circle grows", "the blue square moves left"]
    (work / "queries.json").write_text(json.dumps(queries))


def _exact(m):
    if m is None:
        return None
    if isinstance(m, list):
        return [_exact(x) for x in m]
    d = m.to_dict()
    for k in ("start", "end", "score", "duration"):
        d[k] = float(getattr(m, k)).hex()
    d["span"] = [float(x).hex() for x in m.span]
    d["attention"] = [float(x).hex() for x in np.asarray(m.attention, np.float32)]
    d["clip_times"] = [[float(a).hex(), float(b).hex()] for a, b in m.clip_times]
    return d


def answer(work: Path, model: str, out: Path, headless: bool) -> None:
    import torch

    from cmagrounding.grounder import Grounder
    from cmagrounding.video.features import VideoFeatures

    torch.set_num_threads(1)
    g = Grounder.from_pretrained(model, device="cpu", load_extractor=False)
    if headless:
        g.network.confidence = None
    result = {}
    for name, sents in json.loads((work / "queries.json").read_text()).items():
        f = VideoFeatures.load(work / name)
        calls = {
            "default1": lambda: g.localize(f, sents[0]),
            "default": lambda: g.localize(f, sents),
            "whole": lambda: g.localize(f, sents, windowed=False),
            "top5": lambda: g.localize(f, sents, top_k=5),
            "top3_min": lambda: g.localize(f, sents, top_k=3, min_score=0.5),
            "min": lambda: g.localize(f, sents, min_score=0.5),
            "win10": lambda: g.localize(f, sents, windowed=True, window=10.0, stride=2.5, top_k=4),
            "bs2": lambda: g.localize(f, sents, top_k=5, batch_size=2),
            "again": lambda: g.localize(f, sents, windowed=False),
        }
        result[name] = {k: _exact(c()) for k, c in calls.items()}
    out.write_text(json.dumps(result, indent=0, sort_keys=True))


def compare(a_path: Path, b_path: Path) -> int:
    a, b = json.loads(a_path.read_text()), json.loads(b_path.read_text())
    counts = {"leaves": 0, "same": 0}
    diffs: list[tuple[str, object, object]] = []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{path}/{k}")
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{path}[{i}]")
        else:
            counts["leaves"] += 1
            counts["same"] += x == y
            if x != y:
                diffs.append((path, x, y))

    walk(a, b, "")
    print(f"{counts['same']}/{counts['leaves']} values identical; {len(diffs)} differ")
    scores = [abs(float.fromhex(x) - float.fromhex(y)) for p, x, y in diffs if p.endswith("/score") and isinstance(x, str)]
    if scores:
        print(f"score differences: {len(scores)}, largest {max(scores):.3g}")
    for d in diffs[:10]:
        print("  ", d)
    return 1 if diffs else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["encode", "answer", "compare"])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--model", default="cmagrounding/demo/model")
    ap.add_argument("--count", type=int, default=2, help="videos per length")
    ap.add_argument("--seed", type=int, default=2121)
    ap.add_argument("--headless", action="store_true")
    args = ap.parse_args()
    if args.step == "encode":
        args.paths[0].mkdir(parents=True, exist_ok=True)
        encode(args.paths[0], args.model, args.count, args.seed)
    elif args.step == "answer":
        answer(args.paths[0], args.model, args.paths[1], args.headless)
    else:
        raise SystemExit(compare(args.paths[0], args.paths[1]))


if __name__ == "__main__":
    main()
