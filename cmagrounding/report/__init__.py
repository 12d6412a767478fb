"""A watchable report: one self-contained HTML page with the video and a timeline per query.

    >>> from cmagrounding.report import write_report
    >>> write_report("report.html", "video.mp4", moments)           # doctest: +SKIP

The page plays the video (a relative link to the file, or the file embedded as base64 with
``embed=True``) and draws, for each query, its predicted moments (best first, with their scores)
and the ground truth where known. Clicking a moment seeks the video to its start and plays it.
Everything is inline (CSS and a few lines of plain JavaScript): no network, no CDN, so the page
works offline and can be mailed along with the video (or alone, when embedded).

The parts: :mod:`~cmagrounding.report.moments` normalizes the moments and ground truth,
:mod:`~cmagrounding.report.timeline` draws one query's section, :mod:`~cmagrounding.report.page`
writes the page from the static ``page.html``, ``report.css`` and ``report.js`` beside it.

Nothing heavy is imported here; ``import cmagrounding`` does not import this package.
"""

from cmagrounding.report.moments import QueryMoments, RankedMoment, collect_queries
from cmagrounding.report.page import model_info_of, write_report

__all__ = ["QueryMoments", "RankedMoment", "collect_queries", "model_info_of", "write_report"]
