"""Typed configurations of the CMA network and its losses, serializable to JSON.

Every field says where its default comes from: "paper" (cma-paper.txt, Sections 3-4) or
"fallback (LGI)" / "fallback" where the paper is silent (LGI's public code and configs; docs/architecture.md lists each).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cmagrounding.errors import ConfigError

T = TypeVar("T", bound="_JsonConfig")

FUSIONS = ("hadamard", "concat", "add")
STRUCTURES = ("full", "encoder_only", "decoder_only")
POSITIONS = ("none", "learned", "sincos")
LOSS_KINDS = ("task", "smooth_l1")
FUSION_PROJECTIONS = ("plain", "lgi")
SPAN_ACTIVATIONS = ("sigmoid", "relu")


class _JsonConfig:
    """to_dict / from_dict / JSON for a dataclass; unknown keys are an error, not ignored."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, data)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls: type[T], text_or_path: str | Path) -> T:
        p = Path(text_or_path)
        text = p.read_text(encoding="utf-8") if p.suffix == ".json" and p.exists() else str(text_or_path)
        from cmagrounding._strict_json import loads

        return cls.from_dict(loads(text, f"invalid {cls.__name__} JSON ({text_or_path})", ConfigError))

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {list(choices)}")


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass
class CMAConfig(_JsonConfig):
    """The CMA network (Sections 3.2-3.4).

    Shapes: B batch, N clips (``num_clips``), L words (<= ``max_words``), D = ``hidden``,
    K = ``num_phrases``.
    """

    # input sizes
    video_dim: int = 1024  # d_v: I3D Mixed_5c for Charades-STA (paper); 500 for ActivityNet C3D+PCA
    vocab_size: int = 1140  # paper: 1,140 words for Charades-STA
    word_dim: int = 300  # paper: GloVe 300-d
    num_clips: int = 128  # N, paper
    max_words: int = 10  # paper: 10 (Charades-STA), 25 (ActivityNet Captions)
    # widths
    hidden: int = 512  # d; paper's BiLSTM gives 2 x 256 = 512, which the fusions need equal to d
    lstm_hidden: int = 256  # paper
    lstm_layers: int = 2  # paper
    spe_hidden: int = 256  # d_s of Eq. 7; fallback (LGI-sized)
    # Feed-forward width inside each attention block; 0 = none. Fallback: the paper says
    # "transformer" but shows SA / BA blocks without a feed-forward sublayer and claims under half
    # of LGI's parameters (33.8 M / 53.6 M); a 1024-wide feed-forward in every block would give
    # 23.0 M (charades-simple) / 27.5 M (activitynet-full), over half. Recipes *-ffn try it.
    ffn_dim: int = 0
    head_hidden: int = 512  # hidden width of the regression MLP, Eq. 20; fallback (LGI 512 -> 512 -> 2)
    # Activation of Eq. 20's MLP output before the span is ordered. Fallback: "sigmoid" keeps the
    # span inside (0, 1) (LGI on ActivityNet); LGI uses "relu" on Charades-STA (span in [0, inf),
    # clipped to the video at the facade and at scoring). The paper is silent.
    span_activation: str = "sigmoid"
    # structure
    num_phrases: int = 1  # K; 1 is the simple model (uses s_global, Eq. 12); fallback K = 3 / 5 for "+"
    fusion: str = "hadamard"  # paper: Hadamard best, Table 5
    # Hadamard fusion's form. Fallback "plain": f_u(v, g) = v * g as Eq. 9 reads; "lgi": LGI's
    # "mul" fusion relu(W3 (relu(W1 v) * relu(W2 g))), whose Table 5 options CMA copies. Only for
    # "hadamard": "concat" already uses LGI's projection and LGI's "add" has none.
    fusion_projection: str = "plain"
    structure: str = "full"  # paper: encoder + decoder best, Table 3
    position: str = "sincos"  # paper: sin/cos best, Table 4
    num_heads: int = 4  # paper
    encoder_layers: int = 2  # paper
    decoder_layers: int = 2  # paper
    # regularization
    dropout: float = 0.1  # inside attention blocks; fallback (Transformer default)
    input_dropout: float = 0.5  # after the video embedding and between LSTM layers; fallback (LGI)
    freeze_embeddings: bool = True  # GloVe kept fixed; fallback (paper is silent)
    # addition to the paper (docs/architecture.md): a head on f (Eq. 19) giving one logit for "the
    # moment is in these clips"; off in every paper preset, so Tables 1-6 keep the paper's model
    confidence_head: bool = False
    confidence_hidden: int = 128  # hidden width of its MLP

    def __post_init__(self) -> None:
        _check_choice("fusion", self.fusion, FUSIONS)
        _check_choice("structure", self.structure, STRUCTURES)
        _check_choice("position", self.position, POSITIONS)
        _check_choice("fusion_projection", self.fusion_projection, FUSION_PROJECTIONS)
        _check_choice("span_activation", self.span_activation, SPAN_ACTIVATIONS)
        if self.fusion_projection != "plain" and self.fusion != "hadamard":
            raise ConfigError(
                f"fusion_projection {self.fusion_projection!r} applies to fusion 'hadamard' only, not "
                f"{self.fusion!r} ('concat' already has LGI's projection, 'add' has none in LGI)"
            )
        if not isinstance(self.num_phrases, int) or self.num_phrases < 1:
            raise ConfigError(f"num_phrases (K) must be an integer >= 1, got {self.num_phrases!r}")
        _check_positive(
            video_dim=self.video_dim, vocab_size=self.vocab_size, word_dim=self.word_dim,
            num_clips=self.num_clips, max_words=self.max_words, hidden=self.hidden,
            lstm_hidden=self.lstm_hidden, lstm_layers=self.lstm_layers, spe_hidden=self.spe_hidden,
            head_hidden=self.head_hidden, num_heads=self.num_heads, confidence_hidden=self.confidence_hidden,
        )
        if not isinstance(self.confidence_head, bool):
            raise ConfigError(f"confidence_head must be true or false, got {self.confidence_head!r}")
        if self.ffn_dim < 0:
            raise ConfigError(f"ffn_dim must be >= 0 (0 = no feed-forward), got {self.ffn_dim!r}")
        if self.encoder_layers < 0 or self.decoder_layers < 0:
            raise ConfigError("encoder_layers and decoder_layers must be >= 0")
        if 2 * self.lstm_hidden != self.hidden:
            raise ConfigError(
                f"hidden ({self.hidden}) must equal 2 x lstm_hidden ({2 * self.lstm_hidden}): the "
                "BiLSTM's word features (Eq. 5) are fused with video features of width hidden"
            )
        if self.hidden % self.num_heads:
            raise ConfigError(f"hidden ({self.hidden}) must be divisible by num_heads ({self.num_heads})")
        for name in ("dropout", "input_dropout"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"{name} must lie in [0, 1), got {v!r}")


