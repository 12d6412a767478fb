"""A watchable report: one self-contained HTML page with the video and a timeline per query.

    >>> from cmagrounding.report import write_report
    >>> write_report("report.html", "video.mp4", moments)           # doctest: +SKIP

The page plays the video (a relative link to the file, or the file embedded as base64 with
``embed=True``) and draws, for each query, its predicted moments (best first, with their scores)
and the ground truth where known. Clicking a moment seeks the video to its start and plays it.
Everything is inline (CSS and a few lines of plain JavaScript): no network, no CDN, so the page
works offline and can be mailed along with the video (or alone, when embedded).

Nothing heavy is imported here; ``import cmagrounding`` does not import this module.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import mimetypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from cmagrounding._io import atomic_path
from cmagrounding.errors import ConfigError, VideoIsFolderError, VideoNotFoundError

_logger = logging.getLogger(__name__)

#: Video suffixes whose MIME type browsers expect to see (mimetypes lacks some of them).
_VIDEO_MIME = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".ogv": "video/ogg", ".ogg": "video/ogg", ".avi": "video/x-msvideo",
}
#: Embedding bigger files works, but browsers get slow with huge data URLs.
_EMBED_WARN_BYTES = 200 * 2**20


@dataclass(frozen=True)
class RankedMoment:
    """One predicted moment of a query, as the report and the plot draw it (seconds)."""

    start: float
    end: float
    score: float | None = None
    rank: int = 1


@dataclass
class QueryMoments:
    """A query's predicted moments (best first), its ground truth, and notes worth showing."""

    query: str
    moments: list[RankedMoment]
    truth: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    duration: float = 0.0


def _ranked(item: Any) -> tuple[list[RankedMoment], list[str], float]:
    """One query's entry -> (moments best first, notes, duration).

    ``item`` is a Moment, anything with ``start``/``end`` (and optionally ``score``), a
    ``(start, end[, score])`` pair or triple, or a sequence of those (top-k, best first).
    """
    if item is None:  # localize(..., min_score=...) kept no moment
        items = []
    elif _is_single(item):
        items = [item]
    else:
        items = list(item)
    out: list[RankedMoment] = []
    notes: list[str] = []
    duration = 0.0
    for rank, m in enumerate(items, 1):
        if hasattr(m, "start") and hasattr(m, "end"):
            score = getattr(m, "score", None)
            out.append(RankedMoment(float(m.start), float(m.end), None if score is None else float(score), rank))
            duration = max(duration, float(getattr(m, "duration", 0.0) or 0.0))
            if rank == 1:
                unknown = tuple(getattr(m, "unknown_words", ()) or ())
                if unknown:
                    notes.append("unknown to the model: " + ", ".join(unknown))
                if getattr(m, "truncated", False):
                    notes.append("truncated to the model's longest query")
                if getattr(m, "widened", False):
                    notes.append("widened to one clip")
        else:
            values = [float(v) for v in m]
            if len(values) not in (2, 3):
                raise ConfigError(f"a moment is (start, end) or (start, end, score), got {m!r}")
            out.append(RankedMoment(values[0], values[1], values[2] if len(values) == 3 else None, rank))
    if not out:
        notes.append("no moment kept: every score was below the threshold")
    return out, notes, duration


def _is_single(item: Any) -> bool:
    """True for one moment (an object with start/end, or a flat pair/triple of numbers)."""
    if hasattr(item, "start") and hasattr(item, "end"):
        return True
    try:
        values = list(item)
    except TypeError:
        raise ConfigError(f"not a moment or a list of moments: {item!r}") from None
    return bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def collect_queries(
    moments_by_query: Mapping[str, Any] | Sequence[Any],
    ground_truth: Mapping[str, Any] | Sequence[Any] | None = None,
) -> list[QueryMoments]:
    """Normalize what :func:`write_report` and the plot accept into one list, in query order.

    ``moments_by_query`` is a mapping ``{query: moment(s)}`` or a sequence with one entry per
    query (each a Moment, which carries its query, or a list of Moments best first). A query's
    entry may hold several moments (top-k, best first). ``ground_truth`` is a mapping
    ``{query: (start, end)}`` or a sequence aligned with the queries; ``None`` entries are unknown.
    """
    if isinstance(moments_by_query, Mapping):
        pairs = [(str(q), v) for q, v in moments_by_query.items()]
    else:
        pairs = []
        for i, v in enumerate(moments_by_query):
            if v is None:
                raise ConfigError(f"entry {i + 1} has no moment and no query text: pass {{query: moments}}")
            first = v if _is_single(v) else next(iter(v), None)
            pairs.append((str(getattr(first, "query", "") or f"query {i + 1}"), v))
    if not pairs:
        raise ConfigError("no queries to report")
    if ground_truth is None:
        truths: list[Any] = [None] * len(pairs)
    elif isinstance(ground_truth, Mapping):
        truths = [ground_truth.get(q) for q, _ in pairs]
    else:
        truths = list(ground_truth)
        if len(truths) != len(pairs):
            raise ConfigError(f"ground_truth has {len(truths)} entries for {len(pairs)} queries")
    out = []
    for (query, value), truth in zip(pairs, truths):
        ranked, notes, duration = _ranked(value)
        span = None if truth is None else (float(truth[0]), float(truth[1]))
        out.append(QueryMoments(query, ranked, span, notes, duration))
    return out


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Temporal IoU, the library's convention (see :func:`cmagrounding.spans.temporal_iou`)."""
    from cmagrounding.spans import span_iou

    return span_iou(a, b)


