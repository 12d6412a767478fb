"""The CMA network (Sections 3.2-3.4), its losses (Section 3.5) and configurations."""

from cmagrounding.model.config import CMAConfig, LossConfig, Preset
from cmagrounding.model.losses import GroundingLoss, LossOutput
from cmagrounding.model.network import CMANetwork, CMAOutput
from cmagrounding.model.presets import PRESETS, get_preset

__all__ = [
    "CMAConfig", "LossConfig", "Preset", "PRESETS", "get_preset",
    "CMANetwork", "CMAOutput", "GroundingLoss", "LossOutput",
]
