"""Run a recipe end to end: data, vocabulary, GloVe, network, training, test, pretrained folder.

``run_recipe(get_recipe("charades-full"), "runs/charades-full", annotations=..., features=...,
glove=...)`` is what ``cmagrounding train`` calls. Output folder::

    train_log.jsonl, checkpoints/     the trainer's (see cmagrounding.training.trainer)
    network/                          the first stage's, in a two-stage recipe (head.stage_epochs)
    tokenizer.json                    the vocabulary of the training split
    model/                            the pretrained folder (Grounder.from_pretrained loads it)
    result.json                       test metrics, the paper's numbers, baselines, protocol
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from cmagrounding._io import write_json_atomic
from cmagrounding.errors import ConfigError, DatasetError
from cmagrounding.training.annotations import AnnotationSet, load_annotations
from cmagrounding.training.dataset import GroundingDataset
from cmagrounding.training.distributed import DistContext, init_distributed
from cmagrounding.training.evaluation import evaluate_network, mean_span_baseline, shuffle_queries
from cmagrounding.training.metrics import CONVENTION, CONVENTIONS, PAPER_CONVENTION, GroundingMetrics
from cmagrounding.training.head_config import HeadSettings
from cmagrounding.training.recipes import Recipe, require_word_vectors
from cmagrounding.training.stores import FeatureStore, align_to_store, open_feature_store, recorded_durations
from cmagrounding.training.trainer import Callback, Trainer, TrainResult, cpu_threads

_logger = logging.getLogger(__name__)

__all__ = ["DataSplits", "RecipeResult", "TrainingParts", "load_recipe_data", "holdout_split", "run_recipe",
           "run_head_only"]


@dataclass
class DataSplits:
    train: AnnotationSet
    val: AnnotationSet | None
    test: AnnotationSet
    store: FeatureStore
    val_protocol: str  # how the best epoch is chosen, in words


@dataclass
class RecipeResult:
    recipe: Recipe
    test: GroundingMetrics | None  # None on non-main DDP ranks
    train: TrainResult
    model_dir: Path | None
    network: torch.nn.Module | None = None  # the trained network (best weights on the main process)
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    val_protocol: str = ""

    def table(self) -> str:
        """The test result beside the paper's numbers (percent)."""
        if self.test is None:
            return ""
        title = self.recipe.name
        return self.test.table(self.recipe.paper or None, title=title)


def holdout_split(train: AnnotationSet, fraction: float, seed: int) -> tuple[AnnotationSet, AnnotationSet]:
    """Move ``fraction`` of the training *videos* (all their queries) to a validation split."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"val_fraction must lie in (0, 1), got {fraction}")
    videos = sorted(train.videos)
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(videos)[: max(1, int(round(fraction * len(videos))))].tolist())
    keep = [a for a in train if a.video not in held]
    val = [a for a in train if a.video in held]
    return (AnnotationSet(train.name, train.split, keep, train.quirks, train.sources),
            AnnotationSet(train.name, "holdout", val, sources=train.sources))


def load_recipe_data(recipe: Recipe, annotations: str | Path | None = None, features: str | Path | FeatureStore | None = None,
                     val: str | None = None) -> DataSplits:
    """The recipe's splits and feature store (the synthetic recipe generates both)."""
    protocol = val or recipe.val
    if recipe.dataset == "synthetic":
        from cmagrounding.training.synthetic import make_synthetic

        data = make_synthetic(recipe.synthetic)
        train, test, store = data.train, data.test, data.store
        named_val: AnnotationSet | None = data.val
    else:
        if annotations is None or features is None:
            raise ConfigError(f"recipe {recipe.name!r} needs annotations (the dataset's folder) and features")
        store = features if not isinstance(features, (str, Path)) else open_feature_store(features, key=recipe.hdf5_key)
        # own data (JSON Lines) may leave out the durations: extract-features recorded them
        durations = recorded_durations(store) if recipe.dataset == "jsonl" else None
        train = load_annotations(recipe.dataset, annotations, recipe.train_split, durations)
        test = load_annotations(recipe.dataset, annotations, recipe.test_split, durations)
        named_val = None
        if protocol == "val":
            named_val = load_annotations(recipe.dataset, annotations, "val", durations)
    if protocol == "test":
        return DataSplits(train, test, test, store, "best epoch chosen on the test split (LGI's protocol)")
    if protocol == "holdout":
        train, held = holdout_split(train, recipe.val_fraction, recipe.train.seed)
        return DataSplits(train, held, test, store,
                          f"best epoch chosen on {recipe.val_fraction:.0%} of the training videos held out")
    if protocol == "val":
        return DataSplits(train, named_val, test, store, "best epoch chosen on the validation split")
    if protocol == "none":
        return DataSplits(train, None, test, store, "last epoch kept (no validation)")
    raise ConfigError(f"unknown validation protocol {protocol!r}; expected test, holdout, val or none")


