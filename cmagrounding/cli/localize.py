"""``cmagrounding localize VIDEO QUERY [QUERY ...] --model PATH_OR_ID [--json] [--plot FILE.png] [--html FILE.html]``.

Prints one line per query (start and end in seconds); ``--json`` prints a JSON object instead;
``--plot`` also saves a PNG with thumbnails, the predicted spans and the attention curves;
``--html`` writes a page that plays the video with a clickable timeline per query (the video
linked, or embedded with ``--embed-video``). VIDEO may be a video file or features saved by
``VideoFeatures.save`` (then nothing is decoded, and the page has no player).

Exit status: 0 done; 1 an error (nothing localized, or a plot/page could not be written);
2 bad arguments; 3 the results were printed but ``--plot`` was skipped because matplotlib is
not installed (``pip install 'cmagrounding[plot]'``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cmagrounding.errors import CMAGroundingError

_logger = logging.getLogger(__name__)

#: Exit status when the results were printed but --plot needs the missing "plot" extra.
EXIT_PLOT_UNAVAILABLE = 3

_EPILOG = (
    "exit status: 0 done; 1 error; 2 bad arguments; 3 results printed but --plot skipped because "
    "matplotlib is not installed (pip install 'cmagrounding[plot]')"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file, or a features file written by VideoFeatures.save")
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="sentence(s) describing the moment")
    parser.add_argument("--model", "-m", required=True, help="pretrained folder or hub id (org/name)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--attention", action="store_true", help="with --json: include per-clip attention and times")
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save a picture of the result (needs matplotlib: pip install 'cmagrounding[plot]')")
    parser.add_argument("--html", metavar="FILE.html", default=None,
                        help="write a page that plays the video with a clickable timeline per query")
    parser.add_argument("--embed-video", action="store_true",
                        help="with --html: embed the video in the page (one file) instead of linking it")
    parser.add_argument("--save-features", metavar="FILE", default=None, help="save the video's features for reuse")
    parser.add_argument("--top-k", type=int, default=None, metavar="K",
                        help="up to K moments per query, best first, each with its score (long videos are run in "
                             "windows; a video run whole has one)")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="drop moments scoring below S; a query left with none is reported as not in the video")
    parser.add_argument("--network-precision", choices=("fp32", "bf16", "auto"), default="fp32",
                        help="the CMA network's precision (the extractor has its own, in the model's video settings): "
                             "fp32 (default), bf16, or auto = bf16 only where a once-per-machine probe measures it faster than "
                             "fp32 (docs/performance.md)")
    parser.epilog = _EPILOG


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
    if args.top_k is not None and args.top_k < 1:
        print(f"cmagrounding localize: error: --top-k must be >= 1, got {args.top_k}", file=sys.stderr)
        return 2
    if args.embed_video and not args.html:
        print("cmagrounding localize: error: --embed-video needs --html FILE.html", file=sys.stderr)
        return 2
    try:
        _check_output_paths(args)  # before anything is computed: no output may replace an input
        from cmagrounding.grounder import Grounder

        grounder = Grounder.from_pretrained(args.model, revision=args.revision, device=args.device)
        grounder.network_precision = args.network_precision
        features = _load_features_if_saved(args.video)
        video_file = None if features is not None else args.video
        encoded = features is None
        if encoded:
            features = grounder.encode_video(args.video)
        if args.top_k is None and args.min_score is None:
            moments = grounder.localize(features, list(args.queries))
        else:  # per query a list, best first (possibly empty: "not in this video")
            moments = grounder.localize(features, list(args.queries), top_k=args.top_k or 1, min_score=args.min_score)
    except (CMAGroundingError, ImportError, OSError) as e:
        print(f"cmagrounding localize: error: {e}", file=sys.stderr)
        return 1
    # the answers are printed whatever happens to the features file, the picture and the page
    plot_skipped, failures = _write_outputs(args, grounder, moments, video_file, float(features.duration))
    if args.save_features and encoded:
        try:
            features.save(args.save_features)
        except (CMAGroundingError, OSError) as e:
            failures["save-features"] = e
    saved = args.save_features if args.save_features and encoded and "save-features" not in failures else None
    _print_results(args, features, moments, plot_skipped, failures, grounder.card, saved)
    if failures:
        for what, e in failures.items():
            print(f"cmagrounding localize: error: {what} not written: {e}", file=sys.stderr)
        return 1
    if plot_skipped:
        print(f"cmagrounding localize: plot not written: {plot_skipped}", file=sys.stderr)
        return EXIT_PLOT_UNAVAILABLE
    return 0


def _check_output_paths(args: argparse.Namespace) -> None:
    """Refuse --html / --plot / --save-features naming the video, a file of the model folder, each
    other, or a place this user cannot write (``cmagrounding._paths``)."""
    from cmagrounding._paths import check_outputs, check_writable

    outputs = {"--html": args.html, "--plot": args.plot, "--save-features": args.save_features}
    model = Path(args.model)
    model_files = [p for p in model.iterdir() if p.is_file()] if model.is_dir() else []
    check_outputs(outputs, {"video": args.video, "model file": model_files})
    for option, path in outputs.items():
        if path is not None:
            check_writable(option, path)


def _write_outputs(args, grounder, moments, video_file, duration) -> tuple[str | None, dict[str, Exception]]:
    """Write --plot and --html: (why the plot was skipped or None, {output: error})."""
    from cmagrounding.errors import MissingDependencyError

    plot_skipped = None
    failures: dict[str, Exception] = {}
    if moments and isinstance(moments[0], list) and not all(moments):
        # ranked, and --min-score left some query without a moment: name every query so that
        # the plot and the page show those as "no moment kept" (a list would lose their text)
        moments = dict(zip(args.queries, moments))
    if args.plot:
        try:
            from cmagrounding.plot import plot_moments

            plot_moments(moments, args.plot, video=video_file, title=Path(args.video).name, duration=duration)
        except MissingDependencyError as e:
            plot_skipped = str(e)
        except (CMAGroundingError, OSError, ValueError) as e:
            failures["plot"] = e
    if args.html:
        try:
            from cmagrounding.report import model_info_of, write_report

            write_report(
                args.html, video_file, moments, embed=args.embed_video,
                model_info=model_info_of(grounder, args.model), title=Path(args.video).name,
                duration=duration,
            )
        except (CMAGroundingError, OSError) as e:
            failures["html"] = e
    return plot_skipped, failures


def _print_results(args, features, moments, plot_skipped, failures, card, saved_features=None) -> None:
    if args.json:
        out = {
            "video": args.video,
            "duration": float(features.duration),
            "model": args.model,
            "model_card": card.to_dict(),  # what the model is for, before any answer (docs/pretrained-format.md)
        }
        if moments and isinstance(moments[0], list):  # --top-k / --min-score: every moment with its score
            out["top_k"], out["min_score"] = args.top_k or 1, args.min_score
            out["results"] = [
                {"query": q, "found": bool(ms), "moments": [m.to_dict(include_attention=args.attention) for m in ms]}
                for q, ms in zip(args.queries, moments)
            ]
        else:
            out["moments"] = [m.to_dict(include_attention=args.attention) for m in moments]
        if args.plot:
            out["plot"] = args.plot if not plot_skipped and "plot" not in failures else None
            if plot_skipped:
                out["plot_skipped"] = plot_skipped
        if args.html:
            out["html"] = args.html if "html" not in failures else None
        if args.save_features:
            out["save_features"] = saved_features  # None: not written (failed, or the input was features)
        from cmagrounding._strict_json import dumps

        print(dumps(out, where="the --json output", indent=2))
        return
    print(f"{args.video}  ({features.duration:.2f} s)  model: {card.summary}")
    for q, m in zip(args.queries, moments):
        if isinstance(m, list):  # --top-k / --min-score
            if not m:
                print(f"  {'not in this video':>21}   {q}  [no moment scored >= {args.min_score:g}]")
            for rank, x in enumerate(m, 1):
                note = "  [widened to one clip]" if x.widened else ""
                print(f"  {x.start:8.2f} s - {x.end:8.2f} s   score {x.score:.3f}  #{rank}  {x.query}{note}")
            continue
        note = "  [widened to one clip]" if m.widened else ""
        print(f"  {m.start:8.2f} s - {m.end:8.2f} s   {m.query}{note}")
    if args.plot and not plot_skipped and "plot" not in failures:
        print(f"plot saved to {args.plot}")
    if args.html and "html" not in failures:
        print(f"report saved to {args.html} (open it in a browser)")
