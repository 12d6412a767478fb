"""One query's section of the report page: its moments on a track, a time axis and a table (HTML)."""

from __future__ import annotations

import html
import math

from cmagrounding.report.moments import QueryMoments


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


def query_section(i: int, q: QueryMoments, duration: float) -> str:
    """Query ``i`` (0-based) as a ``<section>``: a track with its moments (and the truth), a time
    axis, and a table, positioned as fractions of ``duration`` seconds."""
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
