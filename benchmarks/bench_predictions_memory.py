"""Peak memory of scoring a predictions file: it must grow with the annotations, not the file.

Writes a JSON Lines annotation split of ``--annotations`` queries (Charades-STA's test size by
default) and two predictions files for it: one row per query (the baseline), and the same rows
among ``--rows`` in all (about 80 bytes a row: ~10**6 rows is ~80 MB). Each is scored in a fresh
process (``cmagrounding evaluate --predictions``); the peak resident memory of each process
(``ru_maxrss``) is printed with the ratio of the large file's to the baseline's.

    python benchmarks/bench_predictions_memory.py [--rows 1000000] [--annotations 3720]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd`` in a child process; its peak RSS (MiB), wall seconds and last output line."""
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"p = subprocess.run({cmd!r}, capture_output=True, text=True)\n"
        "t = time.perf_counter() - t\n"
        "if p.returncode: sys.exit(p.stderr)\n"
        "line = next(l for l in p.stdout.splitlines() if ' annotations: ' in l)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, t, line)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=2)
    return float(out[0]), float(out[1]), out[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--annotations", type=int, default=3720)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "data"  # the annotations folder: evaluate refuses outputs among its files
        out_dir = Path(tmp) / "out"
        tmp_path.mkdir()
        out_dir.mkdir()
        anns = [{"video": f"V{i:05d}", "duration": 30.0, "query": f"person does thing {i}.", "start": 2.0, "end": 9.5}
                for i in range(args.annotations)]
        (tmp_path / "test.jsonl").write_text("".join(json.dumps(a) + "\n" for a in anns))
        rows = [json.dumps({"video": a["video"], "query": a["query"],
                            "pred": [round(rng.uniform(0, 10), 2), round(rng.uniform(10, 30), 2)]}) for a in anns]
        (tmp_path / "small.jsonl").write_text("\n".join(rows) + "\n")
        with open(tmp_path / "large.jsonl", "w", encoding="utf-8") as f:
            step = max(1, args.rows // len(rows))
            k = 0
            for i in range(args.rows - len(rows)):
                if i % step == 0 and k < len(rows):
                    f.write(rows[k] + "\n")
                    k += 1
                f.write(json.dumps({"video": f"X{i:07d}", "query": "someone walks through the doorway.",
                                    "pred": [[1.25, 7.5, 0.9], [2.0, 9.0, 0.5]]}) + "\n")
            f.writelines(r + "\n" for r in rows[k:])
        size = (tmp_path / "large.jsonl").stat().st_size
        base = [sys.executable, "-m", "cmagrounding", "evaluate", "--dataset", "jsonl", "--annotations",
                str(tmp_path), "--split", "test", "--json", str(out_dir / "out.json"), "--predictions"]
        env_note = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
        small_mb, small_s, _ = _peak_rss_mb(base + [str(tmp_path / "small.jsonl")])
        large_mb, large_s, line = _peak_rss_mb(base + [str(tmp_path / "large.jsonl")])
    print(f"machine: {env_note}; python {platform.python_version()}")
    print(f"annotations: {args.annotations}; baseline file {args.annotations} rows; "
          f"large file {args.rows} rows, {size / 1e6:.1f} MB")
    print(f"peak RSS baseline {small_mb:.0f} MiB ({small_s:.1f} s); large {large_mb:.0f} MiB ({large_s:.1f} s); "
          f"ratio {large_mb / small_mb:.2f}; large RSS / file size {large_mb * 2**20 / size:.2f}")
    print(f"large file's counts: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
