"""From a video file to ``VideoFeatures``: decode, assemble clips, run the extractor in batches.

Decoding and clip assembly run in a background thread that stays ``prefetch`` batches ahead of the
model, so decoding overlaps with compute (PyAV and PyTorch both release the GIL in their heavy
parts). Memory is bounded by those few batches of uint8 clips, whatever the video's length.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from cmagrounding.errors import VideoError
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.decode import (
    DEFAULT_MIN_DECODED_FRACTION,
    DecodeReport,
    VideoInfo,
    iter_frames,
    num_output_frames,
    probe,
)
from cmagrounding.video.features import VideoFeatures
from cmagrounding.video.precision import ComputePlan, plan_for
from cmagrounding.video.runtime import ExtractorRunner, make_runner
from cmagrounding.video.registry import build_backbone, get_spec, public_state_dict
from cmagrounding.video.sampling import Clip, ClipAssembler, uniform_clip_starts

logger = logging.getLogger(__name__)

_DONE = object()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def clip_plan(config: VideoConfig, info: VideoInfo) -> ClipAssembler:
    """The clip assembler for ``config``'s scheme on a probed video."""
    fps = config.fps if config.fps is not None else (info.fps or 25.0)
    period = 1.0 / fps
    if config.scheme == "uniform_clips":
        n = num_output_frames(info, config.fps)
        starts = uniform_clip_starts(n, config.num_clips, config.clip_len)
        return ClipAssembler(config.clip_len, starts=starts, frame_period=period, duration=info.duration or None)
    return ClipAssembler(config.clip_len, stride=config.stride, frame_period=period, duration=info.duration or None)


def iter_clips(
    config: VideoConfig,
    path: str | os.PathLike,
    info: VideoInfo | None = None,
    *,
    report: DecodeReport | None = None,
    min_decoded_fraction: float = DEFAULT_MIN_DECODED_FRACTION,
) -> Iterator[Clip]:
    """Stream the clips of one video (uint8 RGB, already resized and cropped); ``report`` and
    ``min_decoded_fraction``: damaged videos, see ``cmagrounding.video.decode.iter_frames``."""
    info = info or probe(path)
    assembler = clip_plan(config, info)
    frames = iter_frames(path, config.fps, config.resize, config.crop, info=info, wanted=assembler.wanted,
                         report=report, min_decoded_fraction=min_decoded_fraction)  # fmt: skip
    for frame in frames:
        yield from assembler.push(frame)
    yield from assembler.finish()


