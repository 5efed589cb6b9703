"""Transformer kernels: layer norm over tokens, the softmax inside attention, head splitting.

The projections and the two attention products (Q K^T and P V) are matrix products,
left to NumPy's BLAS; these kernels do the row-wise passes between them.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.config import kernel
from mobilevit_np.kernels.elementwise import fast_exp
from mobilevit_np.kernels.launch import launch
from mobilevit_np.kernels.workspace import recycled_array, work_array


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
    out = recycled_array(rows.shape, rows.dtype)
    launch(_layer_norm, out.size, rows, weight, bias, x.dtype.type(eps), x.dtype.type(1 / x.shape[-1]), out)
    return out.reshape(x.shape)


_LANES = 16  # float32 lanes of an AVX-512 register


@kernel(parallel=True)
def _scaled_softmax(x, scale):
    rows, width = x.shape
    for r in prange(rows):
        row = x[r]
        # The row max in _LANES independent lanes: a running max(top, v) is one serial
        # dependency chain that LLVM does not vectorize (measured 4x slower).
        lanes = np.full(_LANES, row[0])
        full = width // _LANES * _LANES
        for i in range(0, full, _LANES):
            for lane in range(_LANES):
                v = row[i + lane]
                lanes[lane] = v if v > lanes[lane] else lanes[lane]
        top = lanes.max()
        for i in range(full, width):
            top = max(top, row[i])
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
    launch(_scaled_softmax, x.size, x.reshape(-1, x.shape[-1]), x.dtype.type(scale))
    return x


@kernel(parallel=True)
def _split_heads(projected, bias, length, out):
    sequences, heads, depth = out.shape[1], out.shape[2], out.shape[4]
    width = heads * depth
    for r in prange(sequences * length):
        s, t = r // length, r % length
        src = projected[r]
        for part in range(3):
            for h in range(heads):
                dst = out[part, s, h, t]
                base = part * width + h * depth
                for e in range(depth):
                    dst[e] = src[base + e] + bias[base + e]


def split_heads(
    projected: np.ndarray, bias: np.ndarray, sequences: int, num_heads: int, slot: str | None = None
) -> np.ndarray:
    """Fused q/k/v projections plus bias, regrouped per head: (N*L, 3D) -> (3, N, heads, L, d), contiguous.

    projected[s*L + t, p*D + h*d + e] + bias[p*D + h*d + e] lands in out[p, s, h, t, e], so
    each head's Q, K and V are contiguous (L, d) blocks, as BLAS likes them.
    With `slot`, the result is written into that workspace buffer (see workspace.py).
    Twin: (projected + bias).reshape(N, L, 3, heads, d).transpose(2, 0, 3, 1, 4).
    """
    rows, width3 = projected.shape
    length, depth = rows // sequences, width3 // 3 // num_heads
    shape = (3, sequences, num_heads, length, depth)
    out = np.empty(shape, projected.dtype) if slot is None else work_array(slot, shape, projected.dtype)
    launch(_split_heads, out.size, np.ascontiguousarray(projected), bias, length, out)
    return out