def _covered(data: DataSplits) -> DataSplits:
    """``data`` with its splits checked against the store (:func:`align_to_store`: the first missing
    ids and their count in one error; ids matched with or without ``.avi``)."""
    import dataclasses

    test = align_to_store(data.test, data.store)
    val = None if data.val is None else test if data.val is data.test else align_to_store(data.val, data.store)
    return dataclasses.replace(data, train=align_to_store(data.train, data.store), test=test, val=val)


def _feature_dim(store: FeatureStore, annotations: AnnotationSet) -> int:
    video = annotations[0].video
    try:
        return int(store.get(video).shape[1])
    except DatasetError as e:
        raise DatasetError(f"cannot read the features of the first training video: {e}") from None


def _store_video_config(store: FeatureStore, feature_dim: int, num_clips: int) -> Any:
    """The extraction settings a store recorded (extract-features' ``index.json`` in a folder of
    ``.npy`` files, or a packed store built from one), as the model's VideoConfig; None when it has none or they do not describe these features."""
    from cmagrounding.video.config import VideoConfig

    from cmagrounding.training.packing import recorded_extraction

    extraction = recorded_extraction(store)
    if not extraction:
        return None
    try:
        vcfg = VideoConfig.from_dict(extraction)
    except (ConfigError, KeyError, TypeError, ValueError) as e:
        _logger.warning("%r: its recorded extraction settings are not a VideoConfig (%s); the model is tied to "
                        "precomputed features", store, e)
        return None
    if vcfg.feature_dim != feature_dim:
        _logger.warning("%r: recorded %d-d extraction settings for %d-d features; ignored", store, vcfg.feature_dim, feature_dim)
        return None
    _logger.info("video config from the feature store's recorded extraction settings (%s)", vcfg.extractor)
    return vcfg.replace(num_clips=num_clips)


def _default_video_config(feature_dim: int, num_clips: int, features: Any) -> Any:
    from cmagrounding.video.config import VideoConfig

    # Features made elsewhere: their extraction settings are unknown to us, so the model is tied
    # to "precomputed" features of this width (pass video_config to describe them exactly).
    extra: dict[str, Any] = {"features": Path(str(features)).name if features is not None else "synthetic"}
    if hasattr(features, "describe"):  # joined and/or L2-normalized sources: inference must do the same
        extra = {"features": ",".join(features.describe()["sources"]), "feature_join": features.describe()}
    return VideoConfig(extractor="precomputed", weights=None, feature_dim=feature_dim, num_clips=num_clips, extra=extra)


@dataclass
class TrainingParts:
    """What a recipe's additions make of the data: the store the network reads (standardized when
    ``mean`` is set), the training rows (annotations, crops, head windows) with their confidence
    labels (None: no head), and the window settings the model records."""

    store: FeatureStore  # evaluation store (standardized with the recipe's standardize)
    train_store: FeatureStore  # also serves crop and window views
    train_rows: list[Any]
    labels: list[float] | None
    mean: np.ndarray | None
    std: np.ndarray | None
    spr: float  # seconds per feature row
    windows: Any  # WindowSettings
    summary: dict[str, Any] = field(default_factory=dict)


