"""Draw a scene's frames with numpy and write them to an mp4 file with PyAV.

Edges are anti-aliased (4 x 4 samples per pixel) so that sub-pixel motion and size changes show;
shapes never overlap (the generator keeps them apart), and a fading shape is alpha-blended over
the background. Frames are a pure function
of the scene, so the same scene always gives the same pixels.
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
    """Pixels (H, W) bool covered by a shape centred at (x, y) whose equal-area radius is ``size``."""
    mask = np.zeros((height, width), dtype=bool)
    box = _shape_box(shape, x, y, size, width, height)
    if box is not None:
        y0, y1, x0, x1, m = box
        mask[y0:y1, x0:x1] = m
    return mask


def shape_coverage(
    shape: str, x: float, y: float, size: float, width: int, height: int, samples: int = 4
) -> np.ndarray:
    """Fraction (H, W) float of each pixel covered by the shape, from ``samples`` x ``samples`` points."""
    cover = np.zeros((height, width), dtype=np.float64)
    box = _shape_box(shape, x, y, size, width, height, samples)
    if box is not None:
        y0, y1, x0, x1, m = box
        cover[y0:y1, x0:x1] = m
    return cover


def _shape_box(
    shape: str, x: float, y: float, size: float, width: int, height: int, samples: int = 1
) -> tuple[int, int, int, int, np.ndarray] | None:
    """The shape inside its bounding box: (y0, y1, x0, x1, cover (y1-y0, x1-x0)), None if off screen.

    With ``samples`` = 1, ``cover`` is a bool mask of the pixels whose centre lies in the shape;
    with ``samples`` = s > 1, it is the float fraction of s*s sub-pixel points inside (anti-aliasing).
    """
    r = bounding_radius(shape, size) + 1.0
    x0, x1 = max(int(np.floor(x - r)), 0), min(int(np.ceil(x + r)) + 1, width)
    y0, y1 = max(int(np.floor(y - r)), 0), min(int(np.ceil(y + r)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    sub = (np.arange(samples, dtype=np.float64) + 0.5) / samples  # sub-pixel offsets
    dx = (np.arange(x0, x1, dtype=np.float64)[:, None] + sub).reshape(-1) - x
    dy = (np.arange(y0, y1, dtype=np.float64)[:, None] + sub).reshape(-1)[:, None] - y
    if shape == "circle":
        m = dx * dx + dy * dy <= size * size
    elif shape == "square":
        h = size * SQUARE_HALF_SIDE
        m = (np.abs(dx) <= h) & (np.abs(dy) <= h)
    elif shape == "triangle":  # equilateral, pointing up
        t = size * TRIANGLE_CIRCUMRADIUS
        s3 = np.sqrt(3.0)
        # below both upper edges and above the base (image y grows downwards)
        m = (dy <= t / 2.0) & (s3 * dx - dy <= t) & (-s3 * dx - dy <= t)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    if samples > 1:
        m = m.reshape(y1 - y0, samples, x1 - x0, samples).mean(axis=(1, 3))
    return y0, y1, x0, x1, m


#: Sub-pixel samples per axis when drawing: edges are anti-aliased so that a shape that grows,
#: shrinks or moves by a fraction of a pixel changes the frame by that fraction.
SAMPLES = 4


def render_state(state: SceneState, width: int, height: int) -> np.ndarray:
    """One RGB frame (H, W, 3) uint8."""
    img = np.empty((height, width, 3), np.float64)
    img[:] = state.background_rgb
    for obj in state.objects:
        if obj.alpha <= 0.0:
            continue
        box = _shape_box(obj.shape, obj.x, obj.y, obj.size, width, height, SAMPLES)
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
