# Build the shipped demo model: Kinetics-400 I3D features of the videos in WORK (CUDA, PROCS=14 extraction
# processes), train a small CMA, save it to OUT/model, and score it on the fresh bench videos from their raw files.
# Usage: python scripts/demo_model/build.py WORK OUT EPOCHS   (DEVICE=cuda by default; see docs/demo.md)
import json, sys, time, os
from pathlib import Path
import numpy as np, torch
DEV = os.environ.get("DEVICE", "cuda"); NP = int(os.environ.get("PROCS", 14)); W = Path(sys.argv[1]); OUT = Path(sys.argv[2]); EPOCHS = int(sys.argv[3])
from cmagrounding.video.config import VideoConfig
VIDEO = dict(fps=8.0, clip_len=8, stride=4, resize=112, crop=112, precision="fp32", batch_size=64)
vcfg = VideoConfig.for_extractor("i3d_kinetics400", **VIDEO)

def extract(args):
    rank, paths = args
    torch.backends.cudnn.allow_tf32 = False; torch.backends.cuda.matmul.allow_tf32 = False
    from cmagrounding.video.encoder import VideoEncoder
    enc = VideoEncoder(vcfg, device=DEV)
    out = {}
    for p in paths:
        out[p] = enc.encode(p).features.astype(np.float32)
    return out, enc.config.to_dict()

if __name__ == "__main__":
    import multiprocessing as mp
    t0 = time.time()
    rows = {s: [json.loads(l) for l in open(W / f"{s}.jsonl")] for s in ("train", "val", "bench")}
    vids = sorted({r["video"] for s in ("train", "val") for r in rows[s]})
    chunks = [(i, vids[i::NP]) for i in range(NP)]
    feats = {}
    with mp.get_context("spawn").Pool(NP) as pool:
        for f, cfgd in pool.imap_unordered(extract, chunks):
            feats.update(f)
    vcfg = VideoConfig.from_dict(cfgd)
    print(f"extracted {len(feats)} videos in {time.time() - t0:.0f} s; rows per video {np.mean([len(v) for v in feats.values()]):.1f}", flush=True)
    from cmagrounding.demo.build import grammar_sentences
    from cmagrounding.grounder import Grounder
    from cmagrounding.model import CMAConfig, CMANetwork, GroundingLoss, LossConfig
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.training.annotations import load_jsonl
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.dataset import GroundingDataset
    from cmagrounding.training.stores import MemoryStore
    from cmagrounding.training.trainer import Trainer
    torch.manual_seed(0)
    tok = WordTokenizer.build(grammar_sentences(), style="lgi")
    N = max(len(v) for v in feats.values())
    MODEL = dict(word_dim=64, num_clips=N, max_words=10, hidden=128, lstm_hidden=64, lstm_layers=2, spe_hidden=64,
                 head_hidden=128, ffn_dim=0, num_phrases=1, num_heads=4, encoder_layers=2, decoder_layers=2,
                 dropout=0.1, input_dropout=0.3, freeze_embeddings=False)
    mcfg = CMAConfig(video_dim=vcfg.feature_dim, vocab_size=tok.vocab_size, **MODEL)
    net = CMANetwork(mcfg)
    LOSS = dict(kind="task", alpha=10.0, beta=0.1)
    store = MemoryStore(feats)
    tr = GroundingDataset(load_jsonl(W / "train.jsonl", name="demo", split="train"), store, tok, N, 10, train=True, seed=0)
    va = GroundingDataset(load_jsonl(W / "val.jsonl", name="demo", split="val"), store, tok, N, 10, train=False)
    TRAIN = dict(epochs=EPOCHS, batch_size=64, lr=1e-3, seed=0, device=DEV, progress=False, select_metric="R1@0.5", time_limit=200)
    res = Trainer(net, GroundingLoss(LossConfig(**LOSS)), tr, va, TrainConfig(**TRAIN), W / "run").fit()
    print("best", res.best_epoch, res.best_metrics, f"train {res.train_seconds:.0f} s", flush=True)
    g = Grounder(net, tok, vcfg, device=DEV)
    recipe = {"generator": json.load(open(W / "gen.json")), "num_train_videos": len({r['video'] for r in rows['train']}),
              "num_val_videos": len({r['video'] for r in rows['val']}), "train_seed": 1, "val_seed": 2, "video": VIDEO,
              "model": MODEL, "loss": LOSS, "train": TRAIN, "best_epoch": res.best_epoch,
              "built_on": torch.cuda.get_device_name(0) if DEV == "cuda" else "cpu"}
    metrics = {f"val {k}": v for k, v in res.best_metrics.items() if k.startswith(("R1@", "mIoU"))}
    g.save_pretrained(OUT / "model", metrics=metrics, recipe=recipe)
    # bench: 200 fresh videos (seed 3, never used for training or selection), from the raw files
    from cmagrounding.training.metrics import compute_metrics
    g2 = Grounder.from_pretrained(OUT / "model", device=DEV)
    by = {}
    for r in rows["bench"]:
        by.setdefault(r["video"], []).append(r)
    pred, gt, dur = [], [], []
    for v, rs in by.items():
        ms = g2.localize(v, [r["query"] for r in rs])
        for m, r in zip(ms, rs):
            pred.append((m.start, m.end)); gt.append((r["start"], r["end"])); dur.append(r["duration"])
    pred, gt, dur = np.array(pred), np.array(gt), np.array(dur)
    m = compute_metrics(pred, gt, dur).to_dict()
    tr_rows = rows["train"]
    ms_, me_ = np.mean([r["start"] / r["duration"] for r in tr_rows]), np.mean([r["end"] / r["duration"] for r in tr_rows])
    base = compute_metrics(np.stack([ms_ * dur, me_ * dur], 1), gt, dur).to_dict()
    print("BENCH", json.dumps({"videos": len(by), "queries": len(gt), "model": {k: m[k] for k in m if k.startswith(("R1", "mIoU"))},
                               "mean_span_baseline": {k: base[k] for k in base if k.startswith(("R1", "mIoU"))}}), flush=True)
    print(f"total {time.time() - t0:.0f} s")
