"""Localize the same questions in every video of a folder and write one CSV row per answer.

    python examples/localize_folder_to_csv.py FOLDER QUERIES.txt results.csv [--model PATH_OR_HUB_ID]

QUERIES.txt holds one sentence per line. A video that cannot be read is reported and skipped; the
rest of the folder still runs, and the summary counts rows written, videos read and videos
skipped. A log line that would repeat for every video (the same unknown word of the same query)
is printed once, with the number of times it came up at the end.

Exit status: 0 when at least one video was read; 1 when nothing could run (no such folder or
queries file, no query, no video in the folder, or no video readable).
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections import Counter
from pathlib import Path

from cmagrounding import Grounder
from cmagrounding.errors import CMAGroundingError, VideoError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg"}


class OncePerMessage(logging.Filter):
    """Lets each distinct log message through once and counts the repeats it holds back."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[tuple[str, int, str]] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        self.seen[key] += 1
        return self.seen[key] == 1

    def repeated(self) -> list[tuple[str, int]]:
        return [(message, n) for (_, _, message), n in self.seen.items() if n > 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("queries", type=Path, help="text file, one sentence per line")
    parser.add_argument("output", type=Path, help="CSV to write")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    logging.captureWarnings(True)  # query warnings, once each, with the log lines
    once = OncePerMessage()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(once)
    try:
        return run(args, once)
    finally:  # leave the caller's logging as it was (when run in-process)
        for handler in handlers:
            handler.removeFilter(once)


def run(args: argparse.Namespace, once: OncePerMessage) -> int:
    if args.model is None:
        from cmagrounding.demo import DEMO_MODEL_DIR

        args.model = str(DEMO_MODEL_DIR)

    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 1
    try:
        queries = [q.strip() for q in args.queries.read_text(encoding="utf-8").splitlines() if q.strip()]
    except OSError as e:
        print(f"error: cannot read the queries file {args.queries}: {e}", file=sys.stderr)
        return 1
    if not queries:
        print(f"error: {args.queries} holds no query (one sentence per line)", file=sys.stderr)
        return 1
    videos = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        print(f"error: no video ({', '.join(sorted(VIDEO_SUFFIXES))}) in {args.folder}", file=sys.stderr)
        return 1
    try:
        grounder = Grounder.from_pretrained(args.model)
    except CMAGroundingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    rows, read, failed = 0, 0, []
    with args.output.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "query", "start", "end", "duration", "score"])
        for video in videos:
            try:
                moments = grounder.localize(video, queries)  # decoded once for all queries
            except VideoError as e:  # missing, unreadable, or shorter than one clip
                logging.warning("skipped %s: %s", video.name, e)
                failed.append(video.name)
                continue
            read += 1
            for m in moments:
                writer.writerow([video.name, m.query, f"{m.start:.3f}", f"{m.end:.3f}", f"{m.duration:.3f}", f"{m.score:.4f}"])
                rows += 1
    for message, n in once.repeated():
        print(f"(logged once above, came up {n} times: {message})", file=sys.stderr)
    skipped = f"; {len(failed)} skipped ({', '.join(failed)})" if failed else ""
    print(f"{rows} rows ({len(queries)} queries x {read} videos read) written to {args.output}; "
          f"{len(videos)} videos found{skipped}")
    if read == 0:
        print("error: no video could be read", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if (code := main()) != 0:
        sys.exit(code)
