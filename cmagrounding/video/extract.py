"""Extract the features of many videos into one folder: a file and a JSON sidecar per video, an index.

For each video ``NAME.npy`` (float32 (n, D)) or ``NAME.safetensors`` (``VideoFeatures``) and
``NAME.json`` (source, duration, each row's (start, end) seconds, settings) are written atomically;
the sidecar is written last, so its presence marks the video finished. ``index.json`` lists every
finished video, every failure and the extraction settings. Finished videos are skipped when the
extraction is run again (resume); a broken video is recorded in its sidecar and skipped, the batch
goes on. With ``rank``/``world_size`` each process takes every world-size-th video of the sorted list,
and every process rebuilds the index from all the sidecars it finds. ``cmagrounding extract-features``
is the command line over :func:`extract_folder`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from cmagrounding._io import remove_stale_temporaries, save_npy_atomic, write_json_atomic, write_text_atomic
from cmagrounding._strict_json import read as strict_read
from cmagrounding.errors import ConfigError, DatasetError, ExtractorMismatchError, VideoError
from cmagrounding.video.config import VideoConfig

if TYPE_CHECKING:
    from cmagrounding.video.encoder import VideoEncoder
    from cmagrounding.video.features import VideoFeatures

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
INDEX_NAME = "index.json"
FORMATS = {"npy": ".npy", "safetensors": ".safetensors"}


def collect_videos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files, folders (recursively) and .txt lists of paths into a sorted, de-duplicated list.

    A listed file that does not exist is kept: it is reported as that video's failure, not here.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(q for q in p.rglob("*") if q.is_file() and q.suffix.lower() in VIDEO_EXTENSIONS)
        elif p.suffix.lower() == ".txt" and p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    q = Path(line)
                    out.append(q if q.is_absolute() else p.parent / q)
        else:
            out.append(p)
    seen: set[str] = set()
    unique = []
    for p in out:
        key = str(p.resolve()) if p.exists() else str(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return sorted(unique, key=str)


def output_names(videos: list[Path]) -> dict[Path, str]:
    """A file stem per video: its own stem, plus a short hash of its path where stems collide."""
    counts: dict[str, int] = {}
    for v in videos:
        counts[v.stem] = counts.get(v.stem, 0) + 1
    return {
        v: v.stem if counts[v.stem] == 1 else f"{v.stem}-{hashlib.sha1(str(v.resolve()).encode()).hexdigest()[:8]}"
        for v in videos
    }


@dataclass(frozen=True)
class Shard:
    """This process's share: every ``world_size``-th video from ``rank``; ``local_rank`` picks its GPU."""

    rank: int = 0
    world_size: int = 1
    local_rank: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} is not in [0, {self.world_size})")

    @classmethod
    def from_env(cls, rank: int | None = None, world_size: int | None = None) -> Shard:
        """torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, each overridden when given."""
        env = os.environ
        return cls(
            rank=int(env.get("RANK", 0)) if rank is None else rank,
            world_size=int(env.get("WORLD_SIZE", 1)) if world_size is None else world_size,
            local_rank=int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env else None,
        )


