"""What :meth:`Grounder.localize <cmagrounding.grounder.Grounder.localize>` returns.

The network's output becomes seconds in one place, :func:`cmagrounding.windows.run_windows`
(docs/grounder.md): a whole video is one window over ``[0, duration]`` of its features resampled
to at most N clips, a long video many windows; each window's ``(t_s, t_e)`` in [0, 1] (Eq. 22)
becomes ``window start + t * window length`` seconds, a prediction narrower than one clip widened
to one clip around its centre (``Moment.widened``), so that ``0 <= start < end <= duration``
always holds. :meth:`Moment.from_candidate` then adds the query's words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np


if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.queries import PreparedQuery
    from cmagrounding.windows import Candidate


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not Moments
class Moment:
    """The moment of a video that a query describes, in seconds.

    Unpacks as ``start, end = moment``. ``0 <= start < end <= duration`` always holds: a prediction
    narrower than one clip is widened to one clip around its centre (see ``widened``).

    Attributes:
        start, end: the moment, in seconds from the start of the video.
        query: the sentence as given.
        duration: the video's duration in seconds (the axis the network's spans are normalized by).
        span: the network's normalized ``(start, end)`` in [0, 1] of what it saw (the window, or the
            whole video), before any widening; a ReLU span head's answer past 1 is clamped to 1.
        attention: (n,) float32, the temporal attention ``a`` of Eq. 18 over the n real clips the
            network saw (padding dropped); sums to 1.
        clip_times: (n, 2) float64, each of those clips' ``(start, end)`` in seconds.
        score: for a model with the confidence head (docs/architecture.md, "Additions to the
            paper"), its confidence that the moment lies in the clips the network saw (sigmoid of
            the head's logit, in (0, 1)); otherwise the attention mass of the clips whose centre
            lies inside ``[start, end]``: how much of what the network looked at falls inside its
            own answer (not a calibrated probability).
        tokens: the words the network saw, after normalization and truncation; unknown words
            appear as the tokenizer's unknown token.
        unknown_words: the query's words missing from the model's vocabulary.
        truncated: True when the query had more words than the model's ``max_words``.
        widened: True when the raw prediction was narrower than one clip and was widened.
        window: for a long video run in windows (:mod:`cmagrounding.windows`), the ``(start, end)``
            seconds of the window the answer came from (``span``, ``attention`` and ``clip_times``
            are then the window's); None when the network saw the whole video.
    """

    start: float
    end: float
    query: str = ""
    duration: float = 0.0
    span: tuple[float, float] = (0.0, 0.0)
    attention: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False)
    clip_times: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)
    score: float = 0.0
    tokens: tuple[str, ...] = ()
    unknown_words: tuple[str, ...] = ()
    truncated: bool = False
    widened: bool = False
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # a NaN here means NaN reached the network (weights and features are checked on load): an
        # answer "nan s - nan s" is worse than an error, and JSON cannot hold it (docs/security.md)
        values = (self.start, self.end, self.duration, self.score, *self.span)
        if not all(math.isfinite(float(v)) for v in values):
            from cmagrounding.errors import NonFiniteError

            raise NonFiniteError(f"the answer to query {self.query[:80]!r} is not a finite number (start {self.start}, "
                                 f"end {self.end}, score {self.score}): the model's weights or the features hold "
                                 "NaN or infinity")
        # a ReLU span head (span_activation="relu") answers in [0, inf): clamped to [0, 1] of what the
        # network saw, so seconds made from it (window start + span * window length) stay in the video
        object.__setattr__(self, "span", tuple(min(max(float(v), 0.0), 1.0) for v in self.span))

    @classmethod
    def from_candidate(cls, candidate: Candidate, duration: float, query: PreparedQuery, *, whole: bool = False) -> Moment:
        """One answer of the network (:class:`~cmagrounding.windows.Candidate`: already in the
        video's seconds, scored, with the attention and seconds of the clips it saw) as a Moment;
        ``whole``: the window was the whole video (then :attr:`window` is None)."""
        clip_times = candidate.clip_times if candidate.clip_times is not None else np.zeros((0, 2))
        return cls(
            start=candidate.start, end=candidate.end, query=query.text, duration=duration, span=candidate.span,
            attention=candidate.attention if candidate.attention is not None else np.zeros(0, np.float32),
            clip_times=clip_times, score=candidate.score, tokens=query.tokens, unknown_words=query.unknown_words,
            truncated=query.truncated, widened=candidate.widened, window=None if whole else candidate.bounds,
        )

    def __iter__(self) -> Iterator[float]:
        yield self.start
        yield self.end

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> float:
        return (self.start, self.end)[i]

    @property
    def length(self) -> float:
        """``end - start`` in seconds."""
        return self.end - self.start

    def to_dict(self, *, include_attention: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (floats and lists only)."""
        d: dict[str, Any] = {
            "query": self.query,
            "start": float(self.start),
            "end": float(self.end),
            "duration": float(self.duration),
            "span": [float(self.span[0]), float(self.span[1])],
            "score": float(self.score),
            "tokens": list(self.tokens),
            "unknown_words": list(self.unknown_words),
            "truncated": bool(self.truncated),
            "widened": bool(self.widened),
        }
        if self.window is not None:
            d["window"] = [float(self.window[0]), float(self.window[1])]
        if include_attention:
            d["attention"] = [float(a) for a in self.attention]
            d["clip_times"] = [[float(s), float(e)] for s, e in self.clip_times]
        return d

    def __str__(self) -> str:
        return f"{self.start:.2f}s - {self.end:.2f}s  {self.query!r}"