def _training_parts(recipe: Recipe, data: DataSplits, vcfg: Any, num_clips: int, absent: str | Path | None,
                    log: bool) -> TrainingParts:
    from cmagrounding.training.crops import CroppedStore, crop_annotations
    from cmagrounding.training.head import feature_rows, head_windows, load_absent, seconds_per_row, window_settings
    from cmagrounding.training.standardize import StandardizedStore, feature_statistics

    rows_of = feature_rows(data.store, data.train.videos)
    spr = seconds_per_row(vcfg, list(data.train), rows_of)
    store: Any = data.store
    mean = std = None
    if recipe.standardize:
        mean, std = feature_statistics(data.store, data.train.videos)
        store = StandardizedStore(data.store, mean, std)
    train_rows = list(data.train)
    summary: dict[str, Any] = {"seconds_per_row": spr, "standardized": recipe.standardize}
    train_store: Any = store
    if recipe.crops or recipe.head.enabled:
        train_store = CroppedStore(store)
    if recipe.crops:
        crops = crop_annotations(data.train, data.store, recipe.crops, spr, seed=recipe.train.seed)
        train_rows += crops
        summary["crops"] = len(crops)
    labels = None
    if absent is not None and not recipe.head.enabled:
        raise ConfigError(f"absent sentences ({absent}) train the confidence head, which recipe {recipe.name!r} leaves off")
    if recipe.head.enabled:
        known = load_absent(absent, data.train.videos) if absent is not None else None
        wins, wl, summary["head"] = head_windows(list(data.train), rows_of, spr, recipe.head, num_clips, absent=known)
        labels = [float("nan")] * len(train_rows) + wl
        train_rows += wins
    windows = window_settings(list(data.train), spr, recipe.windows, rows_of=rows_of, num_clips=num_clips)
    summary["windows"] = windows.to_dict()
    if log:
        _logger.info("training rows: %d annotations, %s", len(data.train), summary)
    return TrainingParts(store, train_store, train_rows, labels, mean, std, spr, windows, summary)


def _train_dataset(parts: TrainingParts, tok: Any, n: int, words: int, seed: int) -> Any:
    if parts.labels is None:
        return GroundingDataset(parts.train_rows, parts.train_store, tok, n, words, train=True, seed=seed)
    from cmagrounding.training.confidence_data import ConfidenceDataset

    return ConfidenceDataset(parts.train_rows, parts.labels, parts.train_store, tok, n, words, train=True, seed=seed)


def _head_auroc(recipe: Recipe, data: DataSplits, parts: TrainingParts, network: Any, tok: Any, n: int,
                words: int) -> dict[str, Any]:
    """The head's AUROC on windows of the validation (else test) videos, drawn as the training ones."""
    from cmagrounding.training.confidence_data import ConfidenceDataset
    from cmagrounding.training.crops import CroppedStore
    from cmagrounding.training.head import feature_rows, head_auroc, head_windows

    split = data.val if data.val is not None else data.test
    rows_of = feature_rows(data.store, split.videos)
    try:
        wins, labels, _ = head_windows(list(split), rows_of, parts.spr, recipe.head, n, seed_offset=1)
        ds = ConfidenceDataset(wins, labels, CroppedStore(parts.store), tok, n, words)
        auroc = head_auroc(network, ds)
    except (DatasetError, ValueError) as e:  # too few videos for windows of both labels
        _logger.warning("confidence AUROC on %s not measured: %s", split.split, e)
        return {}
    _logger.info("confidence head: AUROC %.4f on %d windows of the %s videos", auroc, len(wins), split.split)
    return {"confidence_auroc": round(auroc, 4), "confidence_windows": len(wins),
            "confidence_split": f"{split.name}/{split.split}"}