def write_index(out_dir: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Rebuild ``index.json`` from every per-video sidecar in ``out_dir`` (all shards); atomic."""
    videos, failed, damaged = {}, {}, {}
    for side in sorted(out_dir.glob("*.json")):
        if side.name == INDEX_NAME or side.name.startswith("."):  # dot-names: another shard's half-written file
            continue
        try:
            meta = strict_read(side, DatasetError, "sidecar")
        except DatasetError:  # unreadable or refused (a key twice, deep nesting): that video counts as not done
            continue
        if not isinstance(meta, dict):
            continue
        if meta.get("kind") == "features":
            videos[meta["name"]] = {k: meta[k] for k in ("source", "file", "duration", "num_features", "feature_dim")}
            if meta.get("damage"):  # decoded despite damage: which, how much was lost and where
                damaged[meta["name"]] = {"source": meta["source"], **meta["damage"]}
        elif meta.get("kind") == "failure":
            failed[meta["name"]] = {"source": meta["source"], "error": meta["error"], "type": meta["type"]}
    index = {"settings": settings, "videos": videos, "failed": failed, "damaged": damaged}
    write_json_atomic(out_dir / INDEX_NAME, index, indent=1, sort_keys=True)
    return index


def settings_clash(out_dir: Path, config: VideoConfig) -> list[str]:
    """``"field: <there> vs <now>"`` for each setting in which ``config`` differs from the settings
    recorded in ``out_dir``'s index (none when there is no readable index)."""
    index = out_dir / INDEX_NAME
    if not index.is_file():
        return []
    try:
        previous = VideoConfig.from_dict(strict_read(index, DatasetError, "extract-features index")["settings"])
    except Exception:  # noqa: BLE001 - an unreadable index is rebuilt, not trusted
        return []
    return previous.describe_mismatches(config)


def is_finished(feat_path: Path, side_path: Path) -> bool:
    """Whether a video's feature file and its "features" sidecar are both there (a damaged sidecar: no)."""
    if not (feat_path.is_file() and side_path.is_file()):
        return False
    try:
        meta = strict_read(side_path, DatasetError, "sidecar")
    except DatasetError:
        return False
    return isinstance(meta, dict) and meta.get("kind") == "features"


def failure_sidecar(name: str, video: Path, exc: Exception) -> dict[str, Any]:
    """The sidecar of a video that could not be extracted."""
    return {"kind": "failure", "name": name, "source": str(video), "type": type(exc).__name__, "error": str(exc)}


def features_sidecar(name: str, video: Path, feat_path: Path, feats: VideoFeatures, settings: dict[str, Any]) -> dict[str, Any]:
    """The sidecar of a finished video: where its features are, their shape, each row's seconds."""
    return {
        "kind": "features", "name": name, "source": str(video), "file": feat_path.name,
        "duration": feats.duration, "num_features": int(feats.features.shape[0]),
        "feature_dim": int(feats.features.shape[1]), "times": feats.times.tolist(), "config": settings,
        "damage": feats.damage,  # None, or the frames lost (count, seconds) of a damaged video
    }  # fmt: skip


@dataclass
class ExtractionSummary:
    """What one process did: videos extracted, skipped as already done, failed; the rebuilt index.
    ``damaged``: how many of the extracted videos lost frames to damage (``index["damaged"]`` says which)."""

    extracted: int
    skipped: int
    failed: int
    seconds: float
    index: dict[str, Any]
    damaged: int = 0


def estimate_clips(videos: list[Path], config: VideoConfig, sample: int = 8) -> int:
    """About how many clips ``videos`` give under ``config``: ``sample`` of them probed, the mean
    scaled to all (a hint for the runtime, never an error: unreadable ones count as the mean)."""
    from cmagrounding.video.container import probe
    from cmagrounding.video.encoder import clip_count

    if config.scheme == "uniform_clips":
        return len(videos) * int(config.num_clips)
    picked = videos[:: max(1, len(videos) // sample)][:sample]
    counts = []
    for v in picked:
        try:
            counts.append(clip_count(probe(v), config))
        except Exception:  # noqa: BLE001 - a bad video is reported when it is extracted
            continue
    return int(round(np.mean(counts) * len(videos))) if counts else 0


def extract_folder(
    inputs: Iterable[str | os.PathLike],
    output_dir: str | os.PathLike,
    encoder: VideoEncoder,
    *,
    shard: Shard | None = None,
    fmt: str = "npy",
    overwrite: bool = False,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract this shard's videos of ``inputs`` with ``encoder`` into ``output_dir`` (see the module).

    Raises ``DatasetError`` when ``inputs`` hold no video, ``ExtractorMismatchError`` when
    ``output_dir`` holds features made with other settings (unless ``overwrite``), ``ConfigError``
    for an unknown ``fmt``. A video that fails to decode is recorded, not raised.
    """
    from tqdm.auto import tqdm

    shard = shard or Shard()
    if fmt not in FORMATS:
        raise ConfigError(f"feature format must be one of {sorted(FORMATS)}, got {fmt!r}")
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # what an extraction killed mid-write (kill -9) left
    inputs = [str(i) for i in inputs]
    videos = collect_videos(inputs)
    if not videos:
        raise DatasetError("no videos found in " + ", ".join(inputs))
    names = output_names(videos)  # from the whole list, so every shard names each video alike
    clash = settings_clash(out_dir, encoder.config)
    if clash and not overwrite:
        raise ExtractorMismatchError(
            f"{out_dir} holds features made with other settings (there vs now: {'; '.join(clash)}); "
            "use another --output-dir, or --overwrite to re-extract everything"
        )
    settings = encoder.config.to_dict()
    done = failed = skipped = damaged = 0
    start = time.perf_counter()
    mine = videos[shard.rank :: shard.world_size]
    todo = [v for v in mine if overwrite or not is_finished(out_dir / f"{names[v]}{FORMATS[fmt]}", out_dir / f"{names[v]}.json")]
    if todo:
        encoder.expect_clips(estimate_clips(todo, encoder.config))
    desc = f"extract[{shard.rank}/{shard.world_size}]" if shard.world_size > 1 else "extract"
    bar = tqdm(mine, desc=desc, unit="video", disable=not progress)
    for video in bar:
        name = names[video]
        feat_path, side_path = out_dir / f"{name}{FORMATS[fmt]}", out_dir / f"{name}.json"
        if not overwrite and is_finished(feat_path, side_path):
            skipped += 1
            continue
        try:
            feats = encoder.encode(video)
        except VideoError as exc:  # a broken video: report, record, go on
            failed += 1
            logger.warning("skipped: %s", exc)
            write_text_atomic(side_path, json.dumps(failure_sidecar(name, video, exc)))
            continue
        if fmt == "npy":
            save_npy_atomic(feat_path, feats.features)
        else:
            feats.save(feat_path)
        write_text_atomic(side_path, json.dumps(features_sidecar(name, video, feat_path, feats, settings)))  # last
        done += 1
        damaged += feats.damage is not None
    bar.close()
    index = write_index(out_dir, settings)
    return ExtractionSummary(done, skipped, failed, time.perf_counter() - start, index, damaged)
