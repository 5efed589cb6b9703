"""Convolution kernels: depthwise kxk direct, im2col for dense kxk, fused bias + activation.

Each kernel has a NumPy twin in mobilevit_np.layers with the same arguments (the tests
compare them). Dense and 1x1 convolutions stay matrix products run by NumPy's BLAS
(numba's own np.dot would need SciPy); the kernels do the memory-bound work around them.
"""

from __future__ import annotations

import numpy as np
from mobilevit_np.kernels.config import kernel
from mobilevit_np.kernels.elementwise import activate
from numba import prange

from mobilevit_np.layers import conv_output_size


@kernel(parallel=True)
def _bias_act_channels(x, bias, act):
    """In place: x[b, c, :] = act(x[b, c, :] + bias[c]) on x (B, C, S)."""
    batch, channels, size = x.shape
    for bc in prange(batch * channels):
        b, c = bc // channels, bc % channels
        row = x[b, c]
        shift = bias[c]
        for s in range(size):
            row[s] = activate(row[s] + shift, act)


@kernel(parallel=True)
def _bias_act_rows(x, bias, act):
    """In place: x[r, :] = act(x[r, :] + bias) on x (R, O)."""
    rows, width = x.shape
    for r in prange(rows):
        row = x[r]
        for o in range(width):
            row[o] = activate(row[o] + bias[o], act)


def bias_act(x: np.ndarray, bias: np.ndarray | None, act: int, channel_axis: int) -> np.ndarray:
    """x + bias along `channel_axis` (1 for NCHW maps, -1 for tokens), then activation `act`.

    Works in place on x (a fresh matmul output) and returns it.
    Twin: activation(x + bias[:, None, None]) / activation(x + bias).
    """
    if bias is None:
        bias = np.zeros(x.shape[channel_axis], x.dtype)
    if channel_axis == 1:
        _bias_act_channels(x.reshape(x.shape[0], x.shape[1], -1), bias, act)
    else:
        _bias_act_rows(x.reshape(-1, x.shape[-1]), bias, act)
    return x


@kernel(parallel=True)
def _depthwise(x, weight, bias, stride, padding, dilation, act, x_lo, x_hi, out):
    batch, channels, height, width = x.shape
    k = weight.shape[-1]
    out_h, out_w = out.shape[2], out.shape[3]
    for bc in prange(batch * channels):
        b, c = bc // channels, bc % channels
        acc = np.empty(out_w, x.dtype)  # one output row, accumulated over the k*k taps
        for y in range(out_h):
            acc[:] = bias[c]
            for i in range(k):
                iy = y * stride - padding + i * dilation
                if iy < 0 or iy >= height:
                    continue  # this tap row lies in the zero padding
                src_row = x[b, c, iy]
                for j in range(k):
                    lo, hi = x_lo[j], x_hi[j]
                    if hi <= lo:
                        continue
                    offset = j * dilation - padding  # input column = x * stride + offset
                    # Loops over slices indexed from 0 let LLVM vectorize (no negative-index checks).
                    dst = acc[lo:hi]
                    src = src_row[lo * stride + offset : (hi - 1) * stride + offset + 1 : stride]
                    w = weight[c, 0, i, j]
                    for q in range(dst.size):
                        dst[q] += w * src[q]
            row = out[b, c, y]
            for q in range(out_w):
                row[q] = activate(acc[q], act)


