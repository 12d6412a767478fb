"""``cmagrounding info MODEL``: what a pretrained folder (or hub id) holds, read without running it.

Prints first what the model is for (its domain, intended use and vocabulary's origin; a
demonstration model says so), then the format version, files, network configuration and parameter count (from the
safetensors header), the extraction settings and extractor weights, the tokenizer, and the
recorded metrics. ``--check`` also loads the model strictly, as ``Grounder.from_pretrained`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from cmagrounding.errors import CMAGroundingError
from cmagrounding.model_card import ModelCard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="pretrained folder or hub id (org/name)")
    parser.add_argument("--revision", default=None, help="hub revision (branch, tag or commit)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--check", action="store_true", help="also load the model strictly")


def describe(model: str, revision: str | None = None, check: bool = False) -> dict:
    """A JSON-ready summary of a pretrained model (see the module docstring)."""
    from cmagrounding import _io, _pretrained

    folder = _pretrained.resolve(model, revision)
    config = _pretrained.read_config(folder)
    card = _pretrained.card_of(config, str(folder / _pretrained.CONFIG_FILE))
    shapes = _io.safetensors_shapes(folder / _pretrained.WEIGHTS_FILE)
    prefix = _pretrained.EXTRACTOR_PREFIX
    net = {k: s for k, s in shapes.items() if not k.startswith(prefix)}
    info = {
        "card": card.to_dict(),
        "folder": str(folder),
        "format_version": config["format_version"],
        "library_version": config.get("library_version"),
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()},
        "parameters": {
            "network_tensors": len(net),
            "network_values": sum(math.prod(s) for s in net.values()),
            "embedded_extractor_values": sum(math.prod(s) for k, s in shapes.items() if k.startswith(prefix)),
        },
        "model": config["model"],
        "video": config["video"],
        "extractor_weights": config.get("extractor_weights"),
        "text": config["text"],
        "windows": config.get("windows"),
        "metrics": config.get("metrics", {}),
        "recipe": config.get("recipe", {}),
    }
    if check:
        from cmagrounding.grounder import Grounder

        info["check"] = repr(Grounder.from_pretrained(folder, device="cpu"))
    return info


def run(args: argparse.Namespace) -> int:
    try:
        info = describe(args.model, args.revision, args.check)
    except CMAGroundingError as e:
        print(f"cmagrounding info: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    m, v, t, p = info["model"], info["video"], info["text"], info["parameters"]
    w = info["extractor_weights"] or {}
    card = ModelCard.from_dict(info["card"])
    print(f"{args.model}  ->  {info['folder']}")
    print(f"  domain: {card.summary}" + ("  [DEMONSTRATION MODEL: not for real footage]" if card.demo else ""))
    if card.intended_use:
        print(f"  intended use: {card.intended_use}")
    if card.vocabulary:
        print(f"  vocabulary: {card.vocabulary}")
    print(f"  format version {info['format_version']}, written by cmagrounding {info['library_version']}")
    print("  files: " + ", ".join(f"{k} ({n:,} B)" for k, n in info["files"].items()))
    print(
        f"  network: K={m.get('num_phrases')} phrases, structure={m.get('structure')}, fusion={m.get('fusion')}"
        f"{'' if m.get('fusion_projection', 'plain') == 'plain' else ' (' + m['fusion_projection'] + ' projection)'}, "
        f"span activation={m.get('span_activation', 'sigmoid')}, feed-forward={m.get('ffn_dim', 0)}, "
        f"position={m.get('position')}, hidden={m.get('hidden')}, N={m.get('num_clips')} clips, "
        f"video_dim={m.get('video_dim')}; {p['network_values']:,} values in {p['network_tensors']} tensors"
    )
    print("  extraction: " + ", ".join(f"{k}={val}" for k, val in v.items()))
    if w.get("storage") == "reference":
        print(f"  extractor weights: {w.get('source')} (sha256 {w.get('sha256')})")
    elif w.get("storage") == "embedded":
        print(f"  extractor weights: embedded, {p['embedded_extractor_values']:,} values")
    else:
        print("  extractor weights: none (precomputed features)")
    print(f"  query: {t.get('style')} tokenizer, {t.get('vocab_size')} entries, at most {t.get('max_words')} words")
    w = info["windows"]
    if w:
        d = w.get("trained_durations") or {}
        trained = f"trained on {d['min']:g}-{d['max']:g} s videos (median {d['median']:g} s); " if d else ""
        longer = w.get("when_longer_than")
        print(f"  long videos: {trained}windows of {w['size_seconds']:g} s every {w['stride_seconds']:g} s, NMS IoU "
              f"{w['nms_iou']:g}" + (f", for videos over {longer:g} s" if longer is not None else ", only when asked"))
    else:
        print("  long videos: no window settings recorded (every video runs whole unless window= is given)")
    if info["metrics"]:
        print("  metrics: " + ", ".join(f"{k}={val}" for k, val in info["metrics"].items()))
    if "check" in info:
        print(f"  check: loads strictly -> {info['check']}")
    return 0
