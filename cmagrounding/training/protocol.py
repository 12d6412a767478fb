"""Run a recipe end to end: data, vocabulary, GloVe, network, training, test, pretrained folder.

``run_recipe(get_recipe("charades-full"), "runs/charades-full", annotations=..., features=...,
glove=...)`` is what ``cmagrounding train`` calls. Output folder::

    train_log.jsonl, checkpoints/     the trainer's (see cmagrounding.training.trainer)
    tokenizer.json                    the vocabulary of the training split
    model/                            the pretrained folder (Grounder.from_pretrained loads it)
    result.json                       test metrics, the paper's numbers, baselines, protocol
"""

from __future__ import annotations

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
from cmagrounding.training.recipes import Recipe, require_word_vectors
from cmagrounding.training.stores import FeatureStore, align_to_store, open_feature_store, recorded_durations
from cmagrounding.training.trainer import Callback, Trainer, TrainResult, cpu_threads

_logger = logging.getLogger(__name__)

__all__ = ["DataSplits", "RecipeResult", "load_recipe_data", "holdout_split", "run_recipe"]


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
    """The extraction settings a store recorded (a packed store built from extract-features output),
    as the model's VideoConfig; None when it has none or they do not describe these features."""
    from cmagrounding.video.config import VideoConfig

    extraction = getattr(store, "extraction", None)
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


def run_recipe(recipe: Recipe, output: str | Path, *, annotations: str | Path | None = None,
               features: str | Path | FeatureStore | None = None, glove: str | Path | None = None,
               resume: bool = False, val: str | None = None, video_config: Any = None,
               ctx: DistContext | None = None, callbacks: Iterable[Callback] = (),
               baselines: bool | None = None) -> RecipeResult:
    """Train ``recipe`` and write its pretrained folder to ``<output>/model`` (main process).

    ``val`` overrides the recipe's validation protocol ("test", "holdout", "val", "none").
    ``baselines`` (default: on for the synthetic recipe) also scores two query-blind baselines on
    the test split: the mean training span, and the trained model given other videos' queries.
    """
    with cpu_threads(recipe.train.num_threads):
        return _run_recipe(recipe, Path(output), annotations, features, glove, resume, val, video_config, ctx,
                           callbacks, baselines)


def _run_recipe(recipe: Recipe, output: Path, annotations: str | Path | None, features: str | Path | FeatureStore | None,
                glove: str | Path | None, resume: bool, val: str | None, video_config: Any, ctx: DistContext | None,
                callbacks: Iterable[Callback], baselines: bool | None) -> RecipeResult:
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

    torch.manual_seed(cfg.seed)  # initial weights (DDP broadcasts rank 0's anyway)
    network = CMANetwork(model_cfg)
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
    train_ds = GroundingDataset(data.train, data.store, tok, n, words, train=True, seed=cfg.seed)
    val_ds = GroundingDataset(data.val, data.store, tok, n, words) if data.val is not None else None
    run_info = {"recipe": recipe.to_dict(), "model": model_cfg.to_dict(), "loss": loss_cfg.to_dict(),
                "val_protocol": data.val_protocol}
    trainer = Trainer(network, GroundingLoss(loss_cfg), train_ds, val_ds, cfg, output, ctx=ctx,
                      run_info=run_info, callbacks=callbacks)
    train_result = trainer.fit(resume=resume)

    test_metrics = None
    model_dir = None
    extra: dict[str, dict[str, Any]] = {}
    if ctx.is_main:
        test_ds = GroundingDataset(data.test, data.store, tok, n, words)
        test_metrics = evaluate_network(network, test_ds, cfg.eval_batch_size, ctx.device)  # fp32
        if baselines if baselines is not None else recipe.dataset == "synthetic":
            extra["mean_training_span"] = mean_span_baseline(data.train, data.test).to_dict()
            shuffled = GroundingDataset(shuffle_queries(data.test, seed=cfg.seed), data.store, tok, n, words)
            extra["shuffled_queries"] = evaluate_network(network, shuffled, cfg.eval_batch_size, ctx.device).to_dict()
        from cmagrounding.grounder import Grounder

        vcfg = video_config or _store_video_config(data.store, dim, n) or _default_video_config(dim, n, features)
        metrics_card = {
            "test": test_metrics.to_dict(), "test_split": f"{data.test.name}/{data.test.split}",
            "validation": train_result.best_metrics, "best_epoch": train_result.best_epoch,
            "epochs": train_result.epochs_completed, "val_protocol": data.val_protocol,
            "paper": recipe.paper or None, "paper_source": recipe.source or None, "convention": CONVENTION,
            "conventions": CONVENTIONS, "paper_convention": PAPER_CONVENTION,  # test["lgi"]: LGI's scores
            **({"baselines": extra} if extra else {}),
        }
        model_dir = output / "model"
        Grounder(network, tok, vcfg, device=ctx.device).save_pretrained(
            model_dir, metrics=metrics_card, recipe=recipe.to_dict(),
            card_notes=f"Trained with `cmagrounding train --recipe {recipe.name}`; {data.val_protocol}.",
        )
        write_json_atomic(output / "result.json", {
            "recipe": recipe.name, **metrics_card, "train_seconds": train_result.train_seconds,
            "total_seconds": time.perf_counter() - t_start, "stopped_early": train_result.stopped_early,
            "model_dir": str(model_dir), "history": train_result.history,
        }, sort_keys=True)
    ctx.barrier()
    return RecipeResult(recipe, test_metrics, train_result, model_dir, network, extra, data.val_protocol)