def _batched(clips: Iterable[Clip], size: int) -> Iterator[list[Clip]]:
    batch: list[Clip] = []
    for clip in clips:
        batch.append(clip)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetch(source: Iterator, depth: int) -> Iterator:
    """Run ``source`` in a daemon thread, ``depth`` items ahead; re-raise its errors here."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            q.put((_DONE, exc))

    thread = threading.Thread(target=work, name="cmagrounding-decode", daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # drain so a blocked put can finish, then let the thread end
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def clip_count(info: VideoInfo, config: VideoConfig) -> int:
    """About how many clips a video of ``info`` gives under ``config`` (from its probed length; a hint)."""
    if config.scheme == "uniform_clips":
        return int(config.num_clips)
    from cmagrounding.video.container import num_output_frames

    return max(1, num_output_frames(info, config.fps) // max(1, int(config.stride)))


class VideoEncoder:
    """Turns video files into features with one extractor and one ``VideoConfig``.

    ``device``: "cpu", "cuda", "cuda:1", a torch.device, or None (CUDA if available).
    ``weights_path`` overrides the weight file named by ``config.weights``.
    The checksum of the weights actually loaded is resolved once, here: ``weights_sha256`` holds it
    (None for random weights) and ``config`` is pinned to it, so the config saved with features or
    a checkpoint refuses other weights.
    ``min_decoded_fraction``: a damaged video is refused when less than this fraction of its
    announced duration decodes (a decoding policy, not a feature setting, so not in ``config``).
    """

    def __init__(
        self,
        config: VideoConfig | None = None,
        device: str | torch.device | None = None,
        weights_path: str | os.PathLike | None = None,
        prefetch: int = 2,
        min_decoded_fraction: float = DEFAULT_MIN_DECODED_FRACTION,
    ) -> None:
        config = config or VideoConfig()
        get_spec(config.extractor)  # refuses "precomputed" and unknown names early
        self.device = torch.device(device) if device is not None else default_device()
        model, sha = build_backbone(config, None if weights_path is None else str(weights_path))
        self.weights_sha256: str | None = sha
        self.config = config.pinned(sha) if sha is not None else config
        self.plan: ComputePlan = plan_for(config.precision, self.device)
        model = model.to(self.device)
        if self.plan.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        self.model = model.eval()
        self._runner: ExtractorRunner | None = None  # built on first use (cmagrounding.video.runtime)
        self.prefetch = prefetch
        self.min_decoded_fraction = min_decoded_fraction
        cfg = config
        lo, hi = cfg.value_range
        mean = torch.tensor(cfg.mean, dtype=torch.float32)
        std = torch.tensor(cfg.std, dtype=torch.float32)
        # uint8 x -> ((lo + x * (hi - lo) / 255) - mean) / std  ==  x * scale + shift, per channel
        self._scale = ((hi - lo) / 255.0 / std).view(1, 3, 1, 1, 1).to(self.device)
        self._shift = ((lo - mean) / std).view(1, 3, 1, 1, 1).to(self.device)

    def to(self, device: str | torch.device) -> VideoEncoder:
        """Move the extractor to ``device`` (precision re-resolved for it); returns self."""
        self.device = torch.device(device)
        self.plan = plan_for(self.config.precision, self.device)
        fmt = torch.channels_last_3d if self.plan.channels_last else torch.contiguous_format
        self.model = self.model.to(self.device, memory_format=fmt)
        self._runner = None
        self._scale = self._scale.to(self.device)
        self._shift = self._shift.to(self.device)
        return self

    def __repr__(self) -> str:
        return f"VideoEncoder({self.config.extractor}, device={self.device}, precision={self.plan.name})"

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    # ------------------------------------------------------------ tensors

    def preprocess(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 clips (B, T, H, W, 3) RGB -> float (B, 3, T, H, W) on the device, normalised.

        The permuted view of (B, T, H, W, C) memory already is channels_last_3d: no copy needed.
        """
        x = torch.as_tensor(clips)
        if x.ndim != 5 or x.shape[-1] != 3:
            raise ValueError(f"clips must be (B, T, H, W, 3) uint8, got shape {tuple(x.shape)}")
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        x = x.permute(0, 4, 1, 2, 3)  # (B, 3, T, H, W), channels-last strides
        if self.config.channel_order == "bgr":
            x = x.flip(1)
        x = x.float() * self._scale + self._shift
        fmt = torch.channels_last_3d if self.plan.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def clips_in(self, info: VideoInfo) -> int:
        """About how many clips a video of ``info`` gives under this encoder's settings."""
        return clip_count(info, self.config)

    def expect_clips(self, clips: int) -> None:
        """Say that about ``clips`` clips will be encoded (e.g. a dataset): the runtime may then
        compile the extractor first where that pays off (:mod:`cmagrounding.video.runtime`)."""
        self.runner.expect(clips)

    @property
    def runner(self) -> ExtractorRunner:
        """How the extractor runs (eager, fused or compiled; chosen by ``make_runner``)."""
        if self._runner is None:
            self._runner = make_runner(self.model, self.plan, weights_sha256=self.weights_sha256)
        return self._runner

    @torch.inference_mode()
    def encode_clips(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """Features (B, D) float32 of uint8 clips (B, T, H, W, 3)."""
        x = self.preprocess(clips)
        return self.runner.features(x).float().cpu().numpy()

    @torch.inference_mode()
    def clip_logits(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class logits (B, C) of uint8 clips, for backbones with a classifier."""
        x = self.preprocess(clips)
        return self.runner.logits(x).float().cpu().numpy()

    def weights_state_dict(self) -> dict[str, torch.Tensor]:
        """The extractor's weights in their public layout (what ``config.weights_sha256`` checks and
        what ``VideoEncoder(config, weights_path=...)`` loads back): use this to embed them."""
        return public_state_dict(self.model)

    def labels(self) -> list[str] | None:
        """Class names of ``clip_logits``' columns, when known."""
        spec = get_spec(self.config.extractor)
        return spec.labels() if spec.labels is not None else None

    # ------------------------------------------------------------ videos

    def encode(self, video: str | os.PathLike, info: VideoInfo | None = None) -> VideoFeatures:
        """Features of every clip of ``video`` (see ``VideoConfig`` for the two sampling schemes).

        Raises ``VideoNotFoundError`` / ``VideoDecodeError`` (and its subclasses) naming the file.
        """
        path = Path(video)
        info = info or probe(path)
        self.runner.expect(self.clips_in(info))  # a long video alone may pay for compiling the extractor
        feats: list[np.ndarray] = []
        times: list[tuple[float, float]] = []
        report = DecodeReport()
        clips = iter_clips(self.config, path, info, report=report, min_decoded_fraction=self.min_decoded_fraction)
        batches = _batched(clips, self.config.batch_size)
        if self.prefetch > 0:
            batches = _prefetch(batches, self.prefetch)
        for batch in batches:
            stack = np.stack([c.frames for c in batch])  # (B, T, H, W, 3) uint8
            feats.append(self.encode_clips(stack))
            times.extend((c.start, c.end) for c in batch)
        features = np.concatenate(feats).astype(np.float32, copy=False)
        logger.debug("%s: %d clips from %.2f s", path, len(features), info.duration)
        return VideoFeatures(
            features=features,
            times=np.asarray(times, dtype=np.float64),
            duration=info.duration,
            config=self.config,
            source=str(path),
            damage=report.to_dict() if report.damaged else None,
        )

    def encode_many(
        self, videos: Iterable[str | os.PathLike], skip_errors: bool = True
    ) -> Iterator[tuple[str, VideoFeatures | VideoError]]:
        """Yield ``(path, features)`` per video; with ``skip_errors`` a broken video yields
        ``(path, the VideoError)`` instead of stopping the batch."""
        for video in videos:
            try:
                yield str(video), self.encode(video)
            except VideoError as exc:
                if not skip_errors:
                    raise
                logger.warning("skipping %s", exc)
                yield str(video), exc
