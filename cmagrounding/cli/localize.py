"""``cmagrounding localize VIDEO QUERY [QUERY ...] --model PATH_OR_ID [--json] [--plot FILE.png]``.

Prints one line per query (start and end in seconds); ``--json`` prints a JSON object instead;
``--plot`` also saves a PNG with thumbnails, the predicted spans and the attention curves. VIDEO
may be a video file or features saved by ``VideoFeatures.save`` (then nothing is decoded).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cmagrounding.errors import CMAGroundingError

_logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, or a features file written by VideoFeatures.save")
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="sentence(s) describing the moment")
    parser.add_argument("--model", "-m", required=True, help="pretrained folder or hub id (org/name)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--attention", action="store_true", help="with --json: include per-clip attention and times")
    parser.add_argument("--plot", metavar="FILE.png", default=None, help="save a picture of the result")
    parser.add_argument("--save-features", metavar="FILE", default=None, help="save the video's features for reuse")


def _is_safetensors(path: str) -> bool:
    """True when ``path`` starts like a safetensors file: a little-endian header length, then '{'."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = Path(path).stat().st_size
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < size


def _load_features_if_saved(path: str):  # -> VideoFeatures | None
    """VideoFeatures when ``path`` is a features file (VideoFeatures.save), None for a video file."""
    if not _is_safetensors(path):
        return None
    from cmagrounding.video.features import VideoFeatures

    return VideoFeatures.load(path)


def run(args: argparse.Namespace) -> int:
    logging.captureWarnings(True)  # query warnings (truncation, unknown words) as log lines
    try:
        from cmagrounding.grounder import Grounder

        grounder = Grounder.from_pretrained(args.model, revision=args.revision, device=args.device)
        features = _load_features_if_saved(args.video)
        video_file = None if features is not None else args.video
        if features is None:
            features = grounder.encode_video(args.video)
            if args.save_features:
                features.save(args.save_features)
        moments = grounder.localize(features, list(args.queries))
        if args.plot:
            from cmagrounding.plot import plot_moments

            plot_moments(moments, args.plot, video=video_file, title=Path(args.video).name)
    except (CMAGroundingError, ImportError, OSError) as e:
        print(f"cmagrounding localize: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        out = {
            "video": args.video,
            "duration": float(features.duration),
            "model": args.model,
            "moments": [m.to_dict(include_attention=args.attention) for m in moments],
        }
        if args.plot:
            out["plot"] = args.plot
        print(json.dumps(out, indent=2))
    else:
        print(f"{args.video}  ({features.duration:.2f} s)")
        for m in moments:
            note = "  [widened to one clip]" if m.widened else ""
            print(f"  {m.start:8.2f} s - {m.end:8.2f} s   {m.query}{note}")
        if args.plot:
            print(f"plot saved to {args.plot}")
    return 0
