"""Sizes a config may ask for, and the check of a pretrained folder before anything is allocated.

A ``config.json`` is data from whoever made the folder: ``hidden=16384`` would ask for about 48 GB
before the weights' shapes are compared, ``encoder_layers=10**6`` grows until the memory cap,
``num_clips=10**9`` fails inside the allocator. So, before any module is built
(:func:`check_pretrained`):

1. every size of the ``model`` section is an integer (not a float or bool) within :data:`MODEL_BOUNDS`
   (generous: 4-30x the paper's sizes; docs/security.md lists them), refused by name
   (:class:`~cmagrounding.errors.LimitError`);
2. the network the config describes is built on the ``meta`` device (shapes only, no memory) and
   compared with the safetensors header (names, shapes and dtypes of every tensor, read without
   loading any tensor data): :class:`KeyMismatchError`, :class:`ShapeMismatchError`,
   :class:`WeightsValueError` for a dtype other than the network's.

After loading, :func:`check_finite` refuses NaN / infinity in any weight. The video side's bounds
(fps, resize, clip length, ...) are ``cmagrounding.video.config.VIDEO_BOUNDS``, checked by
``VideoConfig.validate`` wherever a video config is made.

Private: ``cmagrounding._pretrained.load`` calls these.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from cmagrounding._config import check_int
from cmagrounding.errors import LimitError, WeightsValueError, shorten, shorten_list

#: CMAConfig integer fields -> (lowest, highest) accepted from a file. The paper's Charades model:
#: hidden 512, 10 attention layers, 128 clips, 1,140 words.
MODEL_BOUNDS: dict[str, tuple[int, int]] = {
    "video_dim": (1, 65536),
    "vocab_size": (4, 10_000_000),  # the 4 special tokens at least; glove.840B has 2.2 M words
    "word_dim": (1, 4096),
    "num_clips": (1, 4096),
    "max_words": (1, 1024),
    "hidden": (2, 8192),
    "lstm_hidden": (1, 4096),
    "lstm_layers": (1, 16),
    "spe_hidden": (1, 8192),
    "ffn_dim": (0, 32768),
    "head_hidden": (1, 8192),
    "num_phrases": (1, 64),
    "num_heads": (1, 256),
    "encoder_layers": (0, 64),
    "decoder_layers": (0, 64),
    "confidence_hidden": (1, 8192),
}
_MODEL_FLOATS = ("dropout", "input_dropout")

#: torch dtype name -> safetensors header dtype
_ST_DTYPES = {
    "float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
    "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL",
}


def check_model_section(data: Mapping[str, Any], where: str) -> None:
    """Types and :data:`MODEL_BOUNDS` of a ``model`` section (a dict from JSON), before ``CMAConfig``."""
    for name, (low, high) in MODEL_BOUNDS.items():
        if name in data:
            check_int(f"model.{name}", data[name], low, high, where, LimitError)
    for name in _MODEL_FLOATS:
        v = data.get(name, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise LimitError(f"{where}: model.{name} must be a finite number, got {shorten(v)}")


def expected_tensors(config: Any) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{name: (safetensors dtype, shape)}`` of the state dict of the network ``config`` describes,
    from a build on the meta device (no memory, no initialisation)."""
    import torch

    from cmagrounding.model.network import CMANetwork

    with torch.device("meta"):
        net = CMANetwork(config)
    return {k: (_ST_DTYPES.get(str(v.dtype).replace("torch.", ""), str(v.dtype)), tuple(v.shape))
            for k, v in net.state_dict().items()}


def check_header(expected: Mapping[str, tuple[str, tuple[int, ...]]], header: Mapping[str, tuple[str, tuple[int, ...]]],
                 *, source: str, target: str = "the network its config.json describes") -> None:
    """Names and shapes (``_io.check_state_dict``), then dtypes, of a safetensors header against
    the expected tensors; nothing is loaded."""
    from cmagrounding import _io

    _io.check_state_dict({k: s for k, (_, s) in expected.items()}, {k: s for k, (_, s) in header.items()},
                         source=source, target=target)
    wrong = [f"{k}: expected {expected[k][0]}, found {header[k][0]}" for k in expected
             if k in header and header[k][0] != expected[k][0]]
    if wrong:
        raise WeightsValueError(f"{source} does not match {target}: {len(wrong)} tensor(s) of the wrong dtype: "
                                f"{shorten_list(wrong)}")


def check_finite(tensors: Mapping[str, Any], *, source: str) -> None:
    """Refuse NaN or infinity in any floating-point tensor, naming the tensors."""
    import torch

    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise WeightsValueError(f"{source}: {len(bad)} tensor(s) hold NaN or infinite values: {shorten_list(sorted(bad))}")
