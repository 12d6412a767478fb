"""Encode a video once, save its features, and ask many questions about it cheaply.

    python examples/encode_once_ask_many.py [VIDEO] [--model PATH_OR_HUB_ID] [--features FILE.safetensors]

The expensive part of localize() is decoding and feature extraction; a question on cached
features only runs the CMA network (milliseconds on a CPU). Without a video it renders a fresh
generated demo video in a temporary folder and asks its own sentences (true spans printed too).
The features are saved as ``FILE.safetensors`` (default: ``<video name>.features.safetensors`` in
the current folder; the suffix is added when missing) for ``cmagrounding localize FILE ...``.

Exit status: 0 done; 1 when the video, the model or the features file cannot be used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cmagrounding import Grounder, VideoFeatures
from cmagrounding.errors import CMAGroundingError

QUESTIONS = [
    "a red circle moves to the left",
    "the blue square appears",
    "the background turns dark",
    "a green triangle grows",
    "the yellow circle disappears",
]


def features_path(arg: str | None, video: Path) -> Path:
    """Where to save: ``arg`` with a ``.safetensors`` suffix, or ``<video stem>.features.safetensors``."""
    path = Path(arg) if arg else Path(f"{video.stem}.features.safetensors")
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="a video file (default: a freshly generated demo video)")
    parser.add_argument("--model", default=None, help="pretrained folder or hub id (default: the demo model)")
    parser.add_argument("--features", default=None, metavar="FILE.safetensors", help="where to save the features")
    args = parser.parse_args()
    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)

    with tempfile.TemporaryDirectory() as tmp:
        try:
            grounder = Grounder.from_pretrained(args.model)
            questions, truths = QUESTIONS, [None] * len(QUESTIONS)
            if args.video is None:  # a sample video with known answers, made here (PyAV only)
                from cmagrounding.demo.runner import make_demo_video

                video, scene = make_demo_video(Path(tmp) / "generated.mp4")
                questions = [e.sentence for e in scene.events]
                truths = [(e.start, e.end) for e in scene.events]
                print(f"generated {video.name} ({scene.duration:.2f} s, seed {scene.seed}) in a temporary folder")
            else:
                video = Path(args.video)
            t = time.perf_counter()
            features = grounder.encode_video(video)  # decode + extract, once
            print(f"encoded {video.name}: {len(features.features)} features in {time.perf_counter() - t:.2f} s")
            saved = features_path(args.features, video)
            saved.parent.mkdir(parents=True, exist_ok=True)
            features.save(saved)
            features = VideoFeatures.load(saved)  # e.g. in another session
            print(f"features saved to {saved} and loaded back")

            t = time.perf_counter()
            moments = grounder.localize(features, questions)  # one batch through the network
            ms = 1000 * (time.perf_counter() - t)
        except (CMAGroundingError, OSError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    print(f"{len(questions)} questions in {ms:.1f} ms:")
    for m, truth in zip(moments, truths):
        known = "" if truth is None else f"   (true {truth[0]:.2f} - {truth[1]:.2f} s)"
        print(f"  {m.start:6.2f} - {m.end:6.2f} s  {m.query}{known}")
    return 0


if __name__ == "__main__":
    if (code := main()) != 0:
        sys.exit(code)
