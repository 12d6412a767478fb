"""The report page: the model's card, the player (linked or embedded video) and a section per query.

The static parts (the HTML skeleton ``page.html``, ``report.css``, ``report.js``) are package data
beside this module, read once and inlined into every page, so the written file stays self-contained.
"""

from __future__ import annotations

import base64
import functools
import html
import logging
import mimetypes
import os
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from cmagrounding._io import atomic_path
from cmagrounding.errors import VideoIsFolderError, VideoNotFoundError
from cmagrounding.report.moments import collect_queries
from cmagrounding.report.timeline import query_section

_logger = logging.getLogger(__name__)

#: Video suffixes whose MIME type browsers expect to see (mimetypes lacks some of them).
_VIDEO_MIME = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".ogv": "video/ogg", ".ogg": "video/ogg", ".avi": "video/x-msvideo",
}
#: Embedding bigger files works, but browsers get slow with huge data URLs.
_EMBED_WARN_BYTES = 200 * 2**20


@functools.lru_cache(maxsize=None)
def _asset(name: str) -> str:
    """The text of a static part shipped beside this module (``page.html``, ``report.css``, ``report.js``).

    ``report.js`` is plain JavaScript, no libraries: clicking anything with data-start seeks there
    and plays; with "stop at the moment's end" ticked, playback pauses at its data-end.
    """
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _video_source(video: Path, report: Path) -> str:
    """A URL for ``video`` relative to the report's folder (a file URL across drives)."""
    try:
        rel = os.path.relpath(video.resolve(), report.resolve().parent)
    except ValueError:  # another drive on Windows
        return video.resolve().as_uri()
    return quote(Path(rel).as_posix())


def _mime(video: Path) -> str:
    return _VIDEO_MIME.get(video.suffix.lower()) or mimetypes.guess_type(video.name)[0] or "video/mp4"


def _model_section(model_info: Mapping[str, Any] | str | None) -> str:
    """The model's name, domain and intended use, domain first: read before any answer."""
    if not model_info:
        return ""
    if isinstance(model_info, str):
        return f'<section class="model"><p class="domain">{html.escape(model_info)}</p></section>\n'
    info = dict(model_info)
    parts = []
    for key, label in (("domain", "Domain"), ("intended_use", "Intended use")):
        if info.get(key):
            parts.append(f'<p class="domain"><span class="label">{label}:</span> {html.escape(str(info.pop(key)))}</p>')
    rows = "".join(
        f"<dt>{html.escape(str(k).replace('_', ' '))}</dt><dd>{html.escape(_plain(v))}</dd>"
        for k, v in info.items() if v not in (None, "", [], {})
    )
    if rows:
        parts.append(f"<dl>{rows}</dl>")
    return '<section class="model">' + "".join(parts) + "</section>\n"