def _fold(network: Any, parts: TrainingParts, split: AnnotationSet, tok: Any, n: int, words: int) -> None:
    """Fold the standardization into the network (on the CPU) and check that nothing moved."""
    if parts.mean is None:
        return
    from cmagrounding.training.standardize import fold_with_check

    ds = GroundingDataset(split, parts.store, tok, n, words)
    before, after = fold_with_check(network, [ds[i] for i in range(min(64, len(ds)))], parts.mean, parts.std)
    gap = float((before.span - after.span).abs().max())
    if before.confidence_logit is not None:
        gap = max(gap, float((before.confidence_logit - after.confidence_logit).abs().max()) / 10)
    if gap > 1e-3:
        raise RuntimeError(f"folding the feature standardization changed the outputs by {gap:.2e}")
    _logger.info("standardization folded into the first linear layer (max output change %.1e)", gap)


NETWORK_STAGE = "network"  # the first of two stages, trained in OUTPUT/network/


def _network_stage(network: Any, loss: Any, parts: TrainingParts, tok: Any, n: int, words: int, val_ds: Any,
                   cfg: Any, output: Path, ctx: DistContext, run_info: dict[str, Any], resume: bool,
                   callbacks: Iterable[Callback]) -> TrainResult:
    """The first of two stages (``HeadSettings.stage_epochs``): the network without its head on the
    annotations and crops, the best epoch by validation, its log and checkpoints in OUTPUT/network/."""
    from cmagrounding.training.checkpoint import latest_checkpoint

    folder = output / NETWORK_STAGE
    if resume and latest_checkpoint(folder / "checkpoints") is None and latest_checkpoint(output / "checkpoints"):
        raise ConfigError(f"{output}: its checkpoint is of a run trained in one stage; resume it with "
                          "--set head.stage_epochs=0, or train in a new output folder")
    rows = [a for a, label in zip(parts.train_rows, parts.labels or [])
            if label != label]  # NaN: an annotation or a crop, not a head window
    ds = GroundingDataset(rows, parts.train_store, tok, n, words, train=True, seed=cfg.seed)
    if ctx.is_main:
        _logger.info("stage 1 of 2: the network alone on %d annotations and crops, %d epochs", len(rows), cfg.epochs)
    trainer = Trainer(network, loss, ds, val_ds, cfg, folder, ctx=ctx, run_info=run_info, callbacks=callbacks)
    return trainer.fit(resume=resume)


def _without_head(model_cfg: Any) -> Any:
    """The first stage's configuration: no head, and the head's settings at their defaults, so that
    its checkpoint serves a second stage with other head settings (``--resume --set head.hidden=...``)."""
    defaults = {f.name: f.default for f in dataclasses.fields(model_cfg) if f.name.startswith("confidence_")}
    return model_cfg.replace(**{**defaults, "confidence_head": False})


def _with_head(network: Any, model_cfg: Any, seed: int, source: str) -> Any:
    """``network``'s weights, less any head it has, in a new network of ``model_cfg`` (with a head
    whose initial weights come from ``seed``): the first stage's best, or ``--head-only``'s model."""
    from cmagrounding.model.network import CMANetwork

    torch.manual_seed(seed)
    full = CMANetwork(model_cfg)
    state = {k: v for k, v in network.state_dict().items() if not k.startswith("confidence.")}
    missing, unexpected = full.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("confidence.") for k in missing):
        raise ConfigError(f"{source}: its weights do not fit its own configuration with a head "
                          f"(missing {missing}, unexpected {unexpected})")
    return full


def _head_stage_config(cfg: Any, head: HeadSettings, spent: float) -> Any:
    """The second stage's training settings: ``head.stage_epochs`` at ``head.stage_lr`` (constant),
    within what the first stage left of the time limit."""
    limit = None if cfg.time_limit is None else max(cfg.time_limit - spent, 0.0)
    return cfg.replace(epochs=head.stage_epochs, lr=head.stage_lr, lr_schedule="constant", time_limit=limit)


