"""A tiny random-weight Grounder built through the public API, and synthetic features for it.

Shared by tests/test_grounder_*.py and tests/test_cli_localize.py (imported by module name: pytest
puts tests/ on sys.path).
"""

from __future__ import annotations

import numpy as np
import torch

from cmagrounding import Grounder
from cmagrounding.model.config import CMAConfig
from cmagrounding.model.network import CMANetwork
from cmagrounding.text.tokenizer import WordTokenizer
from cmagrounding.video.config import VideoConfig
from cmagrounding.video.features import VideoFeatures

D = 16
SENTENCES = ["a person opens the door", "the person sits on a chair", "someone drinks a cup of coffee"]
QUERIES = ["person opens the door", "a person sits", "someone drinks coffee from a cup on the chair"]


def tiny_video_config(**changes) -> VideoConfig:
    return VideoConfig(extractor="precomputed", feature_dim=D, **changes)


def tiny_grounder(num_phrases: int = 2, seed: int = 0) -> Grounder:
    tok = WordTokenizer.build(SENTENCES)
    cfg = CMAConfig(
        video_dim=D, vocab_size=tok.vocab_size, word_dim=8, num_clips=8, max_words=6, hidden=16,
        lstm_hidden=8, spe_hidden=8, ffn_dim=16, head_hidden=16, num_heads=2, encoder_layers=1,
        decoder_layers=1, num_phrases=num_phrases,
    )
    torch.manual_seed(seed)
    return Grounder(CMANetwork(cfg), tok, tiny_video_config(), device="cpu")


def features(n: int = 20, duration: float = 10.0, seed: int = 1, config: VideoConfig | None = None) -> VideoFeatures:
    rng = np.random.default_rng(seed)
    edges = np.linspace(0.0, duration, n + 1)
    return VideoFeatures(
        features=rng.normal(size=(n, D)).astype(np.float32),
        times=np.stack([edges[:-1], edges[1:]], axis=1),
        duration=duration,
        config=config or tiny_video_config(),
        source="synthetic",
    )


def whole_clips(g, feats):
    """(clips (1, n, D), mask (1, n)): what the network sees of a whole video (LGI's resampling, offset 0, no padding)."""
    import torch

    from cmagrounding.video.resample import resample_features

    clips, mask, _ = resample_features(np.asarray(feats.features), g.num_clips, offset=0.0)
    n = int(mask.sum())
    return torch.from_numpy(clips[:n]).unsqueeze(0), torch.from_numpy(mask[:n]).unsqueeze(0)
