"""Weights reordered once, at load time, into the layouts the kernels read.

Channels are padded up to whole blocks of 16 (simd.LANES) with zero weights, so a padded
input channel never contributes and a padded output channel is bias 0 + nothing. Where a
layer's input is not simply channels 0..C-1 (the fusion conv reads [residual; global] with
each part padded to whole blocks, attention's output projection reads each head padded to
whole blocks), `in_index` says which real input channel each padded position holds (-1 for
padding). Twins: the weights of transformers' layers as loaded (the tests unpack these).
"""

from __future__ import annotations

import numpy as np

from mobilevit_np.kernels.simd import LANES

ALIGNMENT = 64  # bytes: a cache line, and one 16-float vector, so no vector load or store splits across two lines


def aligned_zeros(shape: tuple[int, ...], dtype: np.dtype = np.float32) -> np.ndarray:
    """np.zeros(shape, dtype) starting on a 64-byte boundary (NumPy only promises 16). A vector load that
    straddles two cache lines costs two; measured on a 1x1 conv tile: 122 GFLOP/s with weights 48 bytes
    off a line, 148 aligned."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.zeros(count * dtype.itemsize + ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + count * dtype.itemsize].view(dtype).reshape(shape)


def aligned(array: np.ndarray) -> np.ndarray:
    """A 64-byte aligned, C-contiguous copy of array (aligned_zeros)."""
    out = aligned_zeros(array.shape, array.dtype)
    out[...] = array
    return out


def num_blocks(channels: int) -> int:
    """Blocks of 16 that hold `channels` channels."""
    return -(-channels // LANES)


def channel_index(channels: int) -> np.ndarray:
    """in_index of a plain map: padded position p holds channel p, or -1 past `channels`. (CB*16,)"""
    index = np.arange(num_blocks(channels) * LANES)
    return np.where(index < channels, index, -1)


def concat_index(*parts: int) -> np.ndarray:
    """in_index of maps concatenated along channels, each padded to whole blocks."""
    offsets = np.cumsum((0,) + parts[:-1])
    return np.concatenate(
        [np.where(channel_index(c) >= 0, channel_index(c) + o, -1) for c, o in zip(parts, offsets, strict=True)]
    )


def heads_index(width: int, num_heads: int) -> np.ndarray:
    """in_index of attention's context: head h's d = width/heads channels padded to whole blocks, head after head."""
    d = width // num_heads
    return concat_index(*[d] * num_heads)


def kernel_taps(size: int, dilation: int) -> np.ndarray:
    """(dy, dx) of each offset of a size x size kernel around the output pixel, row-major. (size*size, 2) int64"""
    centre = (size - 1) // 2
    steps = (np.arange(size) - centre) * dilation
    return np.stack(np.meshgrid(steps, steps, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.int64)


def pack_conv(weight: np.ndarray, in_index: np.ndarray | None = None) -> np.ndarray:
    """(O, C, kh, kw) -> (OB, kh*kw, Kp, 16) with packed[ob, t, p, l] = weight[ob*16 + l, in_index[p], t]."""
    out_channels, in_channels, kh, kw = weight.shape
    if in_index is None:
        in_index = channel_index(in_channels)
    taps = weight.reshape(out_channels, in_channels, kh * kw)
    padded = np.zeros((num_blocks(out_channels) * LANES, len(in_index), kh * kw), weight.dtype)
    real = in_index >= 0
    padded[:out_channels, real] = taps[:, in_index[real]]
    blocked = padded.reshape(-1, LANES, len(in_index), kh * kw)  # (OB, 16, Kp, T)
    return aligned(blocked.transpose(0, 3, 2, 1))


def pack_linear(weight: np.ndarray, in_index: np.ndarray | None = None) -> np.ndarray:
    """A linear's (O, C) weight as a 1x1 convolution's: (OB, 1, Kp, 16)."""
    return pack_conv(weight[:, :, None, None], in_index)


def pack_depthwise(weight: np.ndarray) -> np.ndarray:
    """(C, 1, k, k) -> (CB, k*k, 16) with packed[cb, t, l] = weight[cb*16 + l, 0, t]."""
    channels = weight.shape[0]
    taps = weight.reshape(channels, -1)
    padded = np.zeros((num_blocks(channels) * LANES, taps.shape[1]), weight.dtype)
    padded[:channels] = taps
    return aligned(padded.reshape(-1, LANES, taps.shape[1]).transpose(0, 2, 1))


def pack_vector(values: np.ndarray | None, channels: int, dtype: np.dtype) -> np.ndarray:
    """A bias or norm parameter (C,) padded with zeros to whole blocks (CB*16,); None gives zeros."""
    padded = aligned_zeros((num_blocks(channels) * LANES,), dtype)
    if values is not None:
        padded[:channels] = values
    return padded
