"""The generated grounding set: reproducible, and its events are what the sentences say, when they say.

The pixel tests render a scene, encode it to mp4, decode it again with PyAV, and measure the named
shape in the decoded frames: where its colour's pixels are, how many, what colour it has, whether
it is there at all. Each measure must stay at its "before" value up to the event's start, at its
"after" value from its end, change linearly in between, and the fitted change must start and end
within one frame of the annotated seconds.
"""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from cmagrounding.demo.grammar import BACKGROUNDS, COLOURS, DIRECTIONS, SHAPES, sentence, vocabulary
from cmagrounding.demo.generator import GeneratorConfig, generate_dataset, generate_scene, load_annotations
from cmagrounding.demo.renderer import render_frame, render_frames, shape_coverage, write_video
from cmagrounding.demo.scene import Event, ObjectSpec, Scene, bounding_radius

FPS = 8.0


def _hand_scene() -> Scene:
    """A fixed scene with one event of every kind (so every kind is checked whatever the draws)."""
    objects = (
        ObjectSpec("circle", "red", 30.0, 30.0, 9.0, True),
        ObjectSpec("square", "blue", 80.0, 30.0, 9.0, True),
        ObjectSpec("triangle", "green", 30.0, 82.0, 9.0, False),
        ObjectSpec("circle", "yellow", 80.0, 80.0, 9.0, True),
    )
    spec = [  # kind, start, end, target, colour, shape, argument, amount
        ("appear", 4, 20, 2, "green", "triangle", None, 0.0),
        ("move", 24, 48, 0, "red", "circle", "right", 20.0),
        ("recolour", 52, 76, 1, "blue", "square", "orange", 0.0),
        ("grow", 80, 100, 3, "yellow", "circle", None, 1.6),
        ("shrink", 104, 124, 0, "red", "circle", None, 1 / 1.6),
        ("background", 128, 150, None, None, None, "gray", 0.0),
        ("disappear", 154, 176, 2, "green", "triangle", None, 0.0),
    ]
    events = tuple(
        Event(k, s, e, FPS, sentence(k, c, sh, a), t, c, sh, a, amt) for k, s, e, t, c, sh, a, amt in spec
    )
    return Scene(112, 112, FPS, 184, "black", objects, events)


def _decode(path) -> tuple[np.ndarray, np.ndarray]:
    """Decoded frames (T, H, W, 3) int and their times in seconds (T,)."""
    with av.open(str(path)) as container:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return np.stack([f for _, f in frames]).astype(np.int64), np.asarray([t for t, _ in frames], float)


def _disc(scene: Scene, x: float, y: float, r: float) -> np.ndarray:
    ys, xs = np.mgrid[0 : scene.height, 0 : scene.width] + 0.5
    return (xs - x) ** 2 + (ys - y) ** 2 <= r * r


def _colour_mask(frame: np.ndarray, rgb, tol: float = 60.0) -> np.ndarray:
    return np.linalg.norm(frame - np.asarray(rgb), axis=-1) < tol


def _coverage(frames: np.ndarray, rgb, background) -> np.ndarray:
    """How far each pixel has gone from the background towards ``rgb``, in [0, 1] (soft mask)."""
    bg = np.asarray(background, float)
    c = np.asarray(rgb, float) - bg
    return np.clip((frames - bg) @ c / (c @ c), 0, 1)


def _shape_of(cover: np.ndarray) -> str:
    """Which shape a soft blob (H, W) is: the one that, drawn with the blob's centroid and area,
    overlaps it most. The soft mask keeps the edge pixels that anti-aliasing and the video's 4:2:0
    chroma blur."""
    ys, xs = np.mgrid[0 : cover.shape[0], 0 : cover.shape[1]] + 0.5
    total = cover.sum()
    cx, cy = (cover * xs).sum() / total, (cover * ys).sum() / total
    size = math.sqrt(total / math.pi)
    h, w = cover.shape

    def iou(shape: str) -> float:
        ideal = shape_coverage(shape, cx, cy, size, w, h)
        return np.minimum(ideal, cover).sum() / np.maximum(ideal, cover).sum()

    return max(SHAPES, key=iou)


