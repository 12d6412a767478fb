"""I3D's preprocessing, written once: the released I3D features' settings (25 fps, 16-frame windows
every 8 frames, short side 256, centre crop 224, RGB in [-1, 1]; Mixed_5c averaged, 1024-d).

``i3d_spec`` registers the I3D backbones with it, and ``VideoConfig``'s defaults (the default
extractor, ``i3d_kinetics400``) are read from it, not from the registry: the config stays a leaf
that the registry and the families may import.
"""

from __future__ import annotations

from cmagrounding.video.i3d_weights import SOURCE_NAME

DEFAULT_EXTRACTOR = "i3d_kinetics400"
I3D_PRESET = dict(
    fps=25.0, clip_len=16, stride=8, resize=256, crop=224, value_range=(-1.0, 1.0),
    mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), layer="mixed_5c", feature_dim=1024,
)  # fmt: skip
#: the default extractor's preset (``VideoConfig.for_extractor("i3d_kinetics400")`` gives the same)
DEFAULT_PRESET = {**I3D_PRESET, "weights": SOURCE_NAME}
