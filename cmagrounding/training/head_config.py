"""Settings of the confidence head's part of a recipe (an addition to the paper), torch-free so that
a recipe can be read without it: the window draw (:class:`ConfidenceSettings`), the head
(:class:`HeadSettings`) and the rule that turns training durations into a model's window settings
(:class:`WindowRule`). The code that uses them: :mod:`cmagrounding.training.confidence_data`,
:mod:`cmagrounding.training.head`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from cmagrounding.errors import ConfigError

__all__ = ["ConfidenceSettings", "HeadSettings", "WindowRule"]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)  # NaN passes here, fails every comparison


@dataclass
class ConfidenceSettings:
    """How the confidence head's windows are drawn (saved with the checkpoint's recipe).

    ``positives`` windows with the moment per training annotation; ``negative_ratio`` negatives per
    positive (a fractional part is drawn at random); ``min_other`` rows at least from the other
    video in each window; window lengths are drawn uniformly from ``[min_rows, max_rows]`` (None:
    the shortest and longest training video, in rows).
    """

    positives: int = 1
    negative_ratio: float = 1.0
    min_other: int = 2
    min_own: int = 2  # rows at least from the sentence's own video in a negative
    min_rows: int | None = None
    max_rows: int | None = None
    seed: int = 0
    hard_fraction: float = 0.0  # share of windows whose other segment holds a similar event
    hard_overlap: float = 0.5  # word-set Jaccard from which a sentence counts as similar
    partial_fraction: float = 0.0  # share of negatives that hold part of the moment (cut at a window edge)
    partial_max: float = 0.5  # at most this share of the moment's rows in a partial negative

    def __post_init__(self) -> None:
        if isinstance(self.positives, bool) or not isinstance(self.positives, int) or self.positives < 0:
            raise ConfigError(f"confidence positives per annotation must be an integer >= 0, got {self.positives!r}")
        if not (isinstance(self.negative_ratio, (int, float)) and self.negative_ratio >= 0) or isinstance(
            self.negative_ratio, bool
        ):
            raise ConfigError(f"confidence negative_ratio must be a number >= 0, got {self.negative_ratio!r}")
        for name in ("min_other", "min_own"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"confidence {name} must be >= 1 row, got {getattr(self, name)!r}")
        for name in ("hard_fraction", "hard_overlap", "partial_fraction", "partial_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"confidence {name} must be a number in [0, 1], got {v!r}")
        if self.min_rows is not None and self.max_rows is not None and self.min_rows > self.max_rows:
            raise ConfigError(f"confidence min_rows {self.min_rows} > max_rows {self.max_rows}")

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass
class WindowRule:
    """How a trained model's window settings follow from its training durations
    (:meth:`cmagrounding.windows.WindowSettings.from_trained_durations`): windows of the median
    training duration (whole rows) every ``stride_fraction`` of it, for videos longer than
    ``longer_than`` x the longest training video."""

    stride_fraction: float = 0.25  # a quarter: every moment up to 3/4 of a window lies wholly in one
    nms_iou: float = 0.5
    longer_than: float = 1.5

    def __post_init__(self) -> None:
        for name in ("stride_fraction", "nms_iou"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < v <= 1.0:
                raise ConfigError(f"windows {name} must be a number in (0, 1], got {v!r}")
        if isinstance(self.longer_than, bool) or not isinstance(self.longer_than, (int, float)) or self.longer_than < 1:
            raise ConfigError(f"windows longer_than must be a number >= 1, got {self.longer_than!r}")


@dataclass
class HeadSettings:
    """The confidence head of a recipe (off: the paper's network, as the paper presets build it).

    ``hidden``: width of its MLP (``CMAConfig.confidence_hidden``); ``windows``: the draw of the
    joined and continuous windows (:class:`ConfidenceSettings`; ``max_rows`` None = N clips);
    ``long_negative_ratio``: negatives per positive in the continuous windows of videos longer than
    a window (None: ``windows.negative_ratio``); ``absent_hard_fraction``: share of the absent
    sentences' windows placed around the video's most similar event; ``head_only_epochs``: epochs
    of ``train --head-only`` when ``--epochs`` is not given.

    ``stage_epochs`` > 0 trains in two stages (docs/training.md, "Two stages"): the network alone
    on the annotations and crops for ``TrainConfig.epochs`` (best epoch by validation), then
    ``stage_epochs`` more of the network and the head together on the annotations, crops and the
    head's windows at learning rate ``stage_lr`` (the last epoch kept). 0: the head trains
    alongside the network from the first epoch.

    ``mined_absent``: absent sentences mined per training annotation (the ``--absent`` file's
    windows without a file): sentences of other training videos whose words are not those of any
    sentence of the video, ``mined_hard_fraction`` of them the most alike to its own (e.g. its own
    shapes doing something else). An approximation: a video's annotations are taken to name every
    event in it, as the user's ``--absent`` file is taken to be right.
    """

    enabled: bool = False
    hidden: int = 128
    windows: ConfidenceSettings = field(default_factory=ConfidenceSettings)
    long_negative_ratio: float | None = None
    absent_hard_fraction: float = 0.5
    head_only_epochs: int = 10
    stage_epochs: int = 0
    stage_lr: float = 3e-4
    mined_absent: float = 0.0
    mined_hard_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"head enabled must be true or false, got {self.enabled!r}")
        if isinstance(self.windows, Mapping):
            self.windows = ConfidenceSettings(**self.windows)
        if self.long_negative_ratio is not None and not self.long_negative_ratio >= 0:
            raise ConfigError(f"head long_negative_ratio must be >= 0, got {self.long_negative_ratio!r}")
        if not 0.0 <= self.absent_hard_fraction <= 1.0:
            raise ConfigError(f"head absent_hard_fraction must be in [0, 1], got {self.absent_hard_fraction!r}")
        if isinstance(self.head_only_epochs, bool) or not isinstance(self.head_only_epochs, int) or self.head_only_epochs < 1:
            raise ConfigError(f"head head_only_epochs must be an integer >= 1, got {self.head_only_epochs!r}")
        if isinstance(self.stage_epochs, bool) or not isinstance(self.stage_epochs, int) or self.stage_epochs < 0:
            raise ConfigError(f"head stage_epochs must be an integer >= 0, got {self.stage_epochs!r}")
        if not (_is_number(self.stage_lr) and self.stage_lr > 0):
            raise ConfigError(f"head stage_lr must be a number > 0, got {self.stage_lr!r}")
        if not (_is_number(self.mined_absent) and self.mined_absent >= 0):
            raise ConfigError(f"head mined_absent must be a number >= 0, got {self.mined_absent!r}")
        if not (_is_number(self.mined_hard_fraction) and 0 <= self.mined_hard_fraction <= 1):
            raise ConfigError(f"head mined_hard_fraction must be a number >= 0 and <= 1, got {self.mined_hard_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> "HeadSettings":
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, d, "recipe head", convert={"windows": lambda w: ConfidenceSettings(**w)})