@dataclass
class LossConfig(_JsonConfig):
    """The training losses (Eq. 21-26)."""

    kind: str = "task"  # "task": Eq. 24 (paper); "smooth_l1": Eq. 23 (Table 6 ablation)
    alpha: float = 10.0  # paper: 10 (Charades-STA), 2 (ActivityNet Captions)
    beta: float = 0.1  # paper: 0.1 (Charades-STA), 0.4 (ActivityNet Captions)
    lambda_ta: float = 1.0  # paper, Eq. 21
    lambda_sd: float = 1.0  # paper, Eq. 21
    # addition to the paper: weight of the confidence head's binary cross-entropy (used only when
    # the network has the head, see cmagrounding.model.confidence)
    confidence_weight: float = 1.0

    KINDS: ClassVar[tuple[str, ...]] = LOSS_KINDS

    def __post_init__(self) -> None:
        _check_choice("loss kind", self.kind, LOSS_KINDS)
        _check_positive(alpha=self.alpha, beta=self.beta)
        if self.lambda_ta < 0 or self.lambda_sd < 0:
            raise ConfigError("lambda_ta and lambda_sd must be >= 0")
        if not self.confidence_weight >= 0:
            raise ConfigError(f"confidence_weight must be >= 0, got {self.confidence_weight!r}")


@dataclass
class Preset:
    """A named model + loss configuration."""

    name: str
    model: CMAConfig
    loss: LossConfig
    description: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