def _window(scene: Scene, i: int) -> tuple[int, int]:
    """Frames in which only event ``i`` changes anything: from the previous end to the next start."""
    lo = scene.events[i - 1].end_frame if i > 0 else 0
    hi = scene.events[i + 1].start_frame if i + 1 < len(scene.events) else scene.num_frames - 1
    return lo, hi


def _measure(scene: Scene, i: int, frames: np.ndarray) -> tuple[np.ndarray, dict]:
    """One scalar per frame of event ``i``'s window that the event changes linearly, and checks
    of what the sentence names (shape, colours, direction) at the stable frames."""
    ev = scene.events[i]
    before, after = scene.state_at(ev.start_frame), scene.state_at(ev.end_frame)
    lo, hi = _window(scene, i)
    win = frames[lo : hi + 1]
    info: dict = {}
    if ev.kind == "background":
        keep = np.ones((scene.height, scene.width), bool)
        for o in before.objects:
            keep &= ~_disc(scene, o.x, o.y, bounding_radius(o.shape, o.size) + 2)
        b1, b2 = np.asarray(BACKGROUNDS[before.background], float), np.asarray(BACKGROUNDS[ev.argument], float)
        mean = win[:, keep].mean(axis=1)  # (T, 3)
        info["colours"] = (mean[ev.start_frame - lo], mean[ev.end_frame - lo], b1, b2)
        return (mean - b1) @ (b2 - b1) / ((b2 - b1) @ (b2 - b1)), info
    o0, o1 = before.objects[ev.target], after.objects[ev.target]
    assert (o0.colour, o0.shape) == (ev.colour, ev.shape)  # the sentence names the object as it is
    rgb = COLOURS[ev.colour]
    r = bounding_radius(ev.shape, max(o0.size, o1.size)) + 1.5
    region = _disc(scene, o0.x, o0.y, r) | _disc(scene, o1.x, o1.y, r)
    if ev.kind == "move":  # the capsule swept by the shape
        for f in np.linspace(0, 1, 33):
            region |= _disc(scene, o0.x + (o1.x - o0.x) * f, o0.y + (o1.y - o0.y) * f, r)
    stable = ev.end_frame if ev.kind == "appear" else ev.start_frame
    blob = _coverage(frames[stable], rgb, BACKGROUNDS[before.background]) * region
    assert (_colour_mask(frames[stable], rgb) & region).sum() > 0.5 * blob.sum()  # the named colour is there
    info["shape"] = _shape_of(blob)
    info["area"] = float(blob.sum())
    info["expected_area"] = math.pi * (o1.size if ev.kind == "appear" else o0.size) ** 2
    if ev.kind == "move":
        # soft coverage as weights: a hard colour threshold makes the centroid jump when the
        # 4:2:0 chroma rows at an edge cross it
        masks = _coverage(win, rgb, BACKGROUNDS[before.background]) * region
        ys, xs = np.mgrid[0 : scene.height, 0 : scene.width] + 0.5
        cx = (masks * xs).sum((1, 2)) / masks.sum((1, 2))
        cy = (masks * ys).sum((1, 2)) / masks.sum((1, 2))
        dx, dy = DIRECTIONS[ev.argument]
        s, e = ev.start_frame - lo, ev.end_frame - lo
        info["displacement"] = (cx[e] - cx[s], cy[e] - cy[s])
        return cx * dx + cy * dy, info
    if ev.kind in ("grow", "shrink"):
        # the shape's width through its centre (mean of the 3 central rows of soft coverage) is
        # linear in its size for all three shapes, and horizontal blur does not change it
        cover = _coverage(win, rgb, BACKGROUNDS[before.background]) * region
        row = int(o0.y)
        width = cover[:, row - 1 : row + 2, :].sum(axis=2).mean(axis=1)
        info["size_ratio"] = width[ev.end_frame - lo] / width[ev.start_frame - lo]
        return width, info
    # appear / disappear / recolour: the mean colour well inside the shape (0.5 x its radius lies
    # inside every shape), projected on the change
    core = _disc(scene, o0.x, o0.y, 0.5 * o0.size)
    mean = win[:, core].mean(axis=1)
    if ev.kind == "recolour":
        c1, c2 = np.asarray(rgb, float), np.asarray(COLOURS[ev.argument], float)
        info["colours"] = (mean[ev.start_frame - lo], mean[ev.end_frame - lo], c1, c2)
    else:
        c1 = np.asarray(BACKGROUNDS[before.background], float)
        c2 = np.asarray(rgb, float)
        if ev.kind == "disappear":
            c1, c2 = c2, c1
        info["colours"] = (mean[ev.start_frame - lo], mean[ev.end_frame - lo], c1, c2)
    return (mean - c1) @ (c2 - c1) / ((c2 - c1) @ (c2 - c1)), info


