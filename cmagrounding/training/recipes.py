"""Named training recipes: the paper's Tables 1-2, its ablations (Tables 3-6), and ``synthetic``.

A recipe = a dataset, a model preset with overrides, the loss, the training settings, and the
paper's numbers to compare with (percent). The ablations of Tables 3-6 change one setting of the
simple Charades-STA model ("We employ the simple model (without SPE)", Sec. 4.5), whose own row
(57.56) is ``charades-simple``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cmagrounding.errors import ConfigError
from cmagrounding.training.config import TrainConfig
from cmagrounding.training.head_config import ConfidenceSettings, HeadSettings, WindowRule
from cmagrounding.training.synthetic import SyntheticConfig

__all__ = ["Recipe", "RECIPES", "get_recipe", "recipe_names", "GLOVE_FILE", "require_word_vectors"]

#: The word vectors the paper's recipes expect ("pre-trained Glove", Sec. 3.2, 300-d; the
#: 840B-token release is the common one for 300-d and the one docs/reproduce.md downloads).
GLOVE_FILE = "glove.840B.300d.txt"


@dataclass
class Recipe:
    """One reproducible training run.

    ``val``: how the best epoch is chosen. ``"test"`` is LGI's protocol (its code evaluates the
    test split after each epoch and keeps the best), which the paper's numbers follow; fallback
    (LGI), as the paper names no validation split and Charades-STA has none. ``"holdout"`` keeps
    ``val_fraction`` of the training videos apart instead. ``"val"`` uses a split named "val"
    (the synthetic set has one).
    """

    name: str
    description: str
    dataset: str  # "charades-sta" | "activitynet-captions" | "qvhighlights" | "tacos" | "synthetic" | "jsonl"
    preset: str | None  # cmagrounding.model.presets name; None = `model` is a complete CMAConfig dict
    model: dict[str, Any] = field(default_factory=dict)  # CMAConfig overrides
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig overrides
    train: TrainConfig = field(default_factory=TrainConfig)
    paper: dict[str, float] = field(default_factory=dict)  # the paper's numbers in percent, e.g. {"R1@0.5": 57.56}
    source: str = ""  # where in the paper, e.g. "Table 1, Ours"
    train_split: str = "train"
    test_split: str = "test"
    val: str = "test"
    val_fraction: float = 0.1
    tokenizer_style: str = "lgi"  # fallback (LGI): reproduces the paper's vocabulary sizes
    hdf5_key: str | None = None  # per-video dataset inside an HDF5 feature file
    synthetic: SyntheticConfig | None = None
    # the GloVe file this recipe's model expects (None: the embeddings are learned or need none);
    # without it a run refuses to start unless told to learn the embeddings (require_word_vectors)
    glove: str | None = None
    # Additions to the paper (docs/training.md, "One training path"); off in the paper presets,
    # which so build exactly the paper's network. standardize: train on (x - mean) / std of the
    # training features, folded into the first linear layer before saving; crops: random windows
    # around the moment per training annotation; head: the confidence head and its windows;
    # windows: how the saved window settings follow from the training durations (every model).
    standardize: bool = False
    crops: int = 0
    head: HeadSettings = field(default_factory=HeadSettings)
    windows: WindowRule = field(default_factory=WindowRule)

    def __post_init__(self) -> None:
        if not isinstance(self.standardize, bool):
            raise ConfigError(f"recipe standardize must be true or false, got {self.standardize!r}")
        if isinstance(self.crops, bool) or not isinstance(self.crops, int) or self.crops < 0:
            raise ConfigError(f"recipe crops must be an integer >= 0, got {self.crops!r}")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["train"] = self.train.to_dict()
        d["synthetic"] = self.synthetic.to_dict() if self.synthetic else None
        d["head"] = self.head.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, d, convert={
            "train": TrainConfig.from_dict, "synthetic": lambda s: SyntheticConfig.from_dict(s) if s else None,
            "head": HeadSettings.from_dict, "windows": lambda w: dataclass_from_dict(WindowRule, w, "recipe windows"),
        })

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)


def _paper(r3: float | None, r5: float, r7: float | None, miou: float | None) -> dict[str, float]:
    values = {"R1@0.3": r3, "R1@0.5": r5, "R1@0.7": r7, "mIoU": miou}
    return {k: v for k, v in values.items() if v is not None}


_CHARADES_TRAIN = TrainConfig(epochs=500)  # epochs: fallback (LGI)
_ANET_TRAIN = TrainConfig(epochs=300)  # epochs: fallback (LGI)


def _charades_ablation(name: str, table: str, r5: float, what: str, model: dict | None = None,
                       loss: dict | None = None) -> Recipe:
    return Recipe(
        name, f"Charades-STA simple model, {what} ({table})", "charades-sta", "charades-simple",
        model=model or {}, loss=loss or {}, train=_CHARADES_TRAIN, paper={"R1@0.5": r5}, source=table,
        glove=GLOVE_FILE,
    )


# One recipe per choice the paper does not state (docs/reproduce.md, "What the paper does not
# say"): the simple model of Table 1 / 2 with that one setting switched to the alternative, scored
# against the same row of the paper.
_SIMPLE_ROWS = {
    "charades": ("charades-sta", "charades-simple", _CHARADES_TRAIN, (71.38, 57.56, 35.18, 50.01), "Table 1, Ours", None),
    "activitynet": ("activitynet-captions", "activitynet-simple", _ANET_TRAIN, (58.67, 41.43, 23.59, 41.23),
                    "Table 2, Ours", "c3d_features"),
}


def _unstated_variant(dataset: str, suffix: str, what: str, model: dict[str, Any]) -> Recipe:
    data, preset, train, row, source, key = _SIMPLE_ROWS[dataset]
    return Recipe(
        f"{preset}-{suffix}", f"{preset} with {what} (a choice the paper does not state)", data, preset,
        model=model, train=train, paper=_paper(*row), source=f"{source}; unstated choice: {what}", hdf5_key=key,
        glove=GLOVE_FILE,
    )


# The synthetic recipe: small enough to reach R1@0.5 >= 0.85 on held-out videos in about a minute
# on 2 CPU cores (docs/training.md); the model keeps the paper's structure (encoder + decoder,
# Hadamard fusion, sin/cos PE, K phrases) at a smaller width.
_SYNTHETIC = SyntheticConfig()
_SYNTHETIC_MODEL = dict(
    video_dim=_SYNTHETIC.feature_dim, vocab_size=32, word_dim=32, num_clips=32, max_words=10, hidden=64,
    lstm_hidden=32, lstm_layers=1, spe_hidden=32, head_hidden=64, num_phrases=2, num_heads=4,
    encoder_layers=1, decoder_layers=1, dropout=0.0, input_dropout=0.1, freeze_embeddings=False,
)

# Own data (JSON Lines, docs/training.md "Own data"): the paper's structure at the demo model's
# width (128), word embeddings learned (no GloVe needed, any vocabulary); N = 32 clips, sentences
# up to 20 words. A starting point for a few hundred to a few thousand queries, not a paper row.
_OWN_MODEL = dict(
    word_dim=64, num_clips=32, max_words=20, hidden=128, lstm_hidden=64, lstm_layers=2,
    spe_hidden=64, head_hidden=128, num_phrases=1, num_heads=4, encoder_layers=2, decoder_layers=2,
    dropout=0.1, input_dropout=0.3, freeze_embeddings=False,
)  # video_dim and vocab_size are set from the features and the training sentences

# Its additions (docs/training.md, "One training path"): inputs standardized ("training stalled at
# uniform attention without it", docs/demo.md); 2 random crops around the moment per annotation
# (validation R1@0.5 0.34 by epoch 33 against 0.30 by epoch 60 without, 400 generated videos); a
# cosine learning rate over 40 epochs of the network alone (best epoch by validation), then 10
# epochs of network and head together at 3e-4 (two stages: the head trained alongside from the
# first epoch learnt less, and the network's R1 with it); the head's windows as the demo's: 2
# without the moment per window with it, half with a similar event of another video, 3 in the
# continuous windows of videos longer than a window, and one absent sentence mined per annotation
# from the other videos' sentences (half of them the most alike to the video's own). Batch 32 (the
# demo's). Measured through `cmagrounding train` in docs/training.md ("Own data"); a CPU budget,
# not a tuned optimum.
_OWN_HEAD = HeadSettings(enabled=True, windows=ConfidenceSettings(negative_ratio=2.0, hard_fraction=0.5),
                         long_negative_ratio=3.0, stage_epochs=10, stage_lr=3e-4, mined_absent=1.0,
                         mined_hard_fraction=0.5)
_OWN_EPOCHS = 40
# crops per annotation: with 4 instead of 2, 400 generated videos gave R1@0.5 0.40 (two seeds)
# instead of 0.30 on fresh ones (docs/training.md, "One training path", measured); an epoch
# of the first stage costs 5/3 as much
_OWN_CROPS = 4

# The demo model's (docs/demo.md; tools/demo/build.py runs it on generated videos): the own-data
# structure at N = 24 clips (the longest 16-24 s training video), sentences up to 10 words, no
# feed-forward block; trained 60 epochs, batch 32, best epoch by validation R1@0.5. Its head sees
# the joined windows of the short videos and the continuous windows of the optional long split
# (3 without the moment per window with it), and absent sentences (80 % around the most similar event).
_DEMO_MODEL = {
    "word_dim": 64, "num_clips": 24, "max_words": 10, "hidden": 128, "lstm_hidden": 64, "lstm_layers": 2,
    "spe_hidden": 64, "head_hidden": 128, "ffn_dim": 0, "num_phrases": 1, "num_heads": 4,
    "encoder_layers": 2, "decoder_layers": 2, "dropout": 0.1, "input_dropout": 0.3, "freeze_embeddings": False,
}
_DEMO_HEAD = HeadSettings(enabled=True, windows=ConfidenceSettings(negative_ratio=2.0, hard_fraction=0.5),
                          long_negative_ratio=3.0, absent_hard_fraction=0.8)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe("charades-simple", "Charades-STA, simple model (K = 1)", "charades-sta", "charades-simple",
               train=_CHARADES_TRAIN, paper=_paper(71.38, 57.56, 35.18, 50.01), source="Table 1, Ours", glove=GLOVE_FILE),
        Recipe("charades-full", "Charades-STA, full model (K = 3 phrases)", "charades-sta", "charades-full",
               train=_CHARADES_TRAIN, paper=_paper(72.20, 59.81, 37.72, 51.04), source="Table 1, Ours+", glove=GLOVE_FILE),
        Recipe("activitynet-simple", "ActivityNet Captions, simple model (K = 1)", "activitynet-captions",
               "activitynet-simple", train=_ANET_TRAIN, paper=_paper(58.67, 41.43, 23.59, 41.23),
               source="Table 2, Ours", hdf5_key="c3d_features", glove=GLOVE_FILE),
        Recipe("activitynet-full", "ActivityNet Captions, full model (K = 5 phrases)", "activitynet-captions",
               "activitynet-full", train=_ANET_TRAIN, paper=_paper(59.10, 41.93, 24.23, 41.96),
               source="Table 2, Ours+", hdf5_key="c3d_features", glove=GLOVE_FILE),
        _charades_ablation("charades-encoder-only", "Table 3", 51.16, "encoder only", {"structure": "encoder_only"}),
        _charades_ablation("charades-decoder-only", "Table 3", 55.81, "decoder only", {"structure": "decoder_only"}),
        _charades_ablation("charades-pe-none", "Table 4", 53.63, "no position encoding", {"position": "none"}),
        _charades_ablation("charades-pe-learned", "Table 4", 56.29, "learned position embedding", {"position": "learned"}),
        _charades_ablation("charades-fusion-add", "Table 5", 53.42, "addition fusion", {"fusion": "add"}),
        _charades_ablation("charades-fusion-concat", "Table 5", 56.45, "concatenation fusion", {"fusion": "concat"}),
        _charades_ablation("charades-loss-smoothl1", "Table 6", 56.45, "SmoothL1 regression loss",
                           loss={"kind": "smooth_l1", "alpha": 0.5, "beta": 1.0}),
        _charades_ablation("charades-loss-a2-b0.1", "Table 6", 56.59, "task loss alpha 2, beta 0.1",
                           loss={"alpha": 2.0, "beta": 0.1}),
        _charades_ablation("charades-loss-a2-b0.2", "Table 6", 57.07, "task loss alpha 2, beta 0.2",
                           loss={"alpha": 2.0, "beta": 0.2}),
        _unstated_variant("charades", "ffn", "a 1,024-wide feed-forward sublayer in every attention block",
                          {"ffn_dim": 1024}),
        _unstated_variant("charades", "fusion-lgi", "LGI's projected Hadamard fusion", {"fusion_projection": "lgi"}),
        _unstated_variant("charades", "relu", "a ReLU span head (LGI on Charades-STA)", {"span_activation": "relu"}),
        _unstated_variant("activitynet", "ffn", "a 1,024-wide feed-forward sublayer in every attention block",
                          {"ffn_dim": 1024}),
        _unstated_variant("activitynet", "fusion-lgi", "LGI's projected Hadamard fusion", {"fusion_projection": "lgi"}),
        Recipe("synthetic", "synthetic feature-space grounding task (no outside data; proves learning)",
               "synthetic", None, model=_SYNTHETIC_MODEL, loss={"alpha": 10.0, "beta": 0.1},
               train=TrainConfig(epochs=12, batch_size=100, lr=1e-3, eval_batch_size=500, time_limit=170.0,
                                 num_threads=1),  # a tiny model: one thread is as fast and immune to load
               val="val", synthetic=_SYNTHETIC, tokenizer_style="lgi"),
        Recipe("own-data", "own videos or features (train/val/test.jsonl): a small CMA, word embeddings learned, "
               "standardized inputs, a confidence head and window settings for long videos",
               "jsonl", None, model=_OWN_MODEL, loss={"alpha": 10.0, "beta": 0.1},
               train=TrainConfig(epochs=_OWN_EPOCHS, batch_size=32, lr_schedule="cosine"), val="val", standardize=True,
               crops=_OWN_CROPS, head=_OWN_HEAD),
        Recipe("demo", "the demo model (generated videos of coloured shapes; tools/demo/build.py makes its data)",
               "jsonl", None, model=_DEMO_MODEL, loss={"kind": "task", "alpha": 10.0, "beta": 0.1},
               train=TrainConfig(epochs=60, batch_size=32, lr=1e-3, seed=0, select_metric="R1@0.5"), val="val",
               standardize=True, head=_DEMO_HEAD),
    ]
}


# The field's other releases (loaded by :mod:`cmagrounding.training.annotations`). The paper reports neither;
# fallbacks, stated in each description: the paper's model and LGI's protocol (best epoch on the
# split scored) with the settings of the paper's dataset that is most alike. Not paper rows, so
# the additions are on as in own-data (standardized inputs, crops (2: own-data's 4 were measured on
# 400-800 generated videos only), the head in a second stage, window settings): the first stage is
# the paper's network trained as the paper's presets are.
RECIPES.update({
    r.name: r
    for r in [
        # QVHighlights: 150-s videos like Charades-STA's ~30-s ones are short, moments ~24 s; its test
        # answers are hidden, so val is the split scored (as Moment-DETR reports). 200 epochs: Moment-DETR's.
        Recipe("qvhighlights-simple", "QVHighlights, simple model (K = 1); fallback: Charades-STA's settings, "
               "200 epochs (Moment-DETR's), scored on val (test answers are hidden); with own-data's additions "
               "(a confidence head in a second stage, crops, standardized inputs)", "qvhighlights",
               "charades-simple", train=TrainConfig(epochs=200), test_split="val", glove=GLOVE_FILE,
               standardize=True, crops=2, head=_OWN_HEAD),
        # TACoS (2D-TAN's release): long cooking videos (~5 min) with short moments, like ActivityNet's.
        Recipe("tacos-simple", "TACoS, simple model (K = 1); fallback: ActivityNet Captions' settings "
               "(long videos); with own-data's additions (a confidence head in a second stage, crops, standardized "
               "inputs)", "tacos", "activitynet-simple", train=_ANET_TRAIN, glove=GLOVE_FILE,
               standardize=True, crops=2, head=_OWN_HEAD),
    ]
})


def require_word_vectors(recipe: Recipe, glove: Any) -> None:
    """Refuse a run of a recipe that expects GloVe without it, unless it learns the embeddings.

    Without the vectors the embeddings start random; frozen (``freeze_embeddings``, the paper
    presets' default) they would stay noise for the whole run. Raises
    :class:`~cmagrounding.errors.ConfigError` naming the option and the file expected.
    """
    if recipe.glove is None or glove is not None:
        return
    from cmagrounding.model.config import CMAConfig
    from cmagrounding.model.presets import get_preset

    default = get_preset(recipe.preset).model.freeze_embeddings if recipe.preset else CMAConfig.freeze_embeddings
    frozen = recipe.model.get("freeze_embeddings", default)
    if frozen:
        raise ConfigError(
            f"recipe {recipe.name!r} expects GloVe word vectors: pass --glove PATH/{recipe.glove} (run_recipe: "
            f"glove=...); without them the frozen word embeddings would stay random noise. To learn the embeddings "
            f"from random instead, say so: --set model.freeze_embeddings=false"
        )


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """A fresh copy of the named recipe."""
    try:
        return Recipe.from_dict(RECIPES[name].to_dict())
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}; choose one of {recipe_names()}") from None
