"""cmagrounding.report: one self-contained page with the video and a clickable timeline per query."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest

from cmagrounding.errors import ConfigError, VideoNotFoundError
from cmagrounding.outputs import Moment
from cmagrounding.report import collect_queries, write_report


def write_small_video(path: Path, width: int = 160, height: int = 90, frames: int = 24, fps: int = 8) -> Path:
    """A short colour-ramp mp4 (H.264 via PyAV's bundled FFmpeg)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            img = np.zeros((height, width, 3), np.uint8)
            img[..., 0] = 10 * k
            img[:, : width // 2, 1] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_small_video(tmp_path_factory.mktemp("report") / "clips" / "my clip.mp4")


def moment(start: float, end: float, query: str, score: float = 0.5, **kw) -> Moment:
    return Moment(start, end, query, duration=3.0, score=score, **kw)


QUERIES = ["the person sits", "a door opens <script>alert('x')</script> & more"]


def test_linked_page_has_player_timelines_seek_handler_and_escaping(video, tmp_path):
    report = video.parent.parent / "out" / "report.html"
    moments = [moment(0.5, 1.25, QUERIES[0], 0.71, unknown_words=("sits",)), moment(1.0, 2.875, QUERIES[1], 0.33)]
    write_report(report, video, moments, ground_truth=[(0.5, 1.5), None], model_info={"model": "m", "domain": "generated shapes only"})
    page = report.read_text(encoding="utf-8")
    # the video, linked relative to the page (its name quoted as a URL)
    assert 'src="../clips/my%20clip.mp4"' in page and page.count("<video") == 1
    # one timeline per query, each moment's start on a clickable element, a click handler seeking
    assert page.count('class="timeline"') == len(QUERIES)
    for m in moments:
        assert f'class="moment rank1" style="left:{100 * m.start / 3:.3f}%' in page
        assert f'data-start="{m.start:.3f}" data-end="{m.end:.3f}"' in page
    assert 'data-start="0.500" data-end="1.500"' in page  # the known truth, clickable too
    script = page.split("<script>")[1].split("</script>")[0]
    assert 'addEventListener("click"' in script and "video.currentTime = start" in script
    assert 'getAttribute("data-start")' in script
    # the query text is escaped: the page holds exactly one script element, ours
    assert page.count("<script>") == 1 and "<script>alert" not in page
    assert "a door opens &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    # self-contained: no network resource anywhere
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "http" not in page.lower().replace("http-equiv", "")
    # scores, IoU with the truth, the model's domain and the query's note
    assert "0.710" in page and "0.330" in page
    assert ">0.75<" in page  # IoU of (0.5, 1.25) with (0.5, 1.5)
    assert page.index("generated shapes only") < page.index("<video")
    assert "unknown to the model: sits" in page


def test_embedded_page_holds_the_video_bytes(video, tmp_path):
    report = write_report(tmp_path / "r.html", video, [moment(0.0, 1.0, "q")], embed=True)
    page = report.read_text(encoding="utf-8")
    found = re.search(r'<video id="player"[^>]* src="data:video/mp4;base64,([A-Za-z0-9+/=]+)"', page)
    assert found is not None
    assert base64.b64decode(found.group(1)) == video.read_bytes()
    assert "my%20clip.mp4" not in page  # nothing linked


def test_top_k_lists_rank_and_score_every_moment(video, tmp_path):
    by_query = {"q one": [(0.25, 1.0, 0.9), (1.5, 2.5, 0.4), (2.0, 3.0, 0.1)], "q two": (0.5, 1.0)}
    page = write_report(tmp_path / "r.html", video, by_query, ground_truth={"q one": (0.25, 1.0)}, duration=3.0).read_text()
    assert page.count('class="timeline"') == 2
    for rank, (s, e, score) in enumerate(by_query["q one"], 1):
        assert f'data-start="{s:.3f}" data-end="{e:.3f}"' in page and f"#{rank} {score:.2f}" in page
    assert "moment rank2" in page and "moment rank3" in page
    assert ">1.00<" in page  # the best moment equals the truth
    qs = collect_queries(by_query)
    assert [len(q.moments) for q in qs] == [3, 1] and qs[1].moments[0].score is None


def test_features_only_page_has_no_player(tmp_path):
    page = write_report(tmp_path / "r.html", None, [moment(0.0, 1.0, "q")]).read_text()
    assert "<video" not in page and "No video file" in page and page.count('class="timeline"') == 1


def test_bad_inputs_raise_specific_errors(video, tmp_path):
    with pytest.raises(VideoNotFoundError, match="nope.mp4"):
        write_report(tmp_path / "r.html", tmp_path / "nope.mp4", [moment(0.0, 1.0, "q")])
    with pytest.raises(ConfigError, match="start, end"):
        write_report(tmp_path / "r.html", video, {"q": [(1.0,)]})
    with pytest.raises(ConfigError, match="2 entries for 1 queries"):
        write_report(tmp_path / "r.html", video, [moment(0.0, 1.0, "q")], ground_truth=[(0, 1), (1, 2)])
    assert not (tmp_path / "r.html").exists()  # nothing half-written


def test_model_info_of_a_grounder_shows_its_card_first(video, tmp_path):
    from types import SimpleNamespace

    from cmagrounding.model_card import ModelCard
    from cmagrounding.report import model_info_of

    card = ModelCard(domain="generated shapes", intended_use="the demo only", vocabulary="43 words", demo=True)
    info = model_info_of(SimpleNamespace(card=card), "path/to/model")
    assert info == {"domain": "generated shapes", "intended_use": "the demo only", "model": "path/to/model", "vocabulary": "43 words"}
    page = write_report(tmp_path / "r.html", video, [moment(0.0, 1.0, "q")], model_info=info).read_text()
    assert page.index("Domain:</span> generated shapes") < page.index("Intended use:") < page.index("<video")
    assert "43 words" in page
    assert "demonstration model" in model_info_of(SimpleNamespace(card=ModelCard(demo=True)))["domain"]


def test_import_cmagrounding_loads_neither_report_nor_plot():
    import json
    import subprocess
    import sys

    code = "import cmagrounding, sys, json; from cmagrounding import Grounder; print(json.dumps(sorted(sys.modules)))"
    mods = set(json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout))
    assert "cmagrounding.report" not in mods and "cmagrounding.plot" not in mods


def test_page_gets_the_usual_file_mode(tmp_path):
    """Atomic writes go through a private temporary file; the page itself is readable as usual."""
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    page = write_report(tmp_path / "r.html", None, [moment(0.0, 1.0, "q")])
    assert page.stat().st_mode & 0o777 == 0o666 & ~mask


def test_query_with_no_moment_kept_gets_an_empty_timeline(video, tmp_path):
    by_query = {"kept": [moment(0.5, 1.0, "kept", 0.8)], "rejected": [], "also rejected": None}
    page = write_report(tmp_path / "r.html", video, by_query).read_text()
    assert page.count('class="timeline"') == 3 and page.count("no moment kept") == 2
    assert page.count('class="moment rank1"') == 1
    with pytest.raises(ConfigError, match="no moment and no query text"):
        write_report(tmp_path / "r.html", video, [moment(0.0, 1.0, "q"), None])
