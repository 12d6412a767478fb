"""``cmagrounding data-stats``: counts, repaired quirks and Figure 4's ratio of a grounding dataset.

    cmagrounding data-stats --dataset charades-sta --annotations ../shared/data/charades_sta
    cmagrounding data-stats --dataset activitynet-captions --annotations data/activitynet_captions
    cmagrounding data-stats --dataset jsonl --annotations my_train.jsonl
"""

from __future__ import annotations

import argparse

DEFAULT_SPLITS = {
    "charades-sta": ["train", "test"],
    "activitynet-captions": ["train", "val_1", "val_2", "test"],
    "synthetic": ["train", "val", "test"],
    "qvhighlights": ["train", "val", "test"],
    "tacos": ["train", "val", "test"],
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=["charades-sta", "activitynet-captions", "qvhighlights", "tacos", "jsonl",
                                                                 "synthetic"],
                        help="which format to read ('test' of activitynet-captions is val_1 + val_2 merged)")
    parser.add_argument("--annotations", help="the dataset's folder of original files, or the .jsonl file")
    parser.add_argument("--splits", nargs="+", help="splits to describe (default: all of the dataset)")
    parser.add_argument("--json", dest="json_out", help="also write the statistics to this JSON file")


def run(args: argparse.Namespace) -> int:
    from cmagrounding.training.annotations import load_annotations
    from cmagrounding.training.stats import dataset_stats, format_stats

    if args.dataset == "synthetic":
        from cmagrounding.training.recipes import get_recipe
        from cmagrounding.training.synthetic import make_synthetic

        data = make_synthetic(get_recipe("synthetic").synthetic)
        sets = [getattr(data, s) for s in (args.splits or DEFAULT_SPLITS["synthetic"])]
    else:
        if not args.annotations:
            raise SystemExit("data-stats: --annotations is required for this dataset")
        splits = args.splits or DEFAULT_SPLITS.get(args.dataset, ["all"])
        sets = [load_annotations(args.dataset, args.annotations, s) for s in splits]
    stats = [dataset_stats(s) for s in sets]
    print("\n".join(format_stats(s) for s in stats))
    if args.json_out:
        from cmagrounding._io import write_json_atomic

        write_json_atomic(args.json_out, stats)
        print(f"wrote {args.json_out}")
    return 0
