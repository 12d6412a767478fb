"""``cmagrounding evaluate``: score a pretrained model, or a predictions file, on a dataset split;
print a table, write JSON.

    cmagrounding evaluate --model runs/charades-full/model --dataset charades-sta \\
        --annotations data/charades_sta --features data/charades_i3d
    cmagrounding evaluate --model runs/synthetic/model --dataset synthetic
    cmagrounding evaluate --predictions preds.jsonl --dataset activitynet-captions \\
        --annotations data/activitynet_captions --split val_1 [--allow-missing]
    cmagrounding evaluate --predictions sample_val_preds.jsonl --dataset qvhighlights \\
        --annotations data/qvhighlights --split val --thresholds 0.5,0.7     # Moment-DETR's rows and rules
    cmagrounding evaluate --model run/model --dataset qvhighlights --annotations data/qvhighlights \\
        --split val --features slowfast_features,clip_features --save-moment-detr val_preds.jsonl [--top-k 10]

A predictions file holds one JSON object per line, {"video": ID, "query": TEXT, "pred": [start, end]}
in seconds, or "pred": [[start, end, score], ...] best first (scored as R5@m and mAP too), or
Moment-DETR's {"qid", "vid", "query", "pred_relevant_windows"}; see docs/evaluation.md for the
matching rules. Exit status: 0 scored, 1 a bad, duplicate or unmatched
row or missing annotations (the message names the file and line), 2 a wrong combination of options.

Both scoring conventions are printed and written, each labelled: the library's (ground truth
clipped to the video) and LGI's (the annotation file's ground truth, unclipped; JSON key "lgi").
A model trained by a paper recipe shows the paper's row too, and which convention it compares with.
Models are scored in fp32 on every device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="pretrained folder or hub id")
    source.add_argument("--predictions", help="score this JSON Lines predictions file instead of a model")
    parser.add_argument("--dataset", required=True,
                        choices=["charades-sta", "activitynet-captions", "qvhighlights", "tacos", "jsonl", "synthetic"])
    parser.add_argument("--annotations", help="the dataset's folder of original files (or the jsonl folder / file)")
    parser.add_argument("--split", default="test", help="split to score (default test; ActivityNet test = val_1 + val_2)")
    parser.add_argument("--features", help="folder of <video>.npy or .npz features (through the packed store in it, "
                        "if any), a packed store, or an .h5/.hdf5 file; A,B joins two sources (as the model records)")
    parser.add_argument("--hdf5-key", help="dataset inside each video's HDF5 group (ActivityNet C3D: c3d_features)")
    parser.add_argument("--npz-key", help="array inside each .npz feature file (default features)")
    parser.add_argument("--videos", help="extract features from these video files with the model's own extractor")
    parser.add_argument("--feature-cache", help="with --videos: cache extracted features here")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", help="cpu, cuda or cuda:K (default: CUDA when available)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="with --predictions: score annotations without a row as IoU 0 (counted) instead of failing")
    parser.add_argument("--per-query", help="write each annotation's IoU here (JSON Lines)")
    parser.add_argument("--thresholds", type=_thresholds, default=None,
                        help="comma-separated IoU thresholds of the R1@m printed, in [0.1, 0.95] "
                        "(default 0.1,0.3,0.5,0.7; Moment-DETR reports 0.5,0.7)")
    parser.add_argument("--save-predictions", help="with --model: write its answers here as the library's "
                        "predictions JSON Lines (video, query, pred [[start, end, score]])")
    parser.add_argument("--save-moment-detr", help="with --model: write its answers here in Moment-DETR's keys "
                        "(qid, vid, query, pred_relevant_windows [[start, end, score]])")
    parser.add_argument("--top-k", type=_top_k, default=None, metavar="K",
                        help="with --model: write up to K ranked, scored candidates per query (the Grounder's "
                        "path: windows on videos longer than the model's windows.when_longer_than, else one); "
                        "R1 and mIoU score the first, mAP all (default: one answer per query, the whole video)")
    parser.add_argument("--json", dest="json_out", help="where to write the result (default eval-<dataset>-<split>.json)")


def _thresholds(text: str) -> tuple[float, ...]:
    """``"0.5,0.7"`` -> (0.5, 0.7); each in [0.1, 0.95] (argparse reports the ValueError by name)."""
    try:
        values = tuple(float(t) for t in text.replace(" ", ",").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    bad = [v for v in values if not 0.1 - 1e-9 <= v <= 0.95 + 1e-9]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: thresholds must lie in [0.1, 0.95]")
    return values


def _top_k(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: --top-k must be an integer >= 1")
    return k


def _synthetic_split(model: str, split: str):
    from cmagrounding.training.recipes import get_recipe
    from cmagrounding.training.synthetic import SyntheticConfig, make_synthetic

    cfg = get_recipe("synthetic").synthetic
    from cmagrounding._pretrained import read_config  # names resolve as in from_pretrained

    recipe = read_config(model).get("recipe") or {}  # regenerate exactly the data the model was trained and tested on
    if recipe.get("synthetic"):
        cfg = SyntheticConfig.from_dict(recipe["synthetic"])
    data = make_synthetic(cfg)
    if split not in ("train", "val", "test"):
        raise SystemExit(f"evaluate: the synthetic dataset has splits train, val, test (not {split!r})")
    return getattr(data, split), data.store


def _run_predictions(args: argparse.Namespace) -> int:
    from cmagrounding._io import write_json_atomic, write_text_atomic
    from cmagrounding._strict_json import dumps as strict_dumps
    from cmagrounding.errors import CMAGroundingError
    from cmagrounding.training.annotations import load_annotations
    from cmagrounding.training.predictions import score_predictions

    if args.dataset == "synthetic":
        print("cmagrounding evaluate: error: --predictions needs --dataset charades-sta, activitynet-captions, "
              "qvhighlights, tacos or jsonl (the synthetic split is regenerated from a model's recipe)", file=sys.stderr)
        return 2
    if not args.annotations:
        print("cmagrounding evaluate: error: --annotations is required with --predictions", file=sys.stderr)
        return 2
    model_only = [f"--{k.replace('_', '-')}" for k in ("features", "videos", "feature_cache", "hdf5_key", "npz_key", "device",
                                                        "save_predictions", "save_moment_detr", "top_k")
                  if getattr(args, k)]
    if model_only:
        print(f"cmagrounding evaluate: error: {', '.join(model_only)} apply to --model, not --predictions",
              file=sys.stderr)
        return 2
    out = Path(args.json_out or f"eval-{args.dataset}-{args.split}.json")
    try:
        annotations = load_annotations(args.dataset, args.annotations, args.split)
        # the annotation files read, not every file of their folder: a rerun's own --json there is no input
        _check_output_paths({"--json": out, "--per-query": args.per_query},
                            {"predictions file": args.predictions, "annotations": annotations.sources})
        report = score_predictions(args.predictions, annotations, allow_missing=args.allow_missing,
                                   **({"thresholds": args.thresholds} if args.thresholds else {}))
    except CMAGroundingError as e:
        print(f"cmagrounding evaluate: error: {e}", file=sys.stderr)
        return 1
    print(f"{args.predictions} on {annotations.name}/{annotations.split}")
    print(report.table())  # printed before any file is written: a failed write loses nothing
    _paper_note(args.dataset, None)
    try:
        write_json_atomic(out, report.to_dict())
        print(f"wrote {out}")
        if args.per_query:
            write_text_atomic(args.per_query, "".join(strict_dumps(q.to_dict(), where=args.per_query) + "\n"
                                                      for q in report.per_query))
            print(f"wrote {args.per_query}")
    except (CMAGroundingError, OSError) as e:
        print(f"cmagrounding evaluate: error: results not written: {e}", file=sys.stderr)
        return 1
    return 0


def _check_output_paths(outputs: dict, inputs: dict) -> None:
    """Refuse outputs that name an input (``{what: file or list of the files read}``; never a whole
    folder: a rerun's own output beside the inputs is no input) or each other."""
    from cmagrounding._paths import check_outputs, check_writable

    check_outputs(outputs, inputs)
    for option, path in outputs.items():
        if path is not None:
            check_writable(option, path)


def _model_files(model: str) -> list[Path]:
    """The files of a local pretrained folder that loading it reads (none for a hub id: the hub's
    cache is no place a user names as an output)."""
    from cmagrounding._pretrained import REQUIRED_FILES

    folder = Path(model)
    return [folder / name for name in REQUIRED_FILES if (folder / name).is_file()] if folder.is_dir() else []


def _paper_row(model: str, dataset: str, split: str) -> dict[str, float] | None:
    """The paper's numbers recorded with the model's recipe, when they are for this dataset's test split."""
    from cmagrounding._pretrained import read_config

    recipe = read_config(model).get("recipe") or {}
    if recipe.get("dataset") == dataset and split == recipe.get("test_split", "test") and recipe.get("paper"):
        return dict(recipe["paper"])
    return None


def _paper_note(dataset: str, paper: dict | None) -> None:
    """On the paper's datasets, say which row its numbers compare with (the table does when it shows them)."""
    from cmagrounding.training.metrics import PAPER_CONVENTION_REASON

    if paper is None and dataset in ("charades-sta", "activitynet-captions"):
        print(PAPER_CONVENTION_REASON)


def run(args: argparse.Namespace) -> int:
    if args.predictions:
        return _run_predictions(args)
    from cmagrounding.errors import ConfigError, NoGroundTruthError
    from cmagrounding.grounder import Grounder
    from cmagrounding.training.annotations import load_annotations, require_windows
    from cmagrounding.training.evaluation import grounder_answers, score_answers
    from cmagrounding.training.ranked_answers import ranked_answers, top1
    from cmagrounding.training.stores import (EncoderStore, align_to_store, feature_sources, open_feature_store,
                                             recorded_durations, store_files)

    out = Path(args.json_out or f"eval-{args.dataset}-{args.split}.json")
    outputs = {"--json": out, "--save-predictions": args.save_predictions,
               "--save-moment-detr": args.save_moment_detr, "--per-query": args.per_query}
    model_files = _model_files(args.model)
    _check_output_paths(outputs, {"model file": model_files})  # before the model is read
    grounder = Grounder.from_pretrained(args.model, device=args.device)
    released = None
    if args.dataset == "synthetic":
        annotations, store = _synthetic_split(args.model, args.split)
    else:
        if not args.annotations:
            raise SystemExit("evaluate: --annotations is required for this dataset")
        if args.videos:
            store = EncoderStore(grounder.video_encoder, video_root=args.videos, cache=args.feature_cache)
        elif args.features:
            key = args.hdf5_key or ("c3d_features" if args.dataset == "activitynet-captions" else None)
            # the model records how its training features were joined and normalized: do the same
            join = grounder.video_config.extra.get("feature_join") or {}
            if join.get("sources") and len(join["sources"]) != len(feature_sources(args.features)):
                raise ConfigError(f"{args.model} was trained on {len(join['sources'])} joined feature sources "
                                  f"({', '.join(join['sources'])}); --features gives {args.features!r}: "
                                  "give the same sources, comma-separated, in the same order")
            store = open_feature_store(args.features, key=key, npz_key=args.npz_key,
                                       l2_normalize=bool(join.get("l2_normalize")))
        else:
            raise SystemExit("evaluate: give --features (precomputed) or --videos (extract with the model's extractor)")
        # JSON Lines rows may leave out the durations that extract-features recorded
        durations = recorded_durations(store) if args.dataset == "jsonl" else None
        released = load_annotations(args.dataset, args.annotations, args.split, durations)
        annotations = align_to_store(released, store)  # ids as the features name them (TACoS: with or without .avi)
    # the files read, not every file of their folders: a rerun's own output there is no input (issue 22)
    _check_output_paths(outputs, {"model file": model_files,
                                  "annotations": released.sources if released is not None else None,
                                  "features": store_files(store, annotations.videos)})
    try:
        require_windows(annotations)
    except NoGroundTruthError:
        if not (args.save_predictions or args.save_moment_detr) or args.per_query:
            raise
        # a hidden test split (QVHighlights): answers written for the benchmark's server, nothing scored
        if args.top_k:
            candidates = ranked_answers(grounder, list(annotations), store, args.top_k, batch_size=args.batch_size)
            spans, scores = top1(candidates)
        else:
            candidates = None
            _, spans, scores = grounder_answers(grounder, annotations, store, batch_size=args.batch_size)
        print(f"{args.model} on {annotations.name}/{annotations.split}: no ground truth; answers written, not scored")
        _write_answers(args, list(released), spans, scores, candidates)
        return 0
    thresholds = {"thresholds": args.thresholds} if args.thresholds else {}
    candidates = None
    if args.top_k:  # the Grounder's ranked candidates; R1 and mIoU score the first of each
        candidates = ranked_answers(grounder, list(annotations), store, args.top_k, batch_size=args.batch_size)
        spans, scores = top1(candidates)
        metrics = score_answers(list(annotations), spans, **thresholds)
    else:
        metrics, spans, scores = grounder_answers(grounder, annotations, store, batch_size=args.batch_size,
                                                  **thresholds)
    print(f"{args.model} on {annotations.name}/{annotations.split}")
    paper = _paper_row(args.model, args.dataset, args.split)
    print(metrics.table(paper, title=annotations.name))
    _paper_note(args.dataset, paper)
    extra = _window_map(list(annotations), spans, scores, candidates)
    from cmagrounding._io import write_json_atomic

    write_json_atomic(out, {"model": str(args.model), "dataset": annotations.name, "split": annotations.split,
                            **metrics.to_dict(), **extra})
    print(f"wrote {out}")
    _write_answers(args, list(annotations if args.dataset == "synthetic" else released), spans, scores,  # the release's ids
                   candidates)
    return 0


def _window_map(annotations: list, spans, scores, candidates=None) -> dict:
    """Moment-DETR's mAP of a model's answers (``candidates``: each query's ranked (spans, scores),
    else one per query) where queries have several windows (QVHighlights), printed and returned
    for the JSON; {} otherwise (one window: the paper reports R1 and mIoU)."""
    if not any(a.windows for a in annotations):
        return {}
    import numpy as np

    from cmagrounding.training.window_metrics import window_map

    if candidates is None:
        candidates = [(spans[i : i + 1], scores[i : i + 1]) for i in range(len(annotations))]
    cands = [(np.clip(c[0], 0.0, a.duration), c[1]) for c, a in zip(candidates, annotations)]
    windows = [np.clip(np.asarray(a.gt_windows, dtype=np.float64), 0.0, a.duration) for a in annotations]
    per_t, _ = window_map(cands, windows)
    out = {"mAP": float(np.mean(list(per_t.values()))), "mAP@0.5": per_t[0.5], "mAP@0.75": per_t[0.75]}
    print("mAP: " + "  ".join(f"{k} {100 * v:.2f}" for k, v in out.items())
          + " (Moment-DETR's rules; " + ("one candidate per query)" if max(len(c[1]) for c in cands) == 1
                                         else f"up to {max(len(c[1]) for c in cands)} ranked candidates per query)"))
    return out


def _write_answers(args: argparse.Namespace, annotations: list, spans, scores, candidates=None) -> None:
    """--save-predictions, --save-moment-detr and --per-query of a model's answers (``candidates``:
    with --top-k, each query's ranked (spans, scores), all written)."""
    from cmagrounding.training.predictions_out import (per_query_rows, prediction_rows, ranked_prediction_rows,
                                                       write_jsonl)
    from cmagrounding.training.window_metrics import top1_ious

    for path, style in ((args.save_predictions, "cmagrounding"), (args.save_moment_detr, "moment-detr")):
        if path:
            write_jsonl(path, prediction_rows(annotations, spans, scores, style) if candidates is None
                        else ranked_prediction_rows(annotations, candidates, style))
            print(f"wrote {path}")
    if args.per_query:
        write_jsonl(args.per_query, per_query_rows(annotations, spans, top1_ious(spans, annotations)))
        print(f"wrote {args.per_query}")