def _after_stage(stage1: TrainResult, stage2: TrainResult, final_val: dict[str, Any] | None) -> TrainResult:
    """One result for both stages: epochs and seconds added, the second stage's last epoch kept
    (``final_val``: its validation metrics); ``history`` holds the second stage's epochs (the
    first's are in OUTPUT/network/)."""
    return dataclasses.replace(
        stage2, best_epoch=stage1.epochs_completed + stage2.epochs_completed,
        best_metrics=final_val, epochs_completed=stage1.epochs_completed + stage2.epochs_completed,
        train_seconds=stage1.train_seconds + stage2.train_seconds,
        stopped_early=stage1.stopped_early or stage2.stopped_early,
        stages={"network": {"epochs": stage1.epochs_completed, "best_epoch": stage1.best_epoch,
                            "validation": stage1.best_metrics, "seconds": round(stage1.train_seconds, 1)},
                "head": {"epochs": stage2.epochs_completed, "seconds": round(stage2.train_seconds, 1)}})


def _head_notes(recipe: Recipe, parts: TrainingParts, head_card: dict[str, Any]) -> str:
    w = parts.windows
    notes = (f" Videos longer than {w.when_longer_than:g} s are localized in windows of {w.size:g} s every "
             f"{w.stride:g} s (the training videos' durations; docs/grounder.md, \"Long videos\").")
    if recipe.head.enabled:
        notes += (" A confidence head (an addition to the paper) scores each answer (`Moment.score`)"
                  + (f"; validation windows AUROC {head_card['confidence_auroc']:.3f}." if head_card else "."))
    return notes


def run_recipe(recipe: Recipe, output: str | Path, *, annotations: str | Path | None = None,
               features: str | Path | FeatureStore | None = None, glove: str | Path | None = None,
               resume: bool = False, val: str | None = None, video_config: Any = None,
               ctx: DistContext | None = None, callbacks: Iterable[Callback] = (),
               baselines: bool | None = None, absent: str | Path | None = None) -> RecipeResult:
    """Train ``recipe`` and write its pretrained folder to ``<output>/model`` (main process).

    ``val`` overrides the recipe's validation protocol ("test", "holdout", "val", "none").
    ``baselines`` (default: on for the synthetic recipe) also scores two query-blind baselines on
    the test split: the mean training span, and the trained model given other videos' queries.
    ``absent``: a JSON Lines file of sentences known to be nowhere in a training video,
    ``{"video", "query"}`` per line, extra label-0 windows for the confidence head (``recipe.head``).

    The recipe's additions to the paper (none in the paper presets) are applied here: inputs
    standardized and the statistics folded into the network before saving (``standardize``), crops
    (``crops``), the confidence head trained on its windows (``head``): alongside the network, or in
    a second stage after the network alone (``head.stage_epochs``; the first stage's log and
    checkpoints in ``<output>/network``); every model records the window settings of its training
    durations (``windows``).
    """
    with cpu_threads(recipe.train.num_threads):
        return _run_recipe(recipe, Path(output), annotations, features, glove, resume, val, video_config, ctx,
                           callbacks, baselines, absent)


