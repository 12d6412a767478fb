"""What :meth:`Grounder.localize <cmagrounding.grounder.Grounder.localize>` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not Moments
class Moment:
    """The moment of a video that a query describes, in seconds.

    Unpacks as ``start, end = moment``. ``0 <= start < end <= duration`` always holds: a prediction
    narrower than one clip is widened to one clip around its centre (see ``widened``).

    Attributes:
        start, end: the moment, in seconds from the start of the video.
        query: the sentence as given.
        duration: the video's duration in seconds (the axis the network's spans are normalized by).
        span: the network's normalized ``(start, end)`` in [0, 1], before any widening.
        attention: (n,) float32, the temporal attention ``a`` of Eq. 18 over the n real clips the
            network saw (padding dropped); sums to 1.
        clip_times: (n, 2) float64, each of those clips' ``(start, end)`` in seconds.
        score: attention mass of the clips whose centre lies inside ``[start, end]``: how much of
            what the network looked at falls inside its own answer (not a calibrated probability).
        tokens: the words the network saw, after normalization and truncation; unknown words
            appear as the tokenizer's unknown token.
        unknown_words: the query's words missing from the model's vocabulary.
        truncated: True when the query had more words than the model's ``max_words``.
        widened: True when the raw prediction was narrower than one clip and was widened.
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
        if include_attention:
            d["attention"] = [float(a) for a in self.attention]
            d["clip_times"] = [[float(s), float(e)] for s, e in self.clip_times]
        return d

    def __str__(self) -> str:
        return f"{self.start:.2f}s - {self.end:.2f}s  {self.query!r}"
