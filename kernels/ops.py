"""The fast primitives: the same signatures as the reference ops in mobilevit_np.model.

model.py's blocks call `ops.conv_layer`, `ops.linear`, ... ; the numba backend hands them
these functions instead of the NumPy ones (see mobilevit_np.backends). Each is glue:
BLAS matrix products through NumPy, and jitted kernels for the passes around them, fused
so a feature map is written once per layer (conv + bias + activation in one pass, with
batch norm already folded into the conv weights at load time).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from mobilevit_np.activations import get_activation as reference_activation
from mobilevit_np.activations import relu, silu
from mobilevit_np.backends import fold_batch_norm
from mobilevit_np.kernels.config import kernel
from mobilevit_np.kernels.conv import bias_act, dense_conv2d, depthwise_conv2d, im2col
from mobilevit_np.kernels.elementwise import NONE, RELU, SILU, activate
from mobilevit_np.kernels.launch import launch
from mobilevit_np.kernels.transformer import scaled_softmax, split_heads
from mobilevit_np.kernels.workspace import recycled_array, work_array
from mobilevit_np.layers import conv2d
from mobilevit_np.model import Activation, Params

# Dense stride-1 convs use conv.dense_conv2d while the padding is at most 1/8 of the width
# (its matmul does (H+2p)(W+2p)/(HW) times the work); beyond that (ASPP's atrous convs at
# 32x32) im2col. mobilevit-small per layer (2 threads), im2col -> dense_conv2d:
# 192->96 at 32x32 3.29 -> 1.75 ms, 256->128 at 16x16 1.57 -> 1.16, 320->160 at 8x8 0.78 -> 0.56.
SHIFTED_MAX_PAD_RATIO = 8


@kernel(parallel=True)
def _activate_rows(x, act, out):
    """out[r, :] = act(x[r, :]) on x, out (R, W)."""
    rows, width = x.shape
    for r in prange(rows):
        src, dst = x[r], out[r]
        # Rows, not one flat loop in chunks: LLVM vectorized this form only (2x faster, 0.45 vs
        # 0.88 ms for 1M values; the chunked loop's computed bounds kept it scalar).
        for i in range(width):
            dst[i] = activate(src[i], act)


def fast_silu(x: np.ndarray) -> np.ndarray:
    """SiLU as one pass over the rows of the last axis. Twin: activations.silu."""
    out = recycled_array(x.shape, x.dtype)
    rows = np.ascontiguousarray(x).reshape(math.prod(x.shape[:-1]), x.shape[-1])
    launch(_activate_rows, out.size, rows, SILU, out.reshape(rows.shape))
    return out


# Activations the kernels can fuse, by the function model.py passes.
_FUSED = {silu: SILU, fast_silu: SILU, relu: RELU}


def get_activation(name: str) -> Activation:
    """Like activations.get_activation, with SiLU ("silu", "swish") as the jitted fast_silu."""
    activation = reference_activation(name)
    return fast_silu if activation is silu else activation


def conv_layer(
    x: np.ndarray,
    convolution: Params,
    normalization: Params | None = None,
    *,
    stride: int = 1,
    dilation: int = 1,
    activation: Activation | None = None,
) -> np.ndarray:
    """convolution -> batch norm -> activation, as model.conv_layer, fused.

    x (B, C, H, W) -> (B, O, Ho, Wo). Batch norm is folded into the weights here unless the
    parameters were folded at load time (backends.fold_batch_norms: then normalization is None).
    1x1: one matmul per image; depthwise: a direct kernel; dense kxk at stride 1: one matmul
    per image over the padded input and a kernel summing the shifted taps (conv.dense_conv2d),
    unless the padding is large against the width; else (the stride-2 stem, ASPP's atrous
    convs) im2col + matmul.
    """
    weight, bias, taps = convolution["weight"], convolution.get("bias"), convolution.get("taps")
    if normalization is not None:
        weight, bias = fold_batch_norm(weight, bias, normalization)
        taps = None  # made for the folded weights (backends.prepare_params)
    act = _FUSED.get(activation, NONE if activation is None else -1)
    fused = act if act >= 0 else NONE
    batch, channels, height, width = x.shape
    out_channels, group_channels, size, _ = weight.shape
    groups = channels // group_channels
    padding = (size - 1) // 2 * dilation
    if groups == 1 and size == 1 and stride == 1:
        out = recycled_array((batch, out_channels, height * width), x.dtype)
        np.matmul(weight.reshape(out_channels, channels), x.reshape(batch, channels, height * width), out=out)
        out = bias_act(out.reshape(batch, out_channels, height, width), bias, fused, channel_axis=1)
    elif groups == channels == out_channels:
        out = depthwise_conv2d(x, weight, bias, stride, padding, dilation, fused)
    elif groups == 1 and stride == 1 and padding * SHIFTED_MAX_PAD_RATIO <= width:
        out = dense_conv2d(x, weight, bias, padding, dilation, fused, taps)
    elif groups == 1:
        cols = im2col(x, size, stride, padding, dilation, slot="conv_layer.cols")  # (B, C, k*k, Ho, Wo)
        out_h, out_w = cols.shape[3:]
        out = recycled_array((batch, out_channels, out_h * out_w), x.dtype)
        np.matmul(weight.reshape(out_channels, -1), cols.reshape(batch, -1, out_h * out_w), out=out)
        out = bias_act(out.reshape(batch, out_channels, out_h, out_w), bias, fused, channel_axis=1)
    else:  # grouped convolutions other than depthwise: not in MobileViT, kept correct
        out = conv2d(x, weight, None, stride, padding, dilation, groups)
        out = bias_act(out, bias, fused, channel_axis=1)
    return out if act >= 0 else activation(out)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (..., in) @ weight.T + bias -> (..., out) as one matmul over all tokens. Twin: layers.linear."""
    tokens = x.reshape(-1, x.shape[-1])
    out = recycled_array((tokens.shape[0], weight.shape[0]), x.dtype)
    np.matmul(tokens, weight.T, out=out)  # (tokens, out)
    return bias_act(out, bias, NONE, channel_axis=-1).reshape(*x.shape[:-1], weight.shape[0])


