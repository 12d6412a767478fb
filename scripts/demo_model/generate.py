# Render the demo grounding set in parallel with the project generator (train seed 1, val seed 2, bench seed 3).
# Usage: python scripts/demo_model/generate.py WORK NUM_TRAIN NUM_VAL NUM_BENCH   (PROCS=16 processes by default)
import json, sys, time
from multiprocessing import Pool
from pathlib import Path
from cmagrounding.demo.generator import GeneratorConfig, generate_scene, video_name
from cmagrounding.demo.renderer import write_video

OUT = Path(sys.argv[1]); SPLITS = {"train": (1, int(sys.argv[2])), "val": (2, int(sys.argv[3])), "bench": (3, int(sys.argv[4]))}
cfg = GeneratorConfig()

def job(a):
    split, seed, i = a
    scene = generate_scene(cfg, seed, i)
    p = OUT / split / "videos" / f"{video_name(i)}.mp4"
    if not p.exists():
        write_video(scene, p, codec=cfg.codec, crf=cfg.crf)
    return split, [{"video": str(p), "duration": scene.duration, "query": e.sentence, "start": e.start, "end": e.end} for e in scene.events]

if __name__ == "__main__":
    t = time.time()
    jobs = [(s, seed, i) for s, (seed, n) in SPLITS.items() for i in range(n)]
    rows = {s: [] for s in SPLITS}
    with Pool(int(__import__('os').environ.get('PROCS', 16))) as pool:
        for s, r in pool.imap(job, jobs, chunksize=8):
            rows[s].extend(r)
    for s, r in rows.items():
        with open(OUT / f"{s}.jsonl", "w") as f:
            for x in r:
                f.write(json.dumps(x) + "\n")
    (OUT / "gen.json").write_text(json.dumps(cfg.to_dict()))
    print("generated", {s: len(r) for s, r in rows.items()}, f"{time.time() - t:.0f} s", json.dumps(cfg.to_dict()))
