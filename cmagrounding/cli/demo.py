"""``cmagrounding demo [--out DIR] [--seed N] [--model PATH] [--no-plot] [--html FILE | --no-html] [--embed-video] [--json] [--duration SECONDS]``.

Generates a fresh video of shapes with its sentences, localizes every sentence from the raw video
file with the shipped demo model (real Kinetics-400 I3D features, then CMA), and prints the
predicted and true spans with their IoU. Writes the video, a JSON result, ``report.html`` (a page
that plays the video with a clickable timeline per sentence) and (with matplotlib) a plot into
``--out``. The demo model was trained on such generated videos only: it shows the whole
path from a file to seconds working, it is not a model of real-world footage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from cmagrounding.errors import CMAGroundingError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cmagrounding.demo import DEMO_MODEL_DIR

    parser.add_argument("--out", "-o", default="cmagrounding-demo", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, help="video seed (default: a fresh random one)")
    parser.add_argument("--model", "-m", default=str(DEMO_MODEL_DIR), help="pretrained folder (default: the shipped demo model)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw plot.png")
    parser.add_argument("--html", metavar="FILE.html", default="report.html",
                        help="the page that plays the video with its timelines, in --out (default: %(default)s)")
    parser.add_argument("--no-html", action="store_true", help="do not write the page")
    parser.add_argument("--embed-video", action="store_true", help="embed the video in the page instead of linking it")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="generate a video of about this length (e.g. 180): long ones are localized in windows")


def run(args: argparse.Namespace) -> int:
    logging.captureWarnings(True)
    from cmagrounding.demo.runner import run_demo

    if args.duration is not None and not args.duration > 0:
        print(f"cmagrounding demo: error: --duration must be positive, got {args.duration:g}", file=sys.stderr)
        return 2
    try:
        result = run_demo(
            args.out, model=args.model, seed=args.seed, device=args.device, plot=not args.no_plot,
            html=None if args.no_html else args.html, embed_video=args.embed_video, duration=args.duration,
        )
    except (CMAGroundingError, ImportError, OSError) as e:
        print(f"cmagrounding demo: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    scene = result.scene
    print(f"generated {result.video} ({scene.duration:.2f} s, {scene.width}x{scene.height}, "
          f"{scene.fps:g} fps, seed {scene.seed}); model: {args.model}")
    print(result.table())
    windows = [m.window for m in result.moments if m.window is not None]
    if windows:
        w = windows[0][1] - windows[0][0]
        print(f"answers from windows of {w:.0f} s over the whole video's features, ranked by the model's "
              f"confidence (the video is longer than the model's training videos)")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    print(f"time: {timing}")
    if result.plot is not None:
        print(f"plot saved to {result.plot}")
    elif result.plot_skipped:
        print(f"plot skipped: {result.plot_skipped}")
    if result.report is not None:
        print(f"report saved to {result.report} (open it in a browser: click a moment to play it)")
    again = f"--seed {scene.seed}" + (f" --duration {args.duration:g}" if args.duration is not None else "")
    print(f"(seed {scene.seed}: `cmagrounding demo {again}` makes the same video again)")
    return 0
