"""Localize the same questions in every video of a folder and write one CSV row per answer.

    python examples/localize_folder_to_csv.py FOLDER QUERIES.txt results.csv [--model PATH_OR_HUB_ID]

QUERIES.txt holds one sentence per line. A video that cannot be read is reported and skipped; the
rest of the folder still runs.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from cmagrounding import Grounder
from cmagrounding.errors import VideoError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("queries", type=Path, help="text file, one sentence per line")
    parser.add_argument("output", type=Path, help="CSV to write")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)

    grounder = Grounder.from_pretrained(args.model)
    queries = [q.strip() for q in args.queries.read_text(encoding="utf-8").splitlines() if q.strip()]
    videos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    rows = 0
    with args.output.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "query", "start", "end", "duration", "score"])
        for video in videos:
            try:
                moments = grounder.localize(video, queries)  # decoded once for all queries
            except VideoError as e:  # missing, unreadable, or shorter than one clip
                logging.warning("skipped %s: %s", video.name, e)
                continue
            for m in moments:
                writer.writerow([video.name, m.query, f"{m.start:.3f}", f"{m.end:.3f}", f"{m.duration:.3f}", f"{m.score:.4f}"])
                rows += 1
    print(f"{rows} rows for {len(videos)} videos written to {args.output}")


if __name__ == "__main__":
    main()
