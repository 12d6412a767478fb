"""Draw a scene's frames with numpy and write them to an mp4 file with PyAV.

Edges are anti-aliased (coverage from signed distances) so that sub-pixel motion and size changes
show; shapes never overlap (the generator keeps them apart), and a fading shape is alpha-blended
over the background. Frames are a pure function of the scene, so the same scene always gives the
same pixels.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from cmagrounding.demo.scene import (
    SQUARE_HALF_SIDE,
    TRIANGLE_CIRCUMRADIUS,
    Scene,
    SceneState,
    bounding_radius,
)


def shape_mask(
    shape: str, x: float, y: float, size: float, width: int, height: int
) -> np.ndarray:
    """Pixels (H, W) bool at least half covered by a shape centred at (x, y) of equal-area radius ``size``."""
    return shape_coverage(shape, x, y, size, width, height) >= 0.5


def shape_coverage(
    shape: str, x: float, y: float, size: float, width: int, height: int
) -> np.ndarray:
    """How much of each pixel (H, W) float in [0, 1] the shape covers (see :func:`_shape_box`)."""
    cover = np.zeros((height, width), dtype=np.float64)
    box = _shape_box(shape, x, y, size, width, height)
    if box is not None:
        y0, y1, x0, x1, m = box
        cover[y0:y1, x0:x1] = m
    return cover


def _shape_box(
    shape: str, x: float, y: float, size: float, width: int, height: int
) -> tuple[int, int, int, int, np.ndarray] | None:
    """The shape's coverage inside its bounding box: (y0, y1, x0, x1, cover), None if off screen.

    Anti-aliasing from signed distances: a pixel whose centre lies d pixels inside an edge is
    covered ``clip(d + 0.5, 0, 1)`` (for a square, per axis and multiplied: the exact box-filtered
    coverage). Coverage is continuous in the shape's position and size, so a change of a tenth of
    a pixel between two frames shows in them; with hard edges or a few samples per pixel a slow
    change would move in whole steps.
    """
    r = bounding_radius(shape, size) + 1.0
    x0, x1 = max(int(np.floor(x - r)), 0), min(int(np.ceil(x + r)) + 1, width)
    y0, y1 = max(int(np.floor(y - r)), 0), min(int(np.ceil(y + r)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    dx = np.arange(x0, x1, dtype=np.float64) + 0.5 - x  # pixel centres
    dy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - y

    def inside(d: np.ndarray) -> np.ndarray:
        return np.clip(d + 0.5, 0.0, 1.0)

    if shape == "circle":
        m = inside(size - np.sqrt(dx * dx + dy * dy))
    elif shape == "square":
        h = size * SQUARE_HALF_SIDE
        m = inside(h - np.abs(dx)) * inside(h - np.abs(dy))
    elif shape == "triangle":  # equilateral, pointing up; edges at distance t/2 from the centre
        t = size * TRIANGLE_CIRCUMRADIUS
        s3 = np.sqrt(3.0)
        # distance inside each edge: the base (below), then the two upper edges (image y grows down)
        base = t / 2.0 - dy
        right = (t - (s3 * dx - dy)) / 2.0
        left = (t - (-s3 * dx - dy)) / 2.0
        m = inside(np.minimum(np.minimum(base, right), left))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return y0, y1, x0, x1, m


def render_state(state: SceneState, width: int, height: int) -> np.ndarray:
    """One RGB frame (H, W, 3) uint8."""
    img = np.empty((height, width, 3), np.float64)
    img[:] = state.background_rgb
    for obj in state.objects:
        if obj.alpha <= 0.0:
            continue
        box = _shape_box(obj.shape, obj.x, obj.y, obj.size, width, height)
        if box is None:
            continue
        y0, y1, x0, x1, cover = box
        a = (cover * obj.alpha)[..., None]  # (h, w, 1) opacity of the shape over what lies below
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1.0 - a) + obj.rgb * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_frame(scene: Scene, frame: int) -> np.ndarray:
    """Frame ``frame`` of ``scene`` as (H, W, 3) uint8."""
    return render_state(scene.state_at(frame), scene.width, scene.height)


def iter_frames(scene: Scene) -> Iterator[np.ndarray]:
    """Every frame of ``scene`` in order, each (H, W, 3) uint8."""
    # Between events nothing changes: reuse the last frame instead of drawing it again.
    changing = np.zeros(scene.num_frames + 1, dtype=bool)
    for e in scene.events:
        changing[e.start_frame + 1 : e.end_frame + 1] = True
    frame = None
    for k in range(scene.num_frames):
        if frame is None or changing[k]:
            frame = render_frame(scene, k)
        yield frame


def render_frames(scene: Scene) -> np.ndarray:
    """All frames (T, H, W, 3) uint8."""
    return np.stack(list(iter_frames(scene)))


def write_video(
    scene: Scene, path: str | Path, *, codec: str = "libx264", crf: int = 18
) -> Path:
    """Encode ``scene`` to ``path`` (mp4, yuv420p, constant frame rate) and return the path.

    ``codec`` is "libx264" (quality ``crf``) or "mpeg4" (fixed quantiser 2), both in PyAV's
    bundled FFmpeg. x264 runs single-threaded so that the bitstream does not depend on the core count.
    """
    import av  # PyAV is a core dependency, imported here to keep `import cmagrounding.demo` light

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(scene.fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = scene.width, scene.height
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        else:
            stream.options = {"qscale": "2"}
            stream.codec_context.qmin = 2
            stream.codec_context.qmax = 2
        time_base = 1 / rate
        for k, frame in enumerate(iter_frames(scene)):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = k
            vf.time_base = time_base
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
