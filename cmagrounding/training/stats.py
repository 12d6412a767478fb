"""Dataset statistics: counts, repaired quirks, durations, and Figure 4's moment-length ratio."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmagrounding.training.annotations import AnnotationSet

__all__ = ["dataset_stats", "format_stats", "FIGURE4"]

# Figure 4 of the paper: mean ratio of moment length to video duration.
FIGURE4 = {"charades-sta": 0.27, "activitynet-captions": 0.33}


def dataset_stats(annotations: AnnotationSet) -> dict[str, Any]:
    """Counts, quirks and distributions of one split (times in seconds; ratio = length / duration).

    Ratios use the repaired rows (start <= end, end clipped to the duration), as measured for
    Figure 4: 0.268 / 0.271 on Charades-STA train / test, 0.334 on ActivityNet val_1 + val_2.
    """
    rows = list(annotations)
    durations = {a.video: a.duration for a in rows}
    ratio = np.array([a.ratio for a in rows])
    length = np.array([a.end - a.start for a in rows])
    words = np.array([len(a.query.split()) for a in rows])
    return {
        "dataset": annotations.name,
        "split": annotations.split,
        "queries": len(rows),
        "videos": len(durations),
        "mean_video_duration_s": float(np.mean(list(durations.values()))),
        "mean_moment_length_s": float(length.mean()),
        "mean_ratio": float(ratio.mean()),
        "median_ratio": float(np.median(ratio)),
        "ratio_histogram": np.histogram(ratio, bins=10, range=(0.0, 1.0))[0].tolist(),
        "mean_query_words": float(words.mean()),
        "max_query_words": int(words.max()),
        "quirks": annotations.quirks.to_dict(),
        "paper_figure4_ratio": FIGURE4.get(annotations.name),
        "sources": annotations.sources,
    }


def format_stats(stats: dict[str, Any]) -> str:
    """A few readable lines for the terminal."""
    q = stats["quirks"]
    fig = stats.get("paper_figure4_ratio")
    lines = [
        f"{stats['dataset']} / {stats['split']}: {stats['queries']:,} queries, {stats['videos']:,} videos",
        f"  mean video {stats['mean_video_duration_s']:.2f} s, mean moment {stats['mean_moment_length_s']:.2f} s, "
        f"query words mean {stats['mean_query_words']:.2f} (max {stats['max_query_words']})",
        f"  moment/duration ratio: mean {stats['mean_ratio']:.3f} (= {stats['mean_ratio']:.2f})"
        + (f", paper Figure 4: {fig:.2f}" if fig is not None else "")
        + f", median {stats['median_ratio']:.3f}",
        "  ratio histogram (0-1, 10 bins): " + " ".join(str(c) for c in stats["ratio_histogram"]),
        f"  repaired: start>end swapped {q['swapped_start_end']}, end>duration clipped {q['clipped_end_to_duration']}"
        f" (span wholly after the video {q['start_after_duration']}), start<0 clipped {q['clipped_negative_start']}",
    ]
    return "\n".join(lines)
