"""Crops: windows of a video's feature rows, each with its annotation re-timed inside the window.

A crop costs no extraction: the features of a row do not depend on the rows around it (each clip
of the extractor is run alone), so rows ``A`` to ``B - 1`` of a video are exactly the features of
that stretch of the video. A crop is named by a *view id* that any feature store can serve through
:class:`CroppedStore`:

* ``"VIDEO@A-B"``: rows ``A:B`` of ``VIDEO`` (a window of one video);
* ``"VIDEO@A-B|OTHER@C-D"``: those rows followed by rows ``C:D`` of ``OTHER`` (a window made of
  segments of several videos, e.g. the confidence head's windows, docs/training.md);
* a plain ``"VIDEO"``: the whole video.

:func:`crop_annotations` draws random windows that contain the whole moment (fallback (LGI-style
augmentation); the paper is silent): they change the moment's position and relative length.
Windows that contain none of the moment (negatives for a confidence head) are built from the same
pieces: :func:`moment_rows` says which rows hold the moment, :func:`view_id` names the window.
Shapes: n feature rows, D feature width.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from cmagrounding.errors import DatasetError
from cmagrounding.training.annotations import Annotation

__all__ = ["CroppedStore", "view_id", "parse_view", "moment_rows", "retime", "crop_annotations"]


def view_id(video: str, lo: int, hi: int) -> str:
    """The id of rows ``lo:hi`` of ``video``: ``"VIDEO@LO-HI"``."""
    return f"{video}@{int(lo)}-{int(hi)}"


def parse_view(view: str) -> list[tuple[str, int | None, int | None]]:
    """``"V@A-B|U@C-D"`` -> ``[("V", A, B), ("U", C, D)]``; a plain id -> ``[(id, None, None)]``."""
    out: list[tuple[str, int | None, int | None]] = []
    for part in view.split("|"):
        base, _, rows = part.partition("@")
        if not rows:
            out.append((base, None, None))
            continue
        a, _, b = rows.partition("-")
        try:
            out.append((base, int(a), int(b)))
        except ValueError:
            raise DatasetError(f"view {view!r}: rows {rows!r} of {base!r} are not 'A-B' (two integers)") from None
    return out


class CroppedStore:
    """A feature store that also serves view ids (:func:`parse_view`) of the videos of ``store``.

    ``get("V@A-B")`` is ``store.get("V")[A:B]`` (n = B - A rows, D); joined views are concatenated
    row-wise in their order. A plain id is passed through unchanged.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, video: str) -> np.ndarray:
        parts = []
        for base, a, b in parse_view(video):
            feats = self.store.get(base)
            if a is None:
                parts.append(feats)
                continue
            if not 0 <= a < b <= feats.shape[0]:
                raise DatasetError(f"view {video!r}: rows {a}-{b} are outside the {feats.shape[0]} rows of {base!r}")
            parts.append(feats[a:b])
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def __contains__(self, video: object) -> bool:
        return isinstance(video, str) and all(base in self.store for base, _, _ in parse_view(video))

    def __repr__(self) -> str:
        return f"CroppedStore({self.store!r})"


def moment_rows(a: Annotation, num_rows: int, seconds_per_row: float) -> tuple[int, int]:
    """Rows ``[first, last)`` of a ``num_rows``-row video that overlap the moment of ``a``.

    Row ``i`` covers seconds ``[i, i + 1) * seconds_per_row``; the rows outside hold none of the
    moment. At least one row (``first < last``), inside the video.
    """
    first = min(int(a.start // seconds_per_row), num_rows - 1)
    last = min(max(int(np.ceil(a.end / seconds_per_row)), first + 1), num_rows)
    return first, last


def retime(a: Annotation, lo: int, hi: int, seconds_per_row: float) -> Annotation:
    """The annotation of window rows ``lo:hi`` of ``a.video``: its view id, the window's duration
    and the moment in the window's own seconds (clipped to the window)."""
    t0, t1 = lo * seconds_per_row, hi * seconds_per_row
    return Annotation(view_id(a.video, lo, hi), t1 - t0, a.query, max(a.start, t0) - t0, min(a.end, t1) - t0)


def crop_annotations(annotations: Iterable[Annotation], store: Any, crops: int, seconds_per_row: float, seed: int,
                     min_rows: int = 6) -> list[Annotation]:
    """``crops`` random crops per annotation: windows of whole rows that contain the whole moment.

    A window ``[lo, hi)`` is drawn with ``lo`` uniform in ``[0, first]`` and ``hi`` uniform in
    ``[last, n]`` (:func:`moment_rows`); draws shorter than ``min_rows`` rows, or the whole video,
    are skipped, so an annotation yields at most ``crops`` windows. Serve the returned view ids
    with :class:`CroppedStore`.
    """
    rng = np.random.default_rng(seed)
    rows_of: dict[str, int] = {}
    out = []
    for a in annotations:
        n = rows_of.setdefault(a.video, int(store.get(a.video).shape[0]))
        first, last = moment_rows(a, n, seconds_per_row)
        for _ in range(crops):
            lo = int(rng.integers(0, first + 1))
            hi = int(rng.integers(last, n + 1))
            if hi - lo < min_rows or (lo == 0 and hi == n):
                continue
            out.append(retime(a, lo, hi, seconds_per_row))
    return out
