"""Picture a localization: frame thumbnails, the predicted span on the timeline, the attention curve.

Optional extra: ``pip install "cmagrounding[plot]"`` (matplotlib). Nothing here is imported by
``import cmagrounding``; matplotlib is imported when a plot is drawn, with the file-only Agg backend.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cmagrounding.outputs import Moment

_logger = logging.getLogger(__name__)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError('plotting needs matplotlib: pip install "cmagrounding[plot]"') from e
    matplotlib.use("Agg", force=False)  # files only; never opens a window
    import matplotlib.pyplot as plt

    return plt


def read_thumbnails(
    video: str | os.PathLike[str], times: Sequence[float], height: int = 96
) -> list[tuple[float, np.ndarray]]:
    """Decode one RGB frame (height ``height``) at or just after each of ``times`` seconds, with PyAV.

    Returns ``(time, frame (h, w, 3) uint8)`` pairs; a time past the last frame gets the last frame.
    Seeks to the keyframe before each time, so only a few frames are decoded per thumbnail.
    """
    import av

    from cmagrounding.video.decode import probe

    rotation = probe(video).rotation  # display rotation, applied as the video side does
    out: list[tuple[float, np.ndarray]] = []
    with av.open(os.fspath(video)) as container:
        stream = container.streams.video[0]
        tb = float(stream.time_base) if stream.time_base is not None else 1e-6
        start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
        for t in times:
            container.seek(int((start + max(t, 0.0)) / tb), stream=stream, backward=True, any_frame=False)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.pts is not None and float(frame.pts * tb) - start >= t - 1e-3:
                    break
            if chosen is None:
                continue
            sideways = rotation in (90, 270)
            scale = height / (chosen.width if sideways else chosen.height)  # display height = height
            w, h = max(1, round(chosen.width * scale)), max(1, round(chosen.height * scale))
            rgb = chosen.reformat(width=w, height=h, format="rgb24").to_ndarray()
            out.append((float(t), np.ascontiguousarray(np.rot90(rgb, k=rotation // 90)) if rotation else rgb))
    return out


def plot_moments(
    moments: Moment | Sequence[Moment],
    path: str | os.PathLike[str],
    *,
    video: str | os.PathLike[str] | None = None,
    num_thumbnails: int = 5,
    title: str | None = None,
    ground_truth: Sequence[tuple[float, float] | None] | None = None,
) -> Path:
    """Save a PNG: thumbnails of ``video`` (when given), then per moment its attention and span.

    Each moment's panel shows the temporal attention ``a`` (Eq. 18) as a step curve over the
    clips' times and the predicted ``[start, end]`` shaded; ``ground_truth`` spans, when given,
    are drawn as dashed lines. Returns the written path.
    """
    plt = _pyplot()
    ms = [moments] if isinstance(moments, Moment) else list(moments)
    if not ms:
        raise ValueError("plot_moments needs at least one Moment")
    duration = max(m.duration for m in ms) or max(m.end for m in ms)
    thumbs: list[tuple[float, np.ndarray]] = []
    if video is not None and num_thumbnails > 0:
        times = (np.arange(num_thumbnails) + 0.5) * duration / num_thumbnails
        try:
            thumbs = read_thumbnails(video, times.tolist())
        except Exception as e:  # a plot without thumbnails beats no plot
            _logger.warning("no thumbnails from %s: %s", video, e)
    rows = len(ms) + (1 if thumbs else 0)
    ratios = ([1.3] if thumbs else []) + [1.0] * len(ms)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 1.2 + 1.6 * rows), gridspec_kw={"height_ratios": ratios}, squeeze=False)
    axes = axes[:, 0]
    if thumbs:
        ax = axes[0]
        ax.set_xlim(0, duration)
        ax.set_ylim(0, 1)
        slot = duration / len(thumbs)
        for t, img in thumbs:
            half = 0.475 * slot  # each frame fills its slot of the timeline, centred on its time
            ax.imshow(img, extent=(t - half, t + half, 0.0, 1.0), aspect="auto")
        ax.set_yticks([])
        ax.set_xticks([t for t, _ in thumbs])
        ax.set_xticklabels([f"{t:.1f}s" for t, _ in thumbs], fontsize=8)
        ax.set_title(title or (Path(video).name if video is not None else ""), fontsize=10)
    gts = list(ground_truth) if ground_truth is not None else [None] * len(ms)
    for ax, m, gt in zip(axes[1:] if thumbs else axes, ms, gts):
        ax.axvspan(m.start, m.end, color="tab:orange", alpha=0.3, label=f"prediction {m.start:.2f}-{m.end:.2f} s")
        if len(m.attention):
            centres = m.clip_times.mean(axis=1)  # clips may overlap (windows every stride frames)
            ax.plot(centres, m.attention, drawstyle="steps-mid", marker=".", color="tab:blue", label="attention a (Eq. 18)")
            ax.set_ylim(0, max(float(m.attention.max()) * 1.15, 1e-6))
        if gt is not None:
            for x in gt:
                ax.axvline(x, color="tab:green", linestyle="--")
            ax.plot([], [], color="tab:green", linestyle="--", label=f"ground truth {gt[0]:.2f}-{gt[1]:.2f} s")
        ax.set_xlim(0, duration)
        ax.set_ylabel("attention", fontsize=8)
        ax.set_title(repr(m.query), fontsize=9, loc="left")
        ax.legend(loc="upper right", fontsize=7)
    axes[-1].set_xlabel("seconds")
    if not thumbs and title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
