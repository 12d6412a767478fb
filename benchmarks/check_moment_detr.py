"""Opt-in check: score Moment-DETR's own sample predictions with the library and compare with the
figures Moment-DETR's ``standalone_eval/eval.py`` printed for them.

The three files come from Moment-DETR's public repository (github.com/jayleicn/moment_detr); they
are not part of this project and are never downloaded by it:

    python benchmarks/check_moment_detr.py \\
        --predictions standalone_eval/sample_val_preds.jsonl \\
        --annotations data/highlight_val_release.jsonl \\
        --metrics standalone_eval/sample_val_preds_metrics_raw.json

Prints each brief figure (percent) beside Moment-DETR's and exits 1 when one differs by more than
``--tolerance`` (0.01, the rounding of its printout).
"""

from __future__ import annotations

import argparse
import json
import sys

BRIEF = {  # Moment-DETR's brief key -> the library's key
    "MR-full-R1@0.5": "R1@0.5",
    "MR-full-R1@0.7": "R1@0.7",
    "MR-full-mAP": "mAP",
    "MR-full-mAP@0.5": "mAP@0.5",
    "MR-full-mAP@0.75": "mAP@0.75",
    "MR-short-mAP": "mAP-short",
    "MR-middle-mAP": "mAP-middle",
    "MR-long-mAP": "mAP-long",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--annotations", required=True, help="QVHighlights highlight_val_release.jsonl")
    parser.add_argument("--metrics", required=True, help="Moment-DETR's sample_val_preds_metrics_raw.json")
    parser.add_argument("--tolerance", type=float, default=0.01)
    args = parser.parse_args()

    from cmagrounding.training.predictions import score_predictions
    from cmagrounding.training.annotations import load_qvhighlights

    report = score_predictions(args.predictions, load_qvhighlights(args.annotations, split="val"),
                               thresholds=(0.5, 0.7)).to_dict()
    with open(args.metrics, encoding="utf-8") as f:
        reference = json.load(f)["brief"]
    worst = 0.0
    print(f"{'metric':<20}{'Moment-DETR':>12}{'library':>10}{'diff':>8}")
    for theirs, ours in BRIEF.items():
        mine = round(100 * report[ours], 2)
        diff = abs(mine - reference[theirs])
        worst = max(worst, diff)
        print(f"{theirs:<20}{reference[theirs]:>12.2f}{mine:>10.2f}{diff:>8.2f}")
    print(f"{report['count']} queries, {report['windows']} windows, {report['clipped']} rows clipped to the duration; "
          f"largest difference {worst:.2f} (tolerance {args.tolerance})")
    return 0 if worst <= args.tolerance + 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