@kernel(parallel=True)
def _depthwise_stride1(x, weight, bias, padding, dilation, act, out):
    batch, channels, height, width = x.shape
    k = weight.shape[-1]
    out_h, out_w = out.shape[2], out.shape[3]
    padded_w = width + 2 * padding
    for bc in prange(batch * channels):
        b, c = bc // channels, bc % channels
        # The zero-padded plane, flattened. Output (y, x) reads padded[(y + i*d) * padded_w + x + j*d]:
        # for one tap that is the flat range [i*d*padded_w + j*d, ... + count) of `padded`, the same
        # for every row, so each tap is one long vectorized loop instead of one short loop per row.
        padded = np.zeros((height + 2 * padding) * padded_w, x.dtype)
        for y in range(height):
            start = (y + padding) * padded_w + padding
            padded[start : start + width] = x[b, c, y]
        count = (out_h - 1) * padded_w + out_w  # acc[y * padded_w + x]; columns x >= out_w are unused
        acc = np.empty(count, x.dtype)
        acc[:] = bias[c]
        for i in range(k):
            for j in range(k):
                shift = i * dilation * padded_w + j * dilation
                src = padded[shift : shift + count]
                w = weight[c, 0, i, j]
                for q in range(count):
                    acc[q] += w * src[q]
        for y in range(out_h):
            row, src = out[b, c, y], acc[y * padded_w : y * padded_w + out_w]
            for q in range(out_w):
                row[q] = activate(src[q], act)


def _valid_columns(
    width: int, out_w: int, kernel_size: int, stride: int, padding: int, dilation: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each tap column j, the output columns [lo, hi) whose input column lies inside the map."""
    offsets = np.arange(kernel_size) * dilation - padding  # input column = x * stride + offset
    lo = np.clip(-(offsets // stride), 0, out_w)  # ceil(-offset / stride): first x with column >= 0
    hi = np.clip((width - 1 - offsets) // stride + 1, lo, out_w)  # past the last x with column < width
    return lo, hi


def depthwise_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    act: int = 0,
) -> np.ndarray:
    """Depthwise convolution with fused bias and activation, computed directly (no im2col).

    x (B, C, H, W), weight (C, 1, k, k), bias (C,) -> (B, C, Ho, Wo).
    Twin: activation(layers.conv2d(x, weight, bias, stride, padding, dilation, groups=C)).
    """
    batch, channels, height, width = x.shape
    kernel_size = weight.shape[-1]
    out_h = conv_output_size(height, kernel_size, stride, padding, dilation)
    out_w = conv_output_size(width, kernel_size, stride, padding, dilation)
    out = np.empty((batch, channels, out_h, out_w), x.dtype)
    if bias is None:
        bias = np.zeros(channels, x.dtype)
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    if stride == 1:
        _depthwise_stride1(x, weight, bias, padding, dilation, act, out)
    else:
        lo, hi = _valid_columns(width, out_w, kernel_size, stride, padding, dilation)
        _depthwise(x, weight, bias, stride, padding, dilation, act, lo, hi, out)
    return out


@kernel(parallel=True)
def _im2col(x, kernel_size, stride, padding, dilation, cols):
    batch, channels, height, width = x.shape
    k = kernel_size
    out_h, out_w = cols.shape[3], cols.shape[4]
    for bct in prange(batch * channels * k * k):
        b, rest = bct // (channels * k * k), bct % (channels * k * k)
        c, t = rest // (k * k), rest % (k * k)
        i, j = t // k, t % k
        offset = j * dilation - padding
        x_lo = min(out_w, max(0, (stride - 1 - offset) // stride))
        x_hi = max(x_lo, min(out_w, (width - 1 - offset) // stride + 1))
        for y in range(out_h):
            row = cols[b, c, t, y]
            iy = y * stride - padding + i * dilation
            if iy < 0 or iy >= height:
                row[:] = 0
                continue
            row[:x_lo] = 0
            if x_hi > x_lo:
                row[x_lo:x_hi] = x[b, c, iy, x_lo * stride + offset : (x_hi - 1) * stride + offset + 1 : stride]
            row[x_hi:] = 0


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """Kernel windows as columns, x (B, C, H, W) -> (B, C, k*k, Ho, Wo). Twin: layers.im2col."""
    batch, channels, height, width = x.shape
    out_h = conv_output_size(height, kernel, stride, padding, dilation)
    out_w = conv_output_size(width, kernel, stride, padding, dilation)
    cols = np.empty((batch, channels, kernel * kernel, out_h, out_w), x.dtype)
    _im2col(np.ascontiguousarray(x), kernel, stride, padding, dilation, cols)
    return cols
