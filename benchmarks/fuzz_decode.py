"""Fuzz the decoder with seeded damaged copies of real videos (issue 13's goals).

For each video: ``--per-kind`` mutants of each kind (flipped bytes, zero runs, inserted bytes, a cut
tail, all inside the media data; and bytes flipped in the headers and index), each decoded in a child process under a time limit. Prints, per
video and kind, how many decoded with a warning, decoded clean, were refused (by error class),
crashed (signal), hung (time limit) or raised a foreign exception; and for the same-length mutants
that damage under 10 % of the media data, the fraction whose own decoded frames (lost ones not
counted) reach >= 90 % of the original frame count.

    python benchmarks/fuzz_decode.py                     # 75 per kind = 300 mutants per video
    python benchmarks/fuzz_decode.py --per-kind 10       # a quick look
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tools/ (repository tooling, not installed)

from cmagrounding.video.decode import probe
from tools.video.mutants import KINDS, SAME_LENGTH, run_mutants, write_mutants

VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "videos"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*", help=f"videos to damage (default: the real ones in {VIDEOS})")
    ap.add_argument("--per-kind", type=int, default=75)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per mutant before it counts as hung")
    args = ap.parse_args()
    videos = [Path(v) for v in args.videos] or sorted(VIDEOS.glob("*.mp4"))
    if not videos:
        raise SystemExit(f"no videos given and none in {VIDEOS}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.per_kind} mutants per kind, "
          f"seed {args.seed}, time limit {args.timeout:g} s each")  # fmt: skip
    totals: collections.Counter = collections.Counter()
    goal_hits = goal_total = 0
    for video in videos:
        original = probe(video).num_frames
        with tempfile.TemporaryDirectory(prefix="fuzz-decode-") as tmp:
            muts = write_mutants(video, tmp, args.per_kind, seed=args.seed, kinds=args.kinds)
            t0 = time.perf_counter()
            results = run_mutants([p for p, _ in muts], timeout_per_file=args.timeout)
            took = time.perf_counter() - t0
        print(f"\n{video.name}: {original} frames, {len(muts)} mutants in {took:.0f} s")
        print(f"  {'kind':<9}{'warned':>7}{'clean':>7}{'refused':>9}{'crashed':>9}{'hung':>6}{'foreign':>9}   refusals by error")
        hits = total = 0
        for kind in args.kinds:
            counts: collections.Counter = collections.Counter()
            errors: collections.Counter = collections.Counter()
            for path, what in muts:
                if what.kind != kind:
                    continue
                r = results[str(path)]
                outcome = r["outcome"]
                if outcome == "decoded":
                    outcome = "warned" if r["warned"] else "clean"
                    counts["times not increasing"] += not r["monotonic"]
                    counts["count != index"] += r["frames"] != r["expected"]
                elif outcome == "refused":
                    errors[r["error"]] += 1
                elif outcome == "foreign":
                    print(f"  FOREIGN {path.name}: {r['message'][-400:]}")
                counts[outcome] += 1
                totals[outcome] += 1
                if kind in SAME_LENGTH and what.media_fraction < 0.1:
                    total += 1
                    good = r["frames"] - r["lost"] if r["outcome"] == "decoded" else 0
                    hits += good >= 0.9 * original
            bad = "".join(f"  ({k}: {counts[k]})" for k in ("times not increasing", "count != index") if counts[k])
            print(f"  {kind:<9}{counts['warned']:>7}{counts['clean']:>7}{counts['refused']:>9}{counts['crashed']:>9}"
                  f"{counts['hung']:>6}{counts['foreign']:>9}   {dict(errors) or ''}{bad}")  # fmt: skip
        print(f"  same-length mutants damaging < 10% of the media data: {hits}/{total} = {hits / max(total, 1):.1%} "
              f"decode >= 90% of the original {original} frames")  # fmt: skip
        goal_hits, goal_total = goal_hits + hits, goal_total + total
    print(f"\nall videos: {sum(totals.values())} mutants; crashed {totals['crashed']}, hung {totals['hung']}, "
          f"foreign exceptions {totals['foreign']}; same-length < 10% goal {goal_hits}/{goal_total} = "
          f"{goal_hits / max(goal_total, 1):.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