def _ticks(duration: float, target: int = 8) -> list[float]:
    """Round tick positions (1, 2 or 5 times a power of ten apart) from 0 to ``duration``."""
    if duration <= 0:
        return [0.0]
    raw = duration / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    n = int(math.floor(duration / step + 1e-9))
    return [round(k * step, 6) for k in range(n + 1)]


def _pct(t: float, duration: float) -> str:
    return f"{100.0 * min(max(t, 0.0), duration) / duration:.3f}%"


def _fmt(t: float) -> str:
    return f"{t:.2f}"


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


def _timeline(i: int, q: QueryMoments, duration: float) -> str:
    """One query: a track with its moments (and the truth), a time axis, and a table."""
    esc = html.escape
    buttons = []
    for m in q.moments:
        score = "" if m.score is None else f" score {m.score:.2f}"
        label = f"#{m.rank}" + ("" if m.score is None else f" {m.score:.2f}")
        title = f"#{m.rank}: {_fmt(m.start)} - {_fmt(m.end)} s{score} (click to play)"
        width = max(100.0 * (min(m.end, duration) - max(m.start, 0.0)) / duration, 0.4)
        buttons.append(
            f'<button type="button" class="moment rank{min(m.rank, 3)}" style="left:{_pct(m.start, duration)};'
            f'width:{width:.3f}%;top:{(m.rank - 1) * 1.6:.1f}em" data-start="{m.start:.3f}" data-end="{m.end:.3f}" '
            f'title="{esc(title)}">{esc(label)}</button>'
        )
    lanes = max(len(q.moments), 1)  # an empty row says that nothing was kept
    truth = ""
    if q.truth is not None:
        s, e = q.truth
        width = max(100.0 * (min(e, duration) - max(s, 0.0)) / duration, 0.4)
        truth = (
            f'<button type="button" class="moment truth" style="left:{_pct(s, duration)};width:{width:.3f}%;'
            f'top:{lanes * 1.6:.1f}em" data-start="{s:.3f}" data-end="{e:.3f}" '
            f'title="ground truth {_fmt(s)} - {_fmt(e)} s (click to play)">truth</button>'
        )
        lanes += 1
    ticks = "".join(
        f'<span class="tick" style="left:{_pct(t, duration)}">{t:g} s</span>' for t in _ticks(duration)
    )
    rows = []
    for m in q.moments:
        iou = "" if q.truth is None else f"{_iou((m.start, m.end), q.truth):.2f}"
        score = "" if m.score is None else f"{m.score:.3f}"
        rows.append(
            f'<tr><td>#{m.rank}</td><td><a href="#" data-start="{m.start:.3f}" data-end="{m.end:.3f}">'
            f"{_fmt(m.start)} - {_fmt(m.end)} s</a></td><td>{score}</td><td>{iou}</td></tr>"
        )
    if q.truth is not None:
        s, e = q.truth
        rows.append(
            f'<tr class="truthrow"><td>truth</td><td><a href="#" data-start="{s:.3f}" data-end="{e:.3f}">'
            f"{_fmt(s)} - {_fmt(e)} s</a></td><td></td><td></td></tr>"
        )
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in q.notes)
    iou_head = "<th>IoU with truth</th>" if q.truth is not None else "<th></th>"
    return (
        f'<section class="query" id="query-{i + 1}">\n'
        f'<h2><span class="num">{i + 1}.</span> {esc(q.query)}</h2>\n{notes}'
        f'<div class="timeline" style="height:{lanes * 1.6 + 0.2:.1f}em">'
        + "".join(buttons) + truth + '<div class="playhead"></div></div>\n'
        f'<div class="axis">{ticks}</div>\n'
        f"<table><tr><th>rank</th><th>moment</th><th>score</th>{iou_head}</tr>{''.join(rows)}</table>\n"
        "</section>\n"
    )


