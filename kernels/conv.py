"""Convolution kernels: depthwise kxk direct, dense kxk by shifted taps or im2col, fused bias + activation.

Each kernel has a NumPy twin in mobilevit_np.layers with the same arguments (the tests
compare them). Dense and 1x1 convolutions stay matrix products run by NumPy's BLAS
(numba's own np.dot would need SciPy); the kernels do the memory-bound work around them.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.config import kernel
from mobilevit_np.kernels.elementwise import activate
from mobilevit_np.kernels.launch import launch
from mobilevit_np.kernels.workspace import recycled_array, work_array
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
        launch(_bias_act_channels, x.size, x.reshape(x.shape[0], x.shape[1], -1), bias, act)
    else:
        launch(_bias_act_rows, x.size, x.reshape(-1, x.shape[-1]), bias, act)
    return x


@kernel(parallel=True)
def _depthwise(x, weight, bias, stride, padding, dilation, act, out):
    batch, channels, height, width = x.shape
    k = weight.shape[-1]
    out_h, out_w = out.shape[2], out.shape[3]
    # The zero-padded plane split into stride*stride phases: phase (a, b) holds the padded pixels
    # (r*stride + a, c*stride + b) at (r, c). Output (y, x) of tap (i, j) reads padded pixel
    # (y*stride + i*d, x*stride + j*d), which is phase ((i*d) % stride, (j*d) % stride) at
    # (y + (i*d) // stride, x + (j*d) // stride): the same shift for every output pixel. So with
    # rows of the phase width, each tap is one long vectorized loop over the flattened output.
    phase_h = (height + 2 * padding + stride - 1) // stride
    phase_w = (width + 2 * padding + stride - 1) // stride
    count = (out_h - 1) * phase_w + out_w  # acc[y * phase_w + x]; columns x >= out_w are unused
    for bc in prange(batch * channels):
        b, c = bc // channels, bc % channels
        phases = np.zeros((stride, stride, phase_h * phase_w), x.dtype)
        for r in range(height):
            row_phase, phase_row = (r + padding) % stride, (r + padding) // stride
            if stride == 1:  # a contiguous copy (the strided one below is not vectorized)
                start = phase_row * phase_w + padding
                phases[0, 0, start : start + width] = x[b, c, r]
                continue
            for col_phase in range(stride):
                first = (col_phase - padding) % stride  # first input column in this phase
                n = (width - first + stride - 1) // stride
                start = phase_row * phase_w + (first + padding) // stride
                phases[row_phase, col_phase, start : start + n] = x[b, c, r, first::stride]
        acc = np.empty(count, x.dtype)
        acc[:] = bias[c]
        for i in range(k):
            for j in range(k):
                row_phase, row_shift = (i * dilation) % stride, (i * dilation) // stride
                col_phase, col_shift = (j * dilation) % stride, (j * dilation) // stride
                shift = row_shift * phase_w + col_shift
                src = phases[row_phase, col_phase, shift : shift + count]
                w = weight[c, 0, i, j]
                for q in range(count):
                    acc[q] += w * src[q]
        for y in range(out_h):
            row, src = out[b, c, y], acc[y * phase_w : y * phase_w + out_w]
            for q in range(out_w):
                row[q] = activate(src[q], act)


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
    out = recycled_array((batch, channels, out_h, out_w), x.dtype)
    if bias is None:
        bias = np.zeros(channels, x.dtype)
    x, weight = np.ascontiguousarray(x), np.ascontiguousarray(weight)
    launch(_depthwise, out.size, x, weight, bias, stride, padding, dilation, act, out)
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


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int, dilation: int, slot: str | None = None) -> np.ndarray:
    """Kernel windows as columns, x (B, C, H, W) -> (B, C, k*k, Ho, Wo). Twin: layers.im2col.

    With `slot`, the columns go into that reusable workspace buffer (see workspace.py).
    """
    batch, channels, height, width = x.shape
    out_h = conv_output_size(height, kernel, stride, padding, dilation)
    out_w = conv_output_size(width, kernel, stride, padding, dilation)
    shape = (batch, channels, kernel * kernel, out_h, out_w)
    cols = np.empty(shape, x.dtype) if slot is None else work_array(slot, shape, x.dtype)
    launch(_im2col, cols.size, np.ascontiguousarray(x), kernel, stride, padding, dilation, cols)
    return cols


@kernel(parallel=True)
def _sum_taps(taps, bias, kernel_size, dilation, padded_w, act, out):
    """out[b, o, y, x] = act(bias[o] + sum over taps (i, j) of taps[b, i*k + j, o, (y + i*d) * padded_w + x + j*d])."""
    batch, channels, out_h, out_w = out.shape
    k = kernel_size
    count = (out_h - 1) * padded_w + out_w  # acc[y * padded_w + x]; columns x >= out_w are unused
    for bo in prange(batch * channels):
        b, o = bo // channels, bo % channels
        acc = np.empty(count, out.dtype)
        acc[:] = bias[o]
        for i in range(k):
            for j in range(k):
                shift = i * dilation * padded_w + j * dilation
                src = taps[b, i * k + j, o, shift : shift + count]
                for q in range(count):  # one long vectorized loop per tap
                    acc[q] += src[q]
        for y in range(out_h):
            row, src = out[b, o, y], acc[y * padded_w : y * padded_w + out_w]
            for q in range(out_w):
                row[q] = activate(src[q], act)


def tap_major(weight: np.ndarray) -> np.ndarray:
    """Conv weights (O, C, k, k) -> (k*k*O, C), rows ordered by tap then output channel, contiguous."""
    out_channels, channels, k, _ = weight.shape
    return np.ascontiguousarray(weight.transpose(2, 3, 0, 1)).reshape(k * k * out_channels, channels)


def dense_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    padding: int,
    dilation: int,
    act: int,
    taps: np.ndarray | None = None,
) -> np.ndarray:
    """A stride-1 dense kxk convolution + bias + activation as one matmul over the padded input, no im2col.

    x (B, C, H, W), weight (O, C, k, k) -> (B, O, H, W) (the padding keeps the size).
    With the zero-padded planes flattened (rows of Wp = W + 2p), tap (i, j) of output pixel
    (y, x) reads flat position (y + i*d) * Wp + x + j*d: the same shift for every pixel. So
    one matmul, weights (k*k*O, C) @ padded input (C, Hp*Wp), gives every tap's
    contribution at every padded position, and a kernel sums the k*k shifted planes, adds
    the bias and applies the activation. The matmul is k*k*O rows by C deep (im2col's is O
    by k*k*C) and does (Hp*Wp)/(H*W) times the work, so this suits padding small against W.
    `taps` is tap_major(weight), if made once at load time (backends.prepare_params).
    Twin: activation(layers.conv2d(x, weight, bias, 1, padding, dilation)).
    """
    batch, channels, height, width = x.shape
    out_channels, _, k, _ = weight.shape
    padded_h, padded_w = height + 2 * padding, width + 2 * padding
    # Both temporaries come from the workspace (reused across calls, see workspace.py).
    padded = work_array("dense_conv2d.padded", (batch, channels, padded_h, padded_w), x.dtype)
    padded.fill(0)
    padded[:, :, padding : padding + height, padding : padding + width] = x
    if taps is None:
        taps = tap_major(weight)  # (k*k*O, C)
    products = work_array("dense_conv2d.products", (batch, k * k * out_channels, padded_h * padded_w), x.dtype)
    np.matmul(taps, padded.reshape(batch, channels, padded_h * padded_w), out=products)  # (B, k*k*O, Hp*Wp)
    if bias is None:
        bias = np.zeros(out_channels, x.dtype)
    out = recycled_array((batch, out_channels, height, width), x.dtype)
    products = products.reshape(batch, k * k, out_channels, padded_h * padded_w)
    launch(_sum_taps, out.size * k * k, products, bias, k, dilation, padded_w, act, out)
    return out
