"""cmagrounding.plot: thumbnails keep their aspect ratio, legends stay off the data, top-k lists."""

from __future__ import annotations

import numpy as np
import pytest

from cmagrounding.outputs import Moment

pytest.importorskip("matplotlib")

from test_report import write_small_video  # noqa: E402  (tests/ is on sys.path)


def moment(start: float, end: float, query: str, score: float = 0.5) -> Moment:
    edges = np.linspace(0.0, 3.0, 7)
    times = np.stack([edges[:-1], edges[1:]], axis=1)
    attention = np.array([0.05, 0.1, 0.5, 0.2, 0.1, 0.05], np.float32)
    return Moment(start, end, query, duration=3.0, attention=attention, clip_times=times, score=score)


@pytest.fixture(scope="module")
def wide_video(tmp_path_factory):
    return write_small_video(tmp_path_factory.mktemp("plot") / "wide.mp4", width=192, height=64)


@pytest.fixture(scope="module")
def figure(wide_video):
    import matplotlib.pyplot as plt

    from cmagrounding.plot import moments_figure

    ms = [moment(0.5, 1.5, "the person sits", 0.6), [moment(1.0, 2.0, "top k", 0.7), moment(2.0, 3.0, "top k", 0.2)]]
    fig = moments_figure(ms, video=wide_video, num_thumbnails=4, ground_truth=[(0.5, 1.25), None])
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def test_thumbnails_keep_the_video_aspect_ratio(figure):
    thumbs = [ax for parent in figure.axes for ax in parent.child_axes if ax.get_label() == "thumbnail"]
    assert len(thumbs) == 4
    renderer = figure.canvas.get_renderer()
    for ax in thumbs:
        (image,) = ax.images
        h, w = image.get_array().shape[:2]
        assert w / h == pytest.approx(3.0, rel=0.02)  # decoded 192x64
        assert ax.get_aspect() == 1.0
        shown = image.get_window_extent(renderer)  # the frame as drawn, in display pixels
        assert shown.width / shown.height == pytest.approx(w / h, rel=0.02)
        assert ax.get_window_extent(renderer).width / ax.get_window_extent(renderer).height == pytest.approx(w / h, rel=0.02)


def test_legends_stand_outside_the_data_and_inside_the_figure(figure):
    renderer = figure.canvas.get_renderer()
    panels = [ax for ax in figure.axes if ax.get_legend() is not None]
    assert len(panels) == 2
    page = figure.bbox
    for ax in panels:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))  # off the curve and the truth lines
        assert legend.x0 >= page.x0 and legend.x1 <= page.x1 + 1 and legend.y0 >= page.y0 - 1


def test_top_k_panel_shades_every_moment_with_its_score(figure):
    panels = [ax for ax in figure.axes if ax.get_legend() is not None]
    texts = [t.get_text() for t in panels[1].get_legend().get_texts()]
    assert texts[0] == "#1 1.00-2.00 s, score 0.70" and texts[1] == "#2 2.00-3.00 s, score 0.20"
    single = [t.get_text() for t in panels[0].get_legend().get_texts()]
    assert single[0] == "prediction 0.50-1.50 s, score 0.60" and "ground truth 0.50-1.25 s" in single


def test_plot_moments_writes_a_png(wide_video, tmp_path):
    from cmagrounding.plot import plot_moments

    path = plot_moments([moment(0.5, 1.5, "q")], tmp_path / "sub" / "p.png", video=wide_video)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_query_with_no_moment_kept_gets_a_panel_saying_so():
    import matplotlib.pyplot as plt

    from cmagrounding.plot import moments_figure

    fig = moments_figure({"kept": [moment(0.5, 1.5, "kept")], "rejected": []})
    try:
        assert [ax.get_title(loc="left") for ax in fig.axes] == ["'kept'", "'rejected'"]
        assert "no moment kept" in fig.axes[1].texts[0].get_text() and fig.axes[1].get_legend() is None
    finally:
        plt.close(fig)