def fuse_qkv(query: dict, key: dict, value: dict) -> dict[str, np.ndarray]:
    """The three projections as one: weight (3D, D) = [Wq; Wk; Wv], bias (3D,)."""
    weight = np.concatenate([query["weight"], key["weight"], value["weight"]])
    width = query["weight"].shape[0]
    biases = [p.get("bias") for p in (query, key, value)]
    bias = np.concatenate([np.zeros(width, weight.dtype) if b is None else b for b in biases])
    return {"weight": weight, "bias": bias}


def multi_head_attention(
    x: np.ndarray,
    query: dict[str, np.ndarray],
    key: dict[str, np.ndarray],
    value: dict[str, np.ndarray],
    num_heads: int,
    qkv: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled dot-product attention, as layers.multi_head_attention: (N, L, D) -> context, probs.

    `qkv` is fuse_qkv(query, key, value), made once at load time (backends.prepare_params);
    without it the weights are fused here. One matmul projects all tokens of all sequences
    to Q, K and V at once; a kernel adds the bias and regroups them per head into contiguous
    (L, d) blocks; the scores are written once by BLAS and turned into probabilities in
    place by the softmax kernel.
    """
    n, length, width = x.shape
    head_dim = width // num_heads
    if qkv is None:
        qkv = fuse_qkv(query, key, value)
    # The projections and Q, K, V are temporaries: workspace buffers (workspace.py).
    projected = work_array("attention.projected", (n * length, 3 * width), x.dtype)
    np.matmul(x.reshape(n * length, width), qkv["weight"].T, out=projected)  # (N*L, 3D)
    q, k, v = split_heads(projected, qkv["bias"], n, num_heads, slot="attention.heads")  # each (N, heads, L, d)
    scores = recycled_array((n, num_heads, length, length), x.dtype)  # returned as probs: recycled, not a slot
    np.matmul(q, k.transpose(0, 1, 3, 2), out=scores)
    probs = scaled_softmax(scores, 1 / math.sqrt(head_dim))  # (N, heads, L, L)
    context = recycled_array((n, length, width), x.dtype)
    # Each head's P V lands in its d columns of the (N, L, D) context: no transpose copy afterwards.
    np.matmul(probs, v, out=context.reshape(n, length, num_heads, head_dim).transpose(0, 2, 1, 3))
    return context, probs
