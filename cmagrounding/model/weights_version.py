"""A key that changes whenever a module's weights change: what every derived-weights cache checks.

Caches of tensors computed from a network's weights (a reduced-precision copy, the video
embedding of Eq. 2) must not outlive a training step,
``load_state_dict`` or an in-place edit; a tensor's storage pointer and version counter change
with each of those.
"""

from __future__ import annotations

from torch import nn


def weights_key(module: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer of ``module`` is replaced or modified in place."""
    return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in (*module.parameters(), *module.buffers()))