def _run_recipe(recipe: Recipe, output: Path, annotations: str | Path | None, features: str | Path | FeatureStore | None,
                glove: str | Path | None, resume: bool, val: str | None, video_config: Any, ctx: DistContext | None,
                callbacks: Iterable[Callback], baselines: bool | None, absent: str | Path | None) -> RecipeResult:
    from cmagrounding.model.config import CMAConfig, LossConfig
    from cmagrounding.model.losses import GroundingLoss
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.model.presets import get_preset
    from cmagrounding.text.tokenizer import WordTokenizer

    require_word_vectors(recipe, glove)  # before any data is read: no run on frozen random embeddings
    cfg = recipe.train
    ctx = ctx or init_distributed(cfg.device)
    t_start = time.perf_counter()
    data = load_recipe_data(recipe, annotations, features, val)
    if recipe.dataset != "synthetic":  # every annotated video needs features: one message now, not at a batch
        data = _covered(data)

    tokenizer_path = output / "tokenizer.json"
    if resume and tokenizer_path.is_file():
        tok = WordTokenizer.from_file(tokenizer_path)
    else:
        tok = WordTokenizer.build(data.train.sentences, style=recipe.tokenizer_style)
        if ctx.is_main:
            output.mkdir(parents=True, exist_ok=True)
            tok.save(tokenizer_path)

    if recipe.preset is not None:
        preset = get_preset(recipe.preset)
        model_cfg = preset.model.replace(**recipe.model)
        loss_cfg = preset.loss.replace(**recipe.loss)
    else:
        model_cfg = CMAConfig.from_dict(recipe.model)
        loss_cfg = LossConfig.from_dict(recipe.loss) if recipe.loss else LossConfig()
    dim = _feature_dim(data.store, data.train)
    if dim != model_cfg.video_dim and ctx.is_main:
        _logger.warning("features are %d-d; the recipe expects %d-d: using video_dim=%d", dim, model_cfg.video_dim, dim)
    if tok.vocab_size != model_cfg.vocab_size and recipe.preset is not None and ctx.is_main:
        _logger.info("vocabulary of the training split: %d words (the paper reports %d)", tok.vocab_size, model_cfg.vocab_size)
    model_cfg = model_cfg.replace(video_dim=dim, vocab_size=tok.vocab_size)
    if recipe.head.enabled:  # an addition to the paper: the presets' recipes leave it off
        model_cfg = model_cfg.replace(confidence_head=True, confidence_hidden=recipe.head.hidden)

    staged = recipe.head.enabled and recipe.head.stage_epochs > 0
    torch.manual_seed(cfg.seed)  # initial weights (DDP broadcasts rank 0's anyway)
    # two stages: the first trains the network alone, so it is built without the head
    network = CMANetwork(_without_head(model_cfg) if staged else model_cfg)
    if glove is not None:
        from cmagrounding.text.glove import build_embedding_matrix

        matrix, report = build_embedding_matrix(tok, glove, dim=model_cfg.word_dim, seed=cfg.seed, corpus=data.train.sentences)
        network.load_word_embeddings(matrix)
        if ctx.is_main:
            _logger.info("GloVe: %s", report.summary())
    elif recipe.dataset != "synthetic" and ctx.is_main:
        _logger.warning("no --glove given: word embeddings start random (as in LGI); the paper uses GloVe 300-d%s",
                        "; they stay frozen (freeze_embeddings): --set model.freeze_embeddings=false learns them"
                        if model_cfg.freeze_embeddings else "")

    n, words = model_cfg.num_clips, model_cfg.max_words
    vcfg = video_config or _store_video_config(data.store, dim, n) or _default_video_config(dim, n, features)
    parts = _training_parts(recipe, data, vcfg, n, absent, ctx.is_main)
    train_ds = _train_dataset(parts, tok, n, words, cfg.seed)
    val_ds = GroundingDataset(data.val, parts.store, tok, n, words) if data.val is not None else None
    run_info = {"recipe": recipe.to_dict(), "model": model_cfg.to_dict(), "loss": loss_cfg.to_dict(),
                "val_protocol": data.val_protocol}
    stage1 = None
    if staged:
        stage1 = _network_stage(network, GroundingLoss(loss_cfg), parts, tok, n, words, val_ds, cfg, output, ctx,
                                {**run_info, "model": network.config.to_dict(), "stage": NETWORK_STAGE},
                                resume, callbacks)
        network = _with_head(network, model_cfg, cfg.seed + 1, "the first stage's network")
        cfg = _head_stage_config(cfg, recipe.head, stage1.train_seconds)
        run_info = {**run_info, "stage": "network and confidence head"}
    # the second stage keeps its last epoch (the head needs all of it): validated once, after it
    trainer = Trainer(network, GroundingLoss(loss_cfg), train_ds, None if staged else val_ds, cfg, output, ctx=ctx,
                      run_info=run_info, callbacks=callbacks)
    train_result = trainer.fit(resume=resume)
    if stage1 is not None:
        final_val = None
        if val_ds is not None and ctx.is_main:
            final_val = evaluate_network(network, val_ds, cfg.eval_batch_size, ctx.device).to_dict()
        train_result = _after_stage(stage1, train_result, final_val)
        data = dataclasses.replace(data, val_protocol=f"{data.val_protocol} for the network, then the last of "
                                   f"{recipe.head.stage_epochs} epochs with the confidence head")

    test_metrics = None
    model_dir = None
    extra: dict[str, dict[str, Any]] = {}
    if ctx.is_main:
        test_ds = GroundingDataset(data.test, parts.store, tok, n, words)
        test_metrics = evaluate_network(network, test_ds, cfg.eval_batch_size, ctx.device)  # fp32
        if baselines if baselines is not None else recipe.dataset == "synthetic":
            extra["mean_training_span"] = mean_span_baseline(data.train, data.test).to_dict()
            shuffled = GroundingDataset(shuffle_queries(data.test, seed=cfg.seed), parts.store, tok, n, words)
            extra["shuffled_queries"] = evaluate_network(network, shuffled, cfg.eval_batch_size, ctx.device).to_dict()
        head_card = _head_auroc(recipe, data, parts, network, tok, n, words) if recipe.head.enabled else {}
        _fold(network, parts, data.val if data.val is not None else data.test, tok, n, words)
        from cmagrounding.grounder import Grounder

        metrics_card = {
            "test": test_metrics.to_dict(), "test_split": f"{data.test.name}/{data.test.split}",
            "validation": train_result.best_metrics, "best_epoch": train_result.best_epoch,
            **({"stages": train_result.stages} if train_result.stages else {}),
            "epochs": train_result.epochs_completed, "val_protocol": data.val_protocol,
            "paper": recipe.paper or None, "paper_source": recipe.source or None, "convention": CONVENTION,
            "conventions": CONVENTIONS, "paper_convention": PAPER_CONVENTION,  # test["lgi"]: LGI's scores
            **head_card, **({"baselines": extra} if extra else {}),
        }
        model_dir = output / "model"
        Grounder(network, tok, vcfg, device=ctx.device, windows=parts.windows).save_pretrained(
            model_dir, metrics=metrics_card, recipe={**recipe.to_dict(), "training_parts": parts.summary},
            card_notes=f"Trained with `cmagrounding train --recipe {recipe.name}`; {data.val_protocol}."
                       + _head_notes(recipe, parts, head_card),
        )
        write_json_atomic(output / "result.json", {
            "recipe": recipe.name, **metrics_card, "train_seconds": train_result.train_seconds,
            "total_seconds": time.perf_counter() - t_start, "stopped_early": train_result.stopped_early,
            "model_dir": str(model_dir), "history": train_result.history, "training_parts": parts.summary,
        }, sort_keys=True)
    ctx.barrier()
    return RecipeResult(recipe, test_metrics, train_result, model_dir, network, extra, data.val_protocol)