def _check_event(scene: Scene, i: int, frames: np.ndarray, times: np.ndarray) -> None:
    ev = scene.events[i]
    lo, hi = _window(scene, i)
    m, info = _measure(scene, i, frames)
    t = times[lo : hi + 1]
    k = np.arange(lo, hi + 1)
    pre, post = m[k <= ev.start_frame], m[k >= ev.end_frame]
    m0, m1 = np.median(pre), np.median(post)
    span = m1 - m0
    assert abs(span) > 1e-6, f"{ev.sentence!r}: nothing changes"
    q = (m - m0) / span
    expected = np.clip((k - ev.start_frame) / (ev.end_frame - ev.start_frame), 0, 1)
    # constant before the start, constant after the end, linear in between
    assert np.abs(q - expected).max() < 0.12, f"{ev.sentence!r}: {np.round(q, 2)} vs {np.round(expected, 2)}"
    # the change starts and ends within one frame of the annotated seconds: fit a ramp
    # clip((t - a) / (b - a), 0, 1) to the whole window (plateaus and slope together) by grid search
    a = ev.start + np.arange(-3.0, 3.0, 0.05) / scene.fps
    b = ev.end + np.arange(-3.0, 3.0, 0.05) / scene.fps
    ramp = np.clip((t[None, None, :] - a[:, None, None]) / (b[None, :, None] - a[:, None, None]), 0, 1)
    err = ((ramp - q) ** 2).sum(-1)
    ia, ib = np.unravel_index(np.argmin(err), err.shape)
    assert abs(a[ia] - ev.start) <= 1 / scene.fps, (ev.sentence, a[ia], ev.start)
    assert abs(b[ib] - ev.end) <= 1 / scene.fps, (ev.sentence, b[ib], ev.end)
    # what the sentence says
    if ev.kind != "background":
        assert info["shape"] == ev.shape, (ev.sentence, info)
        assert abs(info["area"] / info["expected_area"] - 1) < 0.15, (ev.sentence, info)
    if "colours" in info:
        got0, got1, want0, want1 = info["colours"]
        assert np.linalg.norm(got0 - want0) < 25 and np.linalg.norm(got1 - want1) < 25, (ev.sentence, info)
    if ev.kind == "move":
        dx, dy = DIRECTIONS[ev.argument]
        along = info["displacement"][0] * dx + info["displacement"][1] * dy
        across = info["displacement"][0] * dy + info["displacement"][1] * dx
        assert abs(along - ev.amount) < 1.5 and abs(across) < 1.0, (ev.sentence, info)
    if ev.kind == "grow":
        assert abs(info["size_ratio"] - ev.amount) < 0.12, (ev.sentence, info)
    if ev.kind == "shrink":
        assert abs(info["size_ratio"] - ev.amount) < 0.08, (ev.sentence, info)


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_every_kind_happens_as_said_in_decoded_video(tmp_path, codec):
    scene = _hand_scene()
    path = write_video(scene, tmp_path / "hand.mp4", codec=codec)
    frames, times = _decode(path)
    assert len(frames) == scene.num_frames
    np.testing.assert_allclose(times, np.arange(scene.num_frames) / scene.fps, atol=1e-6)
    for i in range(len(scene.events)):
        _check_event(scene, i, frames, times)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_generated_events_happen_as_said_in_decoded_video(tmp_path, index):
    scene = generate_scene(GeneratorConfig(), seed=11, index=index)
    frames, times = _decode(write_video(scene, tmp_path / "v.mp4"))
    assert len(frames) == scene.num_frames
    for i in range(len(scene.events)):
        _check_event(scene, i, frames, times)


