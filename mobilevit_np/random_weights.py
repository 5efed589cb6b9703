"""Seeded random weights for any config, reproducible bit for bit without torch.

For learning (build a model from a config and follow the shapes) and for the golden
fixtures: the values keep activations O(1) through the whole depth, unlike
transformers' 0.02-std init, under which late layers are near zero and hide bugs.
The stream is NumPy's legacy RandomState, which NumPy keeps stable across versions.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from mobilevit_np.architecture_v2 import shapes_for
from mobilevit_np.config import LabelledConfig


def _sample(rng: np.random.RandomState, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One parameter, scaled by what kind of parameter its name says it is."""
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
    if name.endswith("normalization.running_var"):
        return rng.uniform(0.5, 1.5, shape)
    if name.endswith(("normalization.weight", "layernorm_before.weight", "layernorm_after.weight", "layernorm.weight")):
        return rng.uniform(0.7, 1.3, shape)
    if name.endswith(("bias", "running_mean")):
        return rng.normal(0.0, 0.1, shape)
    if len(shape) == 4:  # convolution: He scale, so SiLU/ReLU stacks neither blow up nor die out
        return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    return rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)  # linear (out, in)


def random_state_dict(
    config: LabelledConfig,
    head: str = "classification",
    seed: int = 0,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> dict[str, np.ndarray]:
    """{transformers name: float32 array} for `head` of a MobileViT or MobileViTV2 config.

    Drawn in sorted-name order from `seed`.
    """
    shapes = shapes_for(config, head) if shapes is None else shapes
    rng = np.random.RandomState(seed)
    return {name: _sample(rng, name, shapes[name]).astype(np.float32) for name in sorted(shapes)}


def random_pixel_values(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A seeded float32 image batch, uniform in [0, 1) like rescaled pixels: shape (B, C, H, W)."""
    return np.random.RandomState(seed).uniform(0.0, 1.0, shape).astype(np.float32)


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names and float32 little-endian bytes, in sorted-name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name], dtype="<f4").tobytes())
    return digest.hexdigest()
