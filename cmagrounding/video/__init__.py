"""Video side: decoding, clip sampling, feature extractors and the features they produce.

Importing the package registers every backbone family (``cmagrounding.video.registry``): each
family's ``*_spec.py`` registers itself, as timm's and torchvision's model files do. They hold
names, presets and lazy builders only (no torch).
"""

from cmagrounding.video import c3d_spec, i3d_spec, ptv_spec, tv_spec  # noqa: F401  (they register themselves)