def test_same_seed_same_video_and_other_seed_other_video():
    cfg = GeneratorConfig()
    a, b = generate_scene(cfg, seed=5, index=3), generate_scene(cfg, seed=5, index=3)
    assert a.to_dict() == b.to_dict()
    np.testing.assert_array_equal(render_frames(a), render_frames(b))
    assert generate_scene(cfg, seed=6, index=3).to_dict() != a.to_dict()
    assert generate_scene(cfg, seed=5, index=4).to_dict() != a.to_dict()


def test_dataset_round_trip_and_resume(tmp_path):
    cfg = GeneratorConfig(min_duration=12.0, max_duration=12.0, max_events=3)
    ann = generate_dataset(tmp_path, 2, seed=3, config=cfg)
    cfg2, scenes, videos = load_annotations(ann)
    assert cfg2 == cfg
    assert [s.to_dict() for s in scenes] == [generate_scene(cfg, 3, i).to_dict() for i in range(2)]
    assert all(v.is_file() for v in videos)
    first = videos[0].read_bytes()
    generate_dataset(tmp_path, 2, seed=3, config=cfg)  # resumes: existing files are kept as they are
    assert videos[0].read_bytes() == first


def test_annotations_are_consistent_over_many_videos():
    cfg = GeneratorConfig()
    kinds = set()
    for index in range(300):
        scene = generate_scene(cfg, seed=0, index=index)
        assert cfg.min_duration - 1 / cfg.fps <= scene.duration <= cfg.max_duration + 1 / cfg.fps
        assert cfg.min_events <= len(scene.events) <= cfg.max_events
        meanings = [e.meaning for e in scene.events]
        assert len(set(meanings)) == len(meanings)  # one moment per sentence
        assert len({e.sentence for e in scene.events}) == len(scene.events)
        prev_end = 0
        for e in scene.events:
            kinds.add(e.kind)
            assert e.start_frame > prev_end or (prev_end == 0 and e.start_frame > 0)  # disjoint, with a gap
            assert cfg.min_event - 1e-9 <= e.end - e.start <= cfg.max_event + 1e-9
            assert e.end_frame < scene.num_frames
            prev_end = e.end_frame
            words = e.sentence.split()
            for w in (e.colour, e.shape, e.argument):
                assert w is None or w in words, e.sentence
            # the named object exists, is named as it looks, and is unique at that moment
            state = scene.state_at(e.start_frame)
            if e.target is not None:
                named = [o for o in state.objects if (o.colour, o.shape) == (e.colour, e.shape)]
                assert len(named) == 1
                assert named[0].alpha == (0.0 if e.kind == "appear" else 1.0)
        for k in [0, *(e.end_frame for e in scene.events)]:  # shapes on screen, never touching
            state = scene.state_at(k)
            seen = [o for o in state.objects if o.alpha > 0]
            assert len({(o.colour, o.shape) for o in state.objects}) == len(state.objects)
            for j, o in enumerate(seen):
                r = bounding_radius(o.shape, o.size)
                assert r <= o.x <= cfg.width - r and r <= o.y <= cfg.height - r
                for p in seen[j + 1 :]:
                    assert math.hypot(o.x - p.x, o.y - p.y) > r + bounding_radius(p.shape, p.size)
    assert kinds == {"appear", "disappear", "move", "recolour", "grow", "shrink", "background"}


def test_rendered_frame_draws_the_state():
    scene = _hand_scene()
    frame = render_frame(scene, 0)
    assert frame.shape == (112, 112, 3) and frame.dtype == np.uint8
    assert (frame[30, 30] == COLOURS["red"]).all()  # red circle centre
    assert (frame[30, 80] == COLOURS["blue"]).all()
    assert (frame[82, 30] == BACKGROUNDS["black"]).all()  # the triangle is hidden at the start
    assert (render_frame(scene, 20)[82, 30] == COLOURS["green"]).all()  # and fully there once it appeared


def test_grammar_vocabulary_is_small_and_covers_the_names():
    vocab = vocabulary()
    assert set(COLOURS) | set(SHAPES) | set(BACKGROUNDS) | set(DIRECTIONS) <= set(vocab)
    assert len(vocab) < 60