def run_head_only(recipe: Recipe, init: str | Path, output: str | Path, *, annotations: str | Path | None = None,
                  features: str | Path | FeatureStore | None = None, absent: str | Path | None = None,
                  ctx: DistContext | None = None) -> RecipeResult:
    """Give the trained model ``init`` a confidence head trained alone on its frozen weights.

    The network's weights are loaded unchanged and frozen (dropout off outside the head), so its
    spans on every video run whole are exactly those of ``init`` (checked before saving); only the
    head learns, on windows of ``recipe``'s training data drawn by ``recipe.head`` (and
    ``absent``'s sentences). The model gets window settings from the training durations and is
    written to ``<output>/model`` with ``init``'s tokenizer, video config and card. Epochs:
    ``recipe.train.epochs``; the last epoch is kept (a frozen network's R1 does not move).
    """
    with cpu_threads(recipe.train.num_threads):
        return _run_head_only(recipe, Path(init), Path(output), annotations, features, absent, ctx)


def _run_head_only(recipe: Recipe, init: Path, output: Path, annotations: str | Path | None,
                   features: str | Path | FeatureStore | None, absent: str | Path | None,
                   ctx: DistContext | None) -> RecipeResult:
    from cmagrounding.grounder import Grounder
    from cmagrounding.model.config import LossConfig
    from cmagrounding.model.losses import GroundingLoss
    from cmagrounding.model.presets import get_preset

    cfg = recipe.train
    ctx = ctx or init_distributed(cfg.device)
    t_start = time.perf_counter()
    base = Grounder.from_pretrained(init, device="cpu", load_extractor=False)
    data = load_recipe_data(recipe, annotations, features, "none")
    head = recipe.replace(head=dataclasses.replace(recipe.head, enabled=True), standardize=False, crops=0)
    model_cfg = base.network.config.replace(confidence_head=True, confidence_hidden=recipe.head.hidden)
    network = _with_head(base.network, model_cfg, cfg.seed, str(init))
    for name, p in network.named_parameters():
        p.requires_grad_(name.startswith("confidence."))
    for name, m in network.named_modules():  # frozen layers see no dropout: the head learns the features it will get
        if isinstance(m, torch.nn.Dropout) and not name.startswith("confidence"):
            m.p = 0.0
    dim = _feature_dim(data.store, data.train)
    if dim != model_cfg.video_dim:
        raise DatasetError(f"features are {dim}-d; the model {init} takes {model_cfg.video_dim}-d")
    n, words = model_cfg.num_clips, model_cfg.max_words
    parts = _training_parts(head, data, base.video_config, n, absent, ctx.is_main)
    keep = len(data.train)  # the plain annotations give the head no gradient: windows only
    parts.train_rows, parts.labels = parts.train_rows[keep:], (parts.labels or [])[keep:]
    tok = base.tokenizer
    train_ds = _train_dataset(parts, tok, n, words, cfg.seed)
    loss_cfg = get_preset(recipe.preset).loss.replace(**recipe.loss) if recipe.preset else LossConfig.from_dict(recipe.loss or {})
    run_info = {"recipe": head.to_dict(), "model": model_cfg.to_dict(), "loss": loss_cfg.to_dict(),
                "head_only": {"init": str(init)}, "val_protocol": "last epoch (head only)"}
    trainer = Trainer(network, GroundingLoss(loss_cfg), train_ds, None, cfg, output, ctx=ctx, run_info=run_info)
    train_result = trainer.fit(resume=False)
    model_dir = None
    if ctx.is_main:
        split = data.test
        ds = GroundingDataset(split, data.store, tok, n, words)
        items = [ds[i] for i in range(min(64, len(ds)))]
        from cmagrounding.training.dataset import collate

        b = collate(items)
        with torch.no_grad():
            before = base.network.cpu().eval()(b["video"], b["video_mask"], b["words"], b["word_mask"]).span
            after = network.cpu().eval()(b["video"], b["video_mask"], b["words"], b["word_mask"]).span
        gap = float((before - after).abs().max())
        if gap > 1e-5:
            raise RuntimeError(f"training the head alone changed the network's spans by {gap:.2e}")
        head_card = _head_auroc(head, data, parts, network, tok, n, words)
        metrics = {"head_only": {"init": str(init), "span_change": gap}, "epochs": train_result.epochs_completed,
                   **head_card}
        model_dir = output / "model"
        Grounder(network, tok, base.video_config, device="cpu", card=base.card, windows=parts.windows).save_pretrained(
            model_dir, metrics=metrics, recipe={**head.to_dict(), "head_only": {"init": str(init)},
                                                "training_parts": parts.summary},
            card_notes=f"The network of {init.name}, frozen, with a confidence head trained alone "
                       f"(`cmagrounding train --head-only`)." + _head_notes(head, parts, head_card),
        )
        write_json_atomic(output / "result.json", {
            "recipe": recipe.name, **metrics, "train_seconds": train_result.train_seconds,
            "total_seconds": time.perf_counter() - t_start, "model_dir": str(model_dir),
            "history": train_result.history, "training_parts": parts.summary}, sort_keys=True)
    ctx.barrier()
    return RecipeResult(head, None, train_result, model_dir, network, {}, "last epoch (head only)")
