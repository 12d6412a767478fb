"""What a report draws, normalized: per query its ranked moments, ground truth and notes.

:func:`collect_queries` turns what :func:`~cmagrounding.report.write_report` accepts (Moments,
lists of Moments best first, ``(start, end[, score])`` tuples, mappings by query) into one list of
:class:`QueryMoments`; bad entries raise :class:`~cmagrounding.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from cmagrounding.errors import ConfigError


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