def _plain(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {_plain(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_plain(x) for x in v)
    return str(v)


def write_report(
    path: str | os.PathLike[str],
    video_path: str | os.PathLike[str] | None,
    moments_by_query: Mapping[str, Any] | Sequence[Any],
    ground_truth: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    embed: bool = False,
    model_info: Mapping[str, Any] | str | None = None,
    title: str | None = None,
    duration: float | None = None,
) -> Path:
    """Write one self-contained HTML page: the video and, per query, a clickable timeline.

    Args:
        path: the ``.html`` file to write (atomically; its folder is created).
        video_path: the video the moments are in. Linked relative to ``path`` (keep the two
            together), or embedded as base64 when ``embed`` is True (one file, ~4/3 the video's
            size). ``None`` (e.g. only features were at hand) draws the timelines without a player.
        moments_by_query: per query its moment or moments, best first: a sequence of Moments
            (each carries its query) or of lists of Moments (top-k), or a mapping
            ``{query: moment(s)}`` where a moment may also be ``(start, end[, score])`` seconds
            and None or ``[]`` means no moment was kept (``localize(..., min_score=...)``).
        ground_truth: the true ``(start, end)`` per query (mapping by query, or a sequence
            aligned with the queries; ``None`` where unknown).
        embed: embed the video file in the page instead of linking it.
        model_info: what the model is (a string, or a mapping such as ``{"model": ..., "domain":
            ..., "intended_use": ...}``); its domain and intended use are shown above the video.
        title: the page's heading (default: the video's file name).
        duration: the timeline's length in seconds (default: the moments' video duration).

    Returns the written path. Raises :class:`~cmagrounding.errors.VideoNotFoundError` (or
    ``VideoIsFolderError``) when ``video_path`` is given but is not a file, and
    :class:`~cmagrounding.errors.ConfigError` for moments or ground truth it cannot read.
    """
    path = Path(path)
    video = Path(video_path) if video_path is not None else None
    if video is not None and video.is_dir():
        raise VideoIsFolderError(f"report video {video} is a folder, not a video file")
    if video is not None and not video.is_file():
        raise VideoNotFoundError(f"report video not found: {video}")
    queries = collect_queries(moments_by_query, ground_truth)
    if duration is None:
        duration = max(q.duration for q in queries) or 0.0
    if not duration or duration <= 0:
        ends = [m.end for q in queries for m in q.moments] + [q.truth[1] for q in queries if q.truth]
        duration = max(ends) if ends else 1.0
    duration = float(duration)
    heading = title or (video.name if video is not None else "cmagrounding report")
    esc = html.escape
    n = len(queries)
    fields = {
        "title": esc(heading), "duration": f"{duration:.3f}", "css": _asset("report.css"),
        "js": _asset("report.js"), "model": _model_section(model_info),
        "queries": "".join(query_section(i, q, duration) for i, q in enumerate(queries)),
        "footer": f"{n} quer{'y' if n == 1 else 'ies'}; video duration {duration:.2f} s; moments best "
                  "first, scores as the model gives them. Written by cmagrounding.",
    }
    # The player is streamed between the skeleton's two halves (an embedded video is never held whole).
    before, after = (Template(part).substitute(fields) for part in _asset("page.html").split("$player"))
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(before)
        if video is None:
            f.write('<p class="novideo">No video file was given (features only): the timelines below '
                    "show the moments without a player.</p>\n")
        else:
            if embed:
                size = video.stat().st_size
                if size > _EMBED_WARN_BYTES:
                    _logger.warning("embedding %s (%.0f MB) makes a large page; a linked video loads faster",
                                    video, size / 2**20)
                f.write(f'<div class="player"><video id="player" controls preload="auto" src="data:{_mime(video)};base64,')
                _write_base64(f, video)
                f.write('">Your browser cannot play this video.</video>\n')
            else:
                f.write(f'<div class="player"><video id="player" controls preload="metadata" '
                        f'src="{esc(_video_source(video, path))}">Your browser cannot play this video; '
                        f"open {esc(video.name)} next to this page.</video>\n")
            f.write('<p class="controls">Click a moment (or its time) to play the video from its start. '
                    '<label><input type="checkbox" id="stop-at-end" checked> stop at the moment\'s end</label>'
                    "</p></div>\n")
        f.write(after)
    _logger.info("report written to %s", path)
    return path


def _write_base64(f: Any, video: Path, chunk: int = 3 * 2**20) -> None:
    """Stream ``video`` into ``f`` as base64, a multiple of 3 bytes at a time (no padding inside)."""
    with open(video, "rb") as src:
        for block in iter(lambda: src.read(chunk), b""):
            f.write(base64.b64encode(block).decode("ascii"))


def model_info_of(grounder: Any, name: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """What a report shows about a loaded :class:`~cmagrounding.grounder.Grounder`: its name and,
    when its pretrained folder records them, its domain, intended use and vocabulary."""
    info: dict[str, Any] = {}
    card = getattr(grounder, "card", None)
    if card is not None:
        for key in ("domain", "intended_use"):
            if getattr(card, key, ""):
                info[key] = getattr(card, key)
        if getattr(card, "demo", False) and "domain" not in info:
            info["domain"] = "a demonstration model (trained on generated videos, not real footage)"
    if name is not None:
        info["model"] = str(name)
    if card is not None and getattr(card, "vocabulary", ""):
        info["vocabulary"] = card.vocabulary
    return info
