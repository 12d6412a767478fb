"""Localize one sentence in one video: the library's one call.

    python examples/localize_video.py [VIDEO] [QUERY] [--model PATH_OR_HUB_ID]

Without --model it uses the demo model shipped inside the package (trained on generated videos
only, so on real footage its answers show the mechanics, not real-world understanding). Without a
video it renders a fresh generated demo video in a temporary folder and asks one of its own
sentences, so the true span is known and printed too.

Exit status: 0 done; 1 when the video or the model cannot be used (the message says why).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cmagrounding import Grounder
from cmagrounding.errors import CMAGroundingError

DEFAULT_QUERY = "a red circle moves to the left"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", help="a video file (default: a freshly generated demo video)")
    parser.add_argument("query", nargs="?", default=None, help=f"the sentence (default: {DEFAULT_QUERY!r})")
    parser.add_argument("--model", default=None, help="pretrained folder or hub id (default: the demo model)")
    args = parser.parse_args()

    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            grounder = Grounder.from_pretrained(args.model)
            video, query, truth = args.video, args.query or DEFAULT_QUERY, None
            if video is None:  # a sample video with known answers, made here (PyAV only)
                from cmagrounding.demo.runner import make_demo_video

                made, scene = make_demo_video(Path(tmp) / "generated.mp4")
                video = str(made)
                if args.query is None:  # its first sentence, whose true span is known
                    event = scene.events[0]
                    query, truth = event.sentence, (event.start, event.end)
                print(f"generated {made.name} ({scene.duration:.2f} s, seed {scene.seed}) in a temporary folder")
            moment = grounder.localize(video, query)
        except CMAGroundingError as e:  # missing or unreadable video, bad model folder, empty query
            print(f"error: {e}", file=sys.stderr)
            return 1

    start, end = moment  # seconds
    print(f"{Path(video).name}: {query!r} -> {start:.2f} s to {end:.2f} s (of {moment.duration:.2f} s)")
    if truth is not None:
        print(f"  true span {truth[0]:.2f} s to {truth[1]:.2f} s")
    # what the network looked at: the temporal attention (Eq. 18) of each clip, with its times
    top = moment.attention.argsort()[::-1][:3]
    for i in top:
        s, e = moment.clip_times[i]
        print(f"  clip {s:6.2f}-{e:6.2f} s  attention {moment.attention[i]:.3f}")
    return 0


if __name__ == "__main__":
    if (code := main()) != 0:
        sys.exit(code)
