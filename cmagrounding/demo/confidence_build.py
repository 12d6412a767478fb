"""Train the demo model's confidence head on a finished demo build's features, and save the folder.

    python -m cmagrounding.demo.confidence_build --work /tmp/demo-build --out cmagrounding/demo/model \\
        --init cmagrounding/demo/model

Reads the features, annotations and settings of ``python -m cmagrounding.demo.build`` (stages
``generate,extract``), builds the small CMA with the confidence head on (an addition to the paper,
:mod:`cmagrounding.model.confidence`), optionally starts from an existing demo model's weights
(``--init``: the network without its head; its folded input standardization is unfolded first),
and trains on the training videos (regression and attention as in the paper) plus windows that
hold the whole moment or none of it (:mod:`cmagrounding.training.confidence_data`); with
``--long-split`` also windows of one longer video each, and with ``--absent-ratio`` those windows
paired with sentences that are nowhere in the video (:mod:`cmagrounding.demo.absent`). The epoch is
picked by validation R1@0.5; the head's AUROC is measured on validation windows built the same
way. The saved ``config.json`` records the durations trained on and the window defaults that
``Grounder.localize`` uses for longer videos (docs/grounder.md, "Long videos").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

_logger = logging.getLogger("cmagrounding.demo.confidence_build")

DEFAULT_CONFIDENCE = {"positives": 1, "negative_ratio": 2.0, "min_other": 2, "min_own": 2, "seed": 0,
                      "hard_fraction": 0.5, "hard_overlap": 0.5, "partial_fraction": 0.0, "partial_max": 0.5}
WINDOW_STRIDE_FRACTION = 0.25  # stride = a quarter of a window: every moment up to 3/4 of a window lies wholly in one
NMS_IOU = 0.5
WINDOW_WHEN_LONGER = 1.5  # window videos longer than 1.5 x the longest trained duration


CONFIDENCE_NOTES = """
**Confidence head and long videos (additions to the paper).** The network has a confidence head
on the pooled feature of Eq. 19 (docs/architecture.md, "Additions to the paper"), trained with
binary cross-entropy on windows of the training videos with the whole moment or none of it;
`Moment.score` is its confidence (validation windows: AUROC {auroc:.3f}). It was trained on
videos of {lo:g}-{hi:g} s (median {med:g} s); videos longer than {longer:g} s are localized in
windows of {size:g} s every {stride:g} s over features extracted once, ranked by the confidence
(docs/grounder.md, "Long videos"; figures: docs/demo.md, `benchmarks/bench_windows.py`).
"""


LONG_NOTES = """
Its last fine-tuning step also saw windows of {videos} longer generated videos ({lo:g}-{hi:g} s,
`--long-split`): windows of one continuous video each, with the whole moment or none of it
(`training/confidence_data.continuous_windows`), as a long video's windows are at inference.
"""


ABSENT_NOTES = """
It also saw {windows} windows of those videos paired with sentences of events that are in no part
of the video (`--absent-ratio {ratio:g}`, half of them about the video's own shapes), with label 0:
"not in this video" as the head must say it at inference.
"""


def card_notes(auroc: float, windows: Any, durations: dict, long_info: dict | None) -> str:
    """The demo model card's notes: the build's, the confidence head's, and the last step's long split."""
    from cmagrounding.demo.settings import CARD_NOTES

    notes = CARD_NOTES + CONFIDENCE_NOTES.format(
        auroc=auroc, size=windows.size, stride=windows.stride, longer=windows.when_longer_than,
        lo=durations["min"], hi=durations["max"], med=durations["median"])
    if long_info is not None:
        d = long_info["durations"]
        notes += LONG_NOTES.format(videos=long_info["videos"], lo=round(d["min"]), hi=round(d["max"]))
        if long_info.get("absent_windows"):
            notes += ABSENT_NOTES.format(windows=long_info["absent_windows"], ratio=long_info["absent_ratio"])
    return notes


def binary_auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``labels`` (ties count one half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs both positive and negative examples")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks of ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = 0.5 * (i + j) + 1.0
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def meanings(work: Path, split: str) -> dict[tuple[str, str], Any]:
    """(video, sentence) -> the event's meaning (kind, colour, shape, argument), from the generator's annotations."""
    from cmagrounding.demo.generator import load_annotations

    _, scenes, videos = load_annotations(work / "data" / split / "annotations.json")
    return {(v.stem, e.sentence): e.meaning for scene, v in zip(scenes, videos) for e in scene.events}


def absent_of(work: Path, split: str, ratio: float, *, seed: int) -> dict[str, list[str]]:
    """"SPLIT/ID" -> round(ratio x its events) sentences absent from that video (cmagrounding.demo.absent)."""
    from cmagrounding.demo.absent import absent_sentences
    from cmagrounding.demo.generator import load_annotations

    cfg, scenes, videos = load_annotations(work / "data" / split / "annotations.json")
    out = {}
    for i, (scene, v) in enumerate(zip(scenes, videos)):
        rng = np.random.default_rng([seed, 17, i])
        out[f"{split}/{v.stem}"] = absent_sentences(scene, cfg.colours, rng, int(round(ratio * len(scene.events))))
    return out


def rows_of(folder: Path) -> dict[str, int]:
    return {p.stem: int(np.load(p, mmap_mode="r").shape[0]) for p in sorted(folder.glob("*.npy"))}


def duration_summary(annotations: Any) -> dict[str, float]:
    """Range and median (seconds) of the training videos' durations."""
    d = np.array(sorted({a.video: a.duration for a in annotations}.values()), dtype=np.float64)
    return {"min": round(float(d.min()), 3), "max": round(float(d.max()), 3), "median": round(float(np.median(d)), 3),
            "videos": int(len(d))}


def unfold_into(net: Any, folded: dict[str, Any], mean: np.ndarray, std: np.ndarray) -> None:
    """Load a folded demo model's weights into ``net`` (strictly, except the new head) and unfold
    its input standardization: W = W' * std, b = b' + W' mean (the inverse of ``fold_standardization``)."""
    import torch

    state = {k: v.clone() for k, v in folded.items()}
    w, b = state["video_proj.0.weight"], state["video_proj.0.bias"]
    state["video_proj.0.bias"] = b + w @ torch.as_tensor(mean, dtype=w.dtype)
    state["video_proj.0.weight"] = w * torch.as_tensor(std, dtype=w.dtype)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("confidence.") for k in missing):
        raise RuntimeError(f"--init weights do not fit: missing {missing}, unexpected {unexpected}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cmagrounding.demo.confidence_build", description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="a demo build's working folder (generate and extract done)")
    p.add_argument("--out", required=True, help="pretrained folder to write")
    p.add_argument("--init", default=None, help="pretrained demo folder to start from (its network; the head is new)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-limit", type=float, default=None, help="seconds of training at most")
    p.add_argument("--confidence-weight", type=float, default=1.0)
    p.add_argument("--negative-ratio", type=float, default=DEFAULT_CONFIDENCE["negative_ratio"])
    p.add_argument("--positives", type=int, default=DEFAULT_CONFIDENCE["positives"])
    p.add_argument("--hard-fraction", type=float, default=DEFAULT_CONFIDENCE["hard_fraction"],
                   help="share of windows whose other segment holds a similar event (training/confidence_data.py)")
    p.add_argument("--partial-fraction", type=float, default=DEFAULT_CONFIDENCE["partial_fraction"],
                   help="share of negatives that hold part of the moment, cut at a window edge (training/confidence_data.py)")
    p.add_argument("--long-split", default=None, metavar="NAME",
                   help="a split of longer generated videos in WORK (data/NAME/NAME.jsonl, features/NAME/*.npy) whose "
                        "continuous windows join the confidence windows (training/confidence_data.continuous_windows)")
    p.add_argument("--long-negative-ratio", type=float, default=None,
                   help="negatives per positive in the --long-split windows (default: --negative-ratio); a long "
                        "video has many windows without the moment, the confusers among them")
    p.add_argument("--absent-ratio", type=float, default=0.0,
                   help="with --long-split: sentences absent from the whole video per annotation of it, each in one "
                        "random window, label 0 (cmagrounding.demo.absent; half about the video's own shapes)")
    p.add_argument("--absent-hard-fraction", type=float, default=0.0,
                   help="share of the absent sentences' windows placed around the video's most similar event "
                        "(word overlap) instead of at random")
    p.add_argument("--keep", choices=("best", "last"), default="best",
                   help="weights to save: the epoch with the best validation R1@0.5, or the last epoch")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import torch

    from cmagrounding.demo.build import (
        DEFAULT_LOSS, DEFAULT_MODEL, DEFAULT_TRAIN, StandardizedStore, _annotations,
        feature_statistics, fold_with_check, grammar_sentences,
    )
    from cmagrounding.grounder import Grounder
    from cmagrounding.model.config import CMAConfig, LossConfig
    from cmagrounding.model.losses import GroundingLoss
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.training.config import TrainConfig
    from cmagrounding.training.confidence_data import (
        ConfidenceDataset, ConfidenceSettings, WindowStore, absent_windows, confidence_windows, continuous_windows,
    )
    from cmagrounding.training.dataset import GroundingDataset, collate
    from cmagrounding.training.stores import ChainStore, NpyFolderStore
    from cmagrounding.training.trainer import Trainer
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.windows import WindowSettings

    work, out = Path(args.work), Path(args.out)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    vcfg = VideoConfig.from_dict(json.loads((work / "features" / "video_config.json").read_text()))
    spr = vcfg.stride / vcfg.fps  # seconds per feature row
    tok = WordTokenizer.build(grammar_sentences(), style="lgi")
    model = {**DEFAULT_MODEL, "confidence_head": True, "confidence_hidden": 128}
    mcfg = CMAConfig(video_dim=vcfg.feature_dim, vocab_size=tok.vocab_size, **model)
    net = CMANetwork(mcfg)
    loss_cfg = {**DEFAULT_LOSS, "confidence_weight": args.confidence_weight}
    train_ann, val_ann = list(_annotations(work, "train")), list(_annotations(work, "val"))
    mean, std = feature_statistics(work / "features" / "train")
    init_info = None
    if args.init:
        from cmagrounding._io import load_safetensors

        init_tok = WordTokenizer.from_file(Path(args.init) / "tokenizer.json")
        if init_tok.vocab_size != tok.vocab_size:
            raise SystemExit(f"--init {args.init}: its tokenizer has {init_tok.vocab_size} words, the grammar's {tok.vocab_size}")
        unfold_into(net, load_safetensors(Path(args.init) / "model.safetensors"), mean, std)
        init_info = {"from": str(args.init), "note": "network weights of that model (standardization unfolded); head new"}
        _logger.info("initialized from %s", args.init)
    settings = ConfidenceSettings(**{**DEFAULT_CONFIDENCE, "negative_ratio": args.negative_ratio,
                                     "positives": args.positives, "hard_fraction": args.hard_fraction,
                                     "partial_fraction": args.partial_fraction,
                                     "max_rows": mcfg.num_clips})
    train_rows = rows_of(work / "features" / "train")
    val_rows = rows_of(work / "features" / "val")
    wins, labels = confidence_windows(train_ann, train_rows, spr, settings, meaning_of=meanings(work, "train"))
    vset = ConfidenceSettings(**{**settings.to_dict(), "seed": settings.seed + 1})
    vwins, vlabels = confidence_windows(val_ann, val_rows, spr, vset, meaning_of=meanings(work, "val"))
    raw_train: Any = NpyFolderStore(work / "features" / "train")
    long_info = None
    if args.absent_ratio < 0 or (args.absent_ratio > 0 and not args.long_split):
        raise SystemExit(f"--absent-ratio {args.absent_ratio:g}: needs to be >= 0, and a --long-split to draw from")
    if args.absent_hard_fraction and not args.absent_ratio:
        raise SystemExit(f"--absent-hard-fraction {args.absent_hard_fraction:g}: places the windows of --absent-ratio, "
                         "which is 0")
    if args.long_split:
        # windows of longer videos, one scene each: what a long video's windows look like at inference
        # (its ids are "NAME/ID", the path of its features under WORK/features: the generator names
        # every split's videos 00000, 00001, ..., so bare ids would collide with the training videos')
        from cmagrounding.training.annotations import Annotation

        name = args.long_split
        long_ann = [Annotation(f"{name}/{a.video}", a.duration, a.query, a.start, a.end) for a in _annotations(work, name)]
        lengths = (min(train_rows.values()), mcfg.num_clips)
        lset = ConfidenceSettings(**{**settings.to_dict(), "seed": settings.seed + 2,
                                     **({} if args.long_negative_ratio is None
                                        else {"negative_ratio": args.long_negative_ratio})})
        long_rows = {f"{name}/{v}": n for v, n in rows_of(work / "features" / name).items()}
        long_meanings = {(f"{name}/{v}", q): m for (v, q), m in meanings(work, name).items()}
        lwins, llabels = continuous_windows(long_ann, long_rows, spr, lset, lengths, meaning_of=long_meanings)
        awins: list = []
        if args.absent_ratio > 0:  # sentences that are nowhere in the video, as the benchmark's absent ones
            absent = absent_of(work, name, args.absent_ratio, seed=lset.seed)
            awins, alabels = absent_windows(absent, long_rows, spr, lengths, seed=lset.seed, annotations=long_ann,
                                            hard_fraction=args.absent_hard_fraction)
            lwins, llabels = lwins + awins, llabels + alabels
        wins, labels = wins + lwins, labels + llabels
        raw_train = ChainStore(raw_train, NpyFolderStore(work / "features"))
        long_info = {"split": name, "videos": len({a.video for a in long_ann}), "annotations": len(long_ann),
                     "windows": len(lwins), "positives": int(sum(llabels)), "lengths_rows": list(lengths),
                     "negative_ratio": lset.negative_ratio, "durations": duration_summary(long_ann),
                     **({"absent_ratio": args.absent_ratio, "absent_hard_fraction": args.absent_hard_fraction,
                         "absent_windows": len(awins)} if awins else {})}
        _logger.info("long split %s: %s", name, long_info)
    _logger.info("train: %d annotations + %d windows (%d with the moment); val windows %d",
                 len(train_ann), len(wins), int(sum(labels)), len(vwins))
    train_store = WindowStore(StandardizedStore(raw_train, mean, std))
    val_store = StandardizedStore(NpyFolderStore(work / "features" / "val"), mean, std)
    train_set = ConfidenceDataset(train_ann + wins, [float("nan")] * len(train_ann) + labels, train_store, tok,
                                  mcfg.num_clips, mcfg.max_words, train=True, seed=0)
    val_set = GroundingDataset(val_ann, val_store, tok, mcfg.num_clips, mcfg.max_words, train=False)
    train = {**DEFAULT_TRAIN, "epochs": args.epochs, "lr": args.lr, "num_threads": args.threads,
             "time_limit": args.time_limit}
    tcfg = TrainConfig(**{"device": "cpu", "progress": False, **train})
    # the run folder is named by what changes the weights (not epochs, time limit or threads), so a
    # rerun continues the same run
    same_run = {k: v for k, v in train.items() if k not in ("epochs", "time_limit", "num_threads")}
    recipe_core = {"model": model, "loss": loss_cfg, "train": same_run,
                   "confidence": settings.to_dict(), "init": args.init}
    if long_info is not None:
        recipe_core["long_split"] = long_info
    digest = hashlib.sha256(json.dumps(recipe_core, sort_keys=True).encode()).hexdigest()[:10]
    run_dir = work / "runs" / f"confidence-{digest}"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(net, GroundingLoss(LossConfig(**loss_cfg)), train_set, val_set, tcfg, run_dir,
                      run_info={"model": mcfg.to_dict(), "recipe": recipe_core})
    if init_info is not None:
        init_info["val"] = {k: round(v, 4) for k, v in (trainer.validate() or {}).items() if k.startswith(("R1@", "mIoU"))}
        _logger.info("the --init network on validation: %s", init_info["val"])
    t0 = time.perf_counter()
    result = trainer.fit(resume=True)
    _logger.info("train: best epoch %s, %s (%.0f s)", result.best_epoch, result.best_metrics, time.perf_counter() - t0)
    kept_epoch, kept_metrics = result.best_epoch, result.best_metrics
    if args.keep == "last":
        from cmagrounding.training.checkpoint import latest_checkpoint, load_checkpoint

        state = load_checkpoint(latest_checkpoint(run_dir / "checkpoints"))
        net.load_state_dict(state.model, strict=True)
        kept_epoch, kept_metrics = state.epoch, result.history[-1].get("val")
        _logger.info("keeping the last epoch %d: %s", kept_epoch, kept_metrics)

    # the head's AUROC on validation windows (standardized features, before folding)
    net = net.cpu().eval()
    vwin_store = WindowStore(val_store)
    vds = ConfidenceDataset(vwins, vlabels, vwin_store, tok, mcfg.num_clips, mcfg.max_words, train=False)
    scores = []
    with torch.no_grad():
        for i in range(0, len(vds), 256):
            b = collate([vds[j] for j in range(i, min(i + 256, len(vds)))])
            scores.append(torch.sigmoid(net(b["video"], b["video_mask"], b["words"], b["word_mask"]).confidence_logit).numpy())
    auroc = binary_auroc(np.concatenate(scores), np.asarray(vlabels) == 1.0)
    _logger.info("validation windows: AUROC %.4f (%d windows)", auroc, len(vwins))

    # fold the standardization (as the demo build does) and check it on validation items
    before, after = fold_with_check(net, [val_set[i] for i in range(min(64, len(val_set)))], mean, std)
    gap = max(float((before.span - after.span).abs().max()),
              float((before.confidence_logit - after.confidence_logit).abs().max()) / 10)
    if gap > 1e-3:
        raise RuntimeError(f"folding the feature standardization changed the outputs by {gap:.2e}")

    durations = duration_summary(train_ann)
    window = int(round(durations["median"] / spr))
    metrics = {f"val {k}": round(v, 4) for k, v in (kept_metrics or {}).items() if k.startswith(("R1@", "mIoU"))}
    metrics["val queries"] = (kept_metrics or {}).get("count")
    metrics["val confidence AUROC"] = round(auroc, 4)
    metrics["val confidence windows"] = len(vwins)
    recipe = {
        **json.loads((work / "build_config.json").read_text()),
        "model": model, "loss": loss_cfg, "train": train, "confidence": settings.to_dict(),
        "init": init_info, "long_split": long_info, "kept": args.keep, "kept_epoch": kept_epoch, "best_epoch": result.best_epoch,
        "epochs_completed": result.epochs_completed,
        "train_seconds": round(result.train_seconds, 1), "stopped_early": result.stopped_early,
        "command": "python -m cmagrounding.demo.confidence_build --work WORK --out OUT"
                   + (f" --init {args.init}" if args.init else "") + f" --epochs {args.epochs} --lr {args.lr}"
                   + (f" --long-split {args.long_split}" if args.long_split else "")
                   + (f" --long-negative-ratio {args.long_negative_ratio:g}" if args.long_negative_ratio is not None else "")
                   + (f" --absent-ratio {args.absent_ratio:g}" if args.absent_ratio > 0 else "")
                   + (f" --absent-hard-fraction {args.absent_hard_fraction:g}" if args.absent_hard_fraction > 0 else ""),
    }
    # windows of the median training length (in whole rows) every quarter of it, for videos
    # longer than 1.5 x the longest training video (docs/grounder.md, "Long videos")
    windows = WindowSettings.from_trained_durations(
        {**durations, "median": window * spr}, stride_fraction=WINDOW_STRIDE_FRACTION, nms_iou=NMS_IOU,
        longer_than=WINDOW_WHEN_LONGER)
    windows = windows.replace(trained_durations=durations)
    card = None
    if args.init and (Path(args.init) / "config.json").exists():  # keep the demo model's card
        from cmagrounding._pretrained import card_of

        card = card_of(json.loads((Path(args.init) / "config.json").read_text()))
    grounder = Grounder(net, tok, vcfg.replace(num_clips=mcfg.num_clips), device="cpu", card=card, windows=windows)
    notes = card_notes(auroc, windows, durations, long_info)
    folder = grounder.save_pretrained(out, metrics=metrics, recipe=recipe, card_notes=notes)
    _logger.info("saved %s", folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
