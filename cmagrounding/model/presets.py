"""Named configurations of the paper's settings (Sections 4.1-4.3) for both datasets.

"simple" is the single-phrase model (K = 1, Eq. 12), "full" the multi-phrase "+" model of
Tables 1-2. The paper does not give K for the full model: K = 3 (Charades-STA) and 5 (ActivityNet
Captions) are LGI's fallback values.
"""

from __future__ import annotations

from cmagrounding.errors import ConfigError
from cmagrounding.model.config import CMAConfig, LossConfig, Preset

_CHARADES = dict(video_dim=1024, vocab_size=1140, max_words=10)  # I3D features, paper
_ACTIVITYNET = dict(video_dim=500, vocab_size=11125, max_words=25)  # C3D + PCA-500, paper

PRESETS: dict[str, Preset] = {
    "charades-simple": Preset(
        "charades-simple",
        CMAConfig(**_CHARADES, num_phrases=1),
        LossConfig(alpha=10.0, beta=0.1),
        "Charades-STA, I3D 1024-d, single phrase (Table 1, 'Ours')",
    ),
    "charades-full": Preset(
        "charades-full",
        CMAConfig(**_CHARADES, num_phrases=3),
        LossConfig(alpha=10.0, beta=0.1),
        "Charades-STA, I3D 1024-d, K = 3 phrases (Table 1, 'Ours+'; K is LGI's fallback)",
    ),
    "activitynet-simple": Preset(
        "activitynet-simple",
        CMAConfig(**_ACTIVITYNET, num_phrases=1),
        LossConfig(alpha=2.0, beta=0.4),
        "ActivityNet Captions, C3D 500-d, single phrase (Table 2, 'Ours')",
    ),
    "activitynet-full": Preset(
        "activitynet-full",
        CMAConfig(**_ACTIVITYNET, num_phrases=5),
        LossConfig(alpha=2.0, beta=0.4),
        "ActivityNet Captions, C3D 500-d, K = 5 phrases (Table 2, 'Ours+'; K is LGI's fallback)",
    ),
}


def get_preset(name: str) -> Preset:
    """Return a fresh copy of the named preset (mutating it does not change the registry)."""
    try:
        p = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return Preset(p.name, p.model.replace(), p.loss.replace(), p.description, dict(p.notes))
