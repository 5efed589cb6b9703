"""Transformer kernels: layer norm over tokens and the softmax inside attention.

The projections and the two attention products (Q K^T and P V) are matrix products,
left to NumPy's BLAS; these kernels do the row-wise passes between them.
"""

from __future__ import annotations

import numpy as np
from mobilevit_np.kernels.config import kernel
from mobilevit_np.kernels.elementwise import fast_exp
from numba import prange


@kernel(parallel=True)
def _layer_norm(x, weight, bias, eps, inv_width, out):
    rows, width = x.shape
    for r in prange(rows):
        src, dst = x[r], out[r]
        mean = src.sum() * inv_width
        var = np.float32(0) * mean
        for i in range(width):
            d = src[i] - mean
            var += d * d
        inv = np.float32(1) / np.sqrt(var * inv_width + eps)
        for i in range(width):
            dst[i] = (src[i] - mean) * inv * weight[i] + bias[i]


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalize each token over its features: x (..., D) -> (..., D). Twin: layers.layer_norm."""
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    _layer_norm(rows, weight, bias, x.dtype.type(eps), x.dtype.type(1 / x.shape[-1]), out)
    return out.reshape(x.shape)


@kernel(parallel=True)
def _scaled_softmax(x, scale):
    rows, width = x.shape
    for r in prange(rows):
        row = x[r]
        top = row.max()
        total = np.float32(0) * top
        for i in range(width):
            e = fast_exp((row[i] - top) * scale)
            row[i] = e
            total += e
        inv = np.float32(1) / total
        for i in range(width):
            row[i] *= inv


def scaled_softmax(x: np.ndarray, scale: float) -> np.ndarray:
    """softmax(x * scale) along the last axis, in place on x (which must be C-contiguous), returned.

    Twin: layers.softmax(x * scale, axis=-1). Since scale > 0, max(x * scale) = scale * max(x).
    """
    if not x.flags.c_contiguous:
        raise ValueError("scaled_softmax works in place and needs a C-contiguous array")
    _scaled_softmax(x.reshape(-1, x.shape[-1]), x.dtype.type(scale))
    return x
