"""Conversion to refnx's slab arrays, for cross-checks, benchmarks and fitting.

refnx orders layers from the fronting (beam side) to the backing, with columns
[thickness, sld, isld, roughness], and a layer's roughness is the interface
toward the fronting. Our stacks are substrate first (beam frame) with
[sld, isld, thickness, roughness] and roughness toward the ambient.
"""

from __future__ import annotations

import numpy as np


def to_refnx_slabs(stacks: np.ndarray) -> np.ndarray:
    """(..., L, 4) beam-frame stacks → refnx ``w`` arrays of the same shape."""
    stacks = np.asarray(stacks, dtype=float)
    reversed_ = stacks[..., ::-1, :]
    w = np.empty_like(reversed_)
    w[..., 0] = reversed_[..., 2]
    w[..., 1] = reversed_[..., 0]
    w[..., 2] = reversed_[..., 1]
    # refnx row j (our layer L-1-j) carries the roughness of the interface above
    # it, which is our layer L-1-j's own roughness; the fronting has none.
    w[..., 3] = reversed_[..., 3]
    w[..., 0, 3] = 0.0
    w[..., 0, 2] = 0.0  # the incident medium is taken as transparent
    return w
