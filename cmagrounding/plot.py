"""Picture a localization: frame thumbnails, the predicted span on the timeline, the attention curve.

Optional extra: ``pip install "cmagrounding[plot]"`` (matplotlib). Nothing here is imported by
``import cmagrounding``; matplotlib is imported when a plot is drawn, with the file-only Agg backend.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from cmagrounding._io import atomic_path
from cmagrounding.errors import ConfigError, MissingDependencyError
from cmagrounding.outputs import Moment

_logger = logging.getLogger(__name__)


#: What to run for the plots (the "plot" extra); the CLI prints it when matplotlib is missing.
PLOT_INSTALL = "pip install 'cmagrounding[plot]'"


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise MissingDependencyError(f"plotting needs matplotlib: {PLOT_INSTALL}") from e
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


def _moment_lists(moments: Any) -> list[tuple[str, list[Any]]]:
    """What plot_moments accepts -> ``[(query, moments best first)]``.

    One Moment; a sequence with one entry per query (a Moment, or a list of Moments best first:
    top-k); or a mapping ``{query: Moment | list | None}``, where None or an empty list is a query
    with no moment kept (``localize(..., min_score=...)``).
    """
    def single(item: Any) -> bool:
        return isinstance(item, Moment) or hasattr(item, "attention")

    if single(moments):
        return [(moments.query, [moments])]
    if isinstance(moments, Mapping):
        pairs = [(str(q), v) for q, v in moments.items()]
    else:
        pairs = []
        for item in moments:
            group = [item] if single(item) else list(item or [])
            if not group:
                raise ConfigError("plot_moments: a query without moments needs its text: pass {query: moments}")
            pairs.append((group[0].query, group))
    out = [(q, [v] if single(v) else list(v or [])) for q, v in pairs]
    if not out:
        raise ConfigError("plot_moments needs at least one query")
    return out


def moments_figure(
    moments: Moment | Sequence[Moment | Sequence[Moment]] | Mapping[str, Any],
    *,
    video: str | os.PathLike[str] | None = None,
    num_thumbnails: int = 5,
    title: str | None = None,
    ground_truth: Sequence[tuple[float, float] | None] | None = None,
    duration: float | None = None,
) -> Any:
    """The figure :func:`plot_moments` saves (a matplotlib ``Figure``; close it when done).

    Thumbnails keep the video's aspect ratio: each frame sits in its own small axes centred on
    its time (``aspect="equal"``), never stretched to fill its slot. Legends stand to the right of
    their panel, off the curve and the ground-truth lines (the layout makes room for them).
    """
    plt = _pyplot()
    named = _moment_lists(moments)
    groups = [g for _, g in named]
    everything = [m for g in groups for m in g]
    if duration is None:
        if not everything:
            raise ConfigError("plot_moments: no moment to plot and no duration given")
        duration = max(float(m.duration) for m in everything) or max(float(m.end) for m in everything)
    thumbs: list[tuple[float, np.ndarray]] = []
    if video is not None and num_thumbnails > 0:
        times = (np.arange(num_thumbnails) + 0.5) * duration / num_thumbnails
        try:
            thumbs = read_thumbnails(video, times.tolist())
        except Exception as e:  # a plot without thumbnails beats no plot
            _logger.warning("no thumbnails from %s: %s", video, e)
    rows = len(groups) + (1 if thumbs else 0)
    panel = 1.6  # inches per query
    strip = 0.0
    if thumbs:  # as tall as a frame of the timeline's width per thumbnail (~8.5 of 11 in) needs
        h, w = thumbs[0][1].shape[:2]
        strip = min(max(0.95 * 8.5 / len(thumbs) * h / w, 0.6), 2.4) + 0.4  # + tick labels
    ratios = ([strip] if thumbs else []) + [panel] * len(groups)
    fig, axes = plt.subplots(
        rows, 1, figsize=(11, 0.8 + strip + panel * len(groups)), gridspec_kw={"height_ratios": ratios},
        squeeze=False, layout="constrained",
    )
    axes = axes[:, 0]
    if thumbs:
        ax = axes[0]
        ax.set_xlim(0, duration)
        ax.set_ylim(0, 1)
        slot = duration / len(thumbs)
        for t, img in thumbs:
            # a frame in its own axes inside its slot of the timeline: aspect "equal" shrinks
            # that axes to the frame's proportions instead of stretching the frame
            inset = ax.inset_axes((t - 0.475 * slot, 0.0, 0.95 * slot, 1.0), transform=ax.transData)
            inset.imshow(img, aspect="equal", interpolation="antialiased")
            inset.set_xticks([])
            inset.set_yticks([])  # a thin frame, so that light frames stand out from the page
            inset.set_label("thumbnail")
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_xticks([t for t, _ in thumbs])
        ax.set_xticklabels([f"{t:.1f}s" for t, _ in thumbs], fontsize=8)
        ax.set_title(title or (Path(video).name if video is not None else ""), fontsize=10)
    gts = list(ground_truth) if ground_truth is not None else [None] * len(groups)
    if len(gts) != len(groups):
        raise ConfigError(f"plot_moments: {len(gts)} ground-truth spans for {len(groups)} queries")
    for ax, (query, group), gt in zip(axes[1:] if thumbs else axes, named, gts):
        ax.set_xlim(0, duration)
        ax.set_title(repr(query), fontsize=9, loc="left")
        if not group:  # min_score kept none of its moments
            ax.text(0.5, 0.5, "no moment kept (every score below the threshold)", transform=ax.transAxes,
                    ha="center", va="center", fontsize=9, color="0.4")
            ax.set_yticks([])
            continue
        m = group[0]
        for rank, alt in enumerate(group, 1):
            score = getattr(alt, "score", None)
            what = "prediction" if len(group) == 1 else f"#{rank}"
            label = f"{what} {alt.start:.2f}-{alt.end:.2f} s" + ("" if score is None else f", score {score:.2f}")
            ax.axvspan(alt.start, alt.end, color="tab:orange", alpha=0.35 if rank == 1 else 0.15,
                       hatch=None if rank == 1 else "//", label=label)
        if len(m.attention):
            centres = m.clip_times.mean(axis=1)  # clips may overlap (windows every stride frames)
            ax.plot(centres, m.attention, drawstyle="steps-mid", marker=".", color="tab:blue",
                    label="attention a (Eq. 18)" + (" of #1" if len(group) > 1 else ""))
            ax.set_ylim(0, max(float(m.attention.max()) * 1.15, 1e-6))
        if gt is not None:
            for x in gt:
                ax.axvline(x, color="tab:green", linestyle="--")
            ax.plot([], [], color="tab:green", linestyle="--", label=f"ground truth {gt[0]:.2f}-{gt[1]:.2f} s")
        ax.set_ylabel("attention", fontsize=8)
        # outside the panel, to its right: never over the curve or the truth lines
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=7, frameon=False)
    axes[-1].set_xlabel("seconds")
    if not thumbs and title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_moments(
    moments: Moment | Sequence[Moment | Sequence[Moment]] | Mapping[str, Any],
    path: str | os.PathLike[str],
    *,
    video: str | os.PathLike[str] | None = None,
    num_thumbnails: int = 5,
    title: str | None = None,
    ground_truth: Sequence[tuple[float, float] | None] | None = None,
    duration: float | None = None,
) -> Path:
    """Save a PNG: thumbnails of ``video`` (when given), then per query its attention and span(s).

    ``moments`` is one Moment, one per query, or per query a list of Moments best first (top-k:
    all are shaded, the best darkest, each with its score in the legend), or a mapping
    ``{query: moment(s) or None}`` (None / [] where ``min_score`` kept nothing; ``duration`` is
    then needed when no query has a moment). Each query's panel
    shows the temporal attention ``a`` (Eq. 18) of its best moment as a step curve over the
    clips' times and the predicted ``[start, end]`` shaded; ``ground_truth`` spans (one per
    query, ``None`` where unknown) are drawn as dashed lines. Returns the written path.

    Raises :class:`~cmagrounding.errors.MissingDependencyError` without matplotlib.
    """
    fig = moments_figure(moments, video=video, num_thumbnails=num_thumbnails, title=title, ground_truth=ground_truth,
                         duration=duration)
    plt = _pyplot()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return path