_CSS = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.3em;margin:.2em 0 .6em}
h2{font-size:1.05em;margin:1.2em 0 .4em;font-weight:600}
.model{background:#fff7e0;border:1px solid #e6c76a;border-radius:6px;padding:.5em .9em;margin-bottom:1em}
.model .domain{font-weight:600;margin:.3em 0}.model .label{color:#7a5a00}
.model dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em;margin:.4em 0;font-size:.9em}
.model dt{color:#666}.model dd{margin:0}
.player{position:sticky;top:0;background:#fff;padding:.3em 0;z-index:2;border-bottom:1px solid #ddd}
video{display:block;width:100%;height:46vh;background:#000;border-radius:4px}
.novideo{padding:1em;background:#eee;border-radius:4px}
.controls{font-size:.9em;color:#444;margin:.4em 0}
.timeline{position:relative;background:#f2f2f2;border-radius:4px;margin-top:.3em}
.moment{position:absolute;height:1.45em;padding:0 .3em;border:1px solid rgba(0,0,0,.25);border-radius:3px;font-size:.75em;
 overflow:hidden;white-space:nowrap;text-overflow:clip;cursor:pointer;color:#fff;line-height:1.3em;box-sizing:border-box}
.moment.rank1{background:#e8710a}.moment.rank2{background:#f0a050}.moment.rank3{background:#f5c890;color:#333}
.moment.truth{background:#2e8b3a}
.moment.active{outline:2px solid #1a5fd0}
.playhead{position:absolute;top:0;bottom:0;width:2px;background:#1a5fd0;left:0;pointer-events:none}
.axis{position:relative;height:1.3em;font-size:.72em;color:#666;border-top:1px solid #bbb}
.tick{position:absolute;transform:translateX(-50%);padding-top:.1em}
.tick::before{content:"";position:absolute;left:50%;top:-.1em;height:.35em;border-left:1px solid #999}
table{border-collapse:collapse;font-size:.85em;margin-top:.2em}
td,th{padding:.1em .8em .1em 0;text-align:left}th{color:#666;font-weight:500}
.note{color:#8a5a00;font-size:.85em;margin:.1em 0}
footer{margin-top:2em;font-size:.8em;color:#777}
"""

# Plain JavaScript, no libraries: clicking anything with data-start seeks there and plays;
# with "stop at the moment's end" ticked, playback pauses at its data-end.
_JS = """
(function(){
  var video = document.getElementById("player");
  var stopBox = document.getElementById("stop-at-end");
  var stopAt = null;
  function seek(start, end){
    if (!video) return;
    video.currentTime = start;
    stopAt = (stopBox && stopBox.checked) ? end : null;
    var p = video.play();
    if (p && p.catch) p.catch(function(){});
  }
  var targets = document.querySelectorAll("[data-start]");
  for (var i = 0; i < targets.length; i++) {
    targets[i].addEventListener("click", function(ev){
      ev.preventDefault();
      seek(parseFloat(this.getAttribute("data-start")), parseFloat(this.getAttribute("data-end")));
    });
  }
  if (!video) return;
  var duration = parseFloat(document.body.getAttribute("data-duration"));
  var heads = document.querySelectorAll(".playhead");
  var moments = document.querySelectorAll(".moment");
  video.addEventListener("timeupdate", function(){
    var t = video.currentTime;
    if (stopAt !== null && t >= stopAt) { video.pause(); stopAt = null; }
    var left = (100 * Math.min(t, duration) / duration) + "%";
    for (var j = 0; j < heads.length; j++) heads[j].style.left = left;
    for (var k = 0; k < moments.length; k++) {
      var m = moments[k];
      var on = t >= parseFloat(m.getAttribute("data-start")) && t < parseFloat(m.getAttribute("data-end"));
      m.classList.toggle("active", on);
    }
  });
})();
"""


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

    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(heading)} - cmagrounding</title>\n<style>{_CSS}</style>\n</head>\n"
        f'<body data-duration="{duration:.3f}">\n<h1>{esc(heading)}</h1>\n'
        + _model_section(model_info)
    )
    body = "".join(_timeline(i, q, duration) for i, q in enumerate(queries))
    controls = (
        '<p class="controls">Click a moment (or its time) to play the video from its start. '
        '<label><input type="checkbox" id="stop-at-end" checked> stop at the moment\'s end</label></p></div>\n'
    )
    tail = (
        f"{body}<footer>{len(queries)} quer{'y' if len(queries) == 1 else 'ies'}; video duration "
        f"{duration:.2f} s; moments best first, scores as the model gives them. Written by cmagrounding.</footer>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(head)
        if video is None:
            f.write('<p class="novideo">No video file was given (features only): the timelines below '
                    "show the moments without a player.</p>\n")
        elif embed:
            size = video.stat().st_size
            if size > _EMBED_WARN_BYTES:
                _logger.warning("embedding %s (%.0f MB) makes a large page; a linked video loads faster",
                                video, size / 2**20)
            f.write(f'<div class="player"><video id="player" controls preload="auto" src="data:{_mime(video)};base64,')
            _write_base64(f, video)
            f.write('">Your browser cannot play this video.</video>\n')
        else:
            f.write(f'<div class="player"><video id="player" controls preload="metadata" src="{esc(_video_source(video, path))}">'
                    f"Your browser cannot play this video; open {esc(video.name)} next to this page.</video>\n")
        f.write(controls if video is not None else "")
        f.write(tail)
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
