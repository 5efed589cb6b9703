"""The building blocks, one NumPy function each.

Feature maps are NCHW like PyTorch: (batch, channels, height, width). Token tensors
are (sequences, tokens, features). Every function computes in its input's dtype, so
the same code runs in float32 (what checkpoints hold) and float64 (to check the
arithmetic against a reference to ~1e-12).
"""

from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------- convolution


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution along one axis (PyTorch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def stride_phases(padded: np.ndarray, stride: int) -> dict[tuple[int, int], np.ndarray]:
    """The stride x stride phases of a padded map: phase (a, b) holds its pixels (s*y + a, s*x + b).

    padded (B, C, Hp, Wp) -> {(a, b): (B, C, ~Hp/s, ~Wp/s)},
        phase[a, b][..., y, x] = padded[..., s*y + a, s*x + b]
    so that a window taken at stride s is a window of one phase taken at stride 1: rows of
    neighbouring values, which NumPy copies and adds far faster than every s-th value. At
    stride 1 the one phase is `padded` itself (no copy).
    """
    if stride == 1:
        return {(0, 0): padded}
    return {
        (a, b): np.ascontiguousarray(padded[:, :, a::stride, b::stride]) for a in range(stride) for b in range(stride)
    }


def kernel_windows(x: np.ndarray, kernel: int, stride: int, padding: int, dilation: int) -> list[np.ndarray]:
    """The k*k views of the zero-padded map that a kxk kernel's taps read.

    x (B, C, H, W) -> [window_t for t = i*k + j], each (B, C, Ho, Wo), where
        window_t[b, c, y, x] = padded[b, c, y*stride + i*dilation, x*stride + j*dilation]
    taken as a stride-1 window of stride phase (i*d % s, j*d % s), shifted by (i*d // s, j*d // s).
    """
    _, _, height, width = x.shape
    out_h = conv_output_size(height, kernel, stride, padding, dilation)
    out_w = conv_output_size(width, kernel, stride, padding, dilation)
    phases = stride_phases(np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))), stride)
    windows = []
    for t in range(kernel * kernel):
        dy, dx = t // kernel * dilation, t % kernel * dilation
        phase = phases[dy % stride, dx % stride]
        windows.append(phase[:, :, dy // stride : dy // stride + out_h, dx // stride : dx // stride + out_w])
    return windows


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """Gather every kernel window of a zero-padded map into one column.

    x (B, C, H, W) -> cols (B, C, k*k, Ho, Wo), cols[:, :, t] = kernel_windows(...)[t],
    so that a convolution becomes one matrix product over the (C, k*k) axis.
    """
    return np.stack(kernel_windows(x, kernel, stride, padding, dilation), axis=2)


# Bytes of a feature map that one loop step works on: with its temporaries it stays in the L2 cache
# from one pass to the next (256 KB ran best of 32 KB .. 1 MB, docs/performance.md).
CACHE_BLOCK_BYTES = 256 * 1024


def channel_blocks(channels: int, bytes_per_channel: int) -> list[slice]:
    """Slices of the channel axis of about CACHE_BLOCK_BYTES each (at least one channel each)."""
    step = max(1, CACHE_BLOCK_BYTES // bytes_per_channel)
    return [slice(start, start + step) for start in range(0, channels, step)]


def depthwise_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
) -> np.ndarray:
    """A depthwise convolution (groups = channels): each channel filtered alone.

    x (B, C, H, W), weight (C, 1, k, k), bias (C,) -> (B, C, Ho, Wo)

    out[b, c, y, x] = bias[c] + sum_{i, j} weight[c, 0, i, j] * padded[b, c, s*y + i*d, s*x + j*d]

    Channels are independent, so they go in blocks that stay in the L2 cache through the k*k
    passes of shifted_window_sum (where whole maps would stream through memory once per tap).
    """
    batch, channels, height, width = x.shape
    kernel = weight.shape[-1]
    out_h = conv_output_size(height, kernel, stride, padding, dilation)
    out_w = conv_output_size(width, kernel, stride, padding, dilation)
    out = np.empty((batch, channels, out_h, out_w), dtype=x.dtype)
    for block in channel_blocks(channels, x[:, 0].nbytes):
        out[:, block] = shifted_window_sum(x[:, block], weight[block], stride, padding, dilation)
    if bias is not None:
        out += bias[:, None, None]
    return out


def shifted_window_sum(x: np.ndarray, weight: np.ndarray, stride: int, padding: int, dilation: int) -> np.ndarray:
    """Each channel's weighted sum of its k*k shifted windows: a depthwise convolution without bias.

    x (B, C, H, W), weight (C, 1, k, k) -> (B, C, Ho, Wo), one multiply-add over the map per tap.

    NumPy runs a multiply-add fast over one long contiguous run and slowly over many short rows,
    so each window is laid out as one run (3x faster at stride 1, docs/performance.md):
    - tap (i, j) reads stride phase (i*d % s, j*d % s) shifted by (i*d // s, j*d // s), as in kernel_windows;
    - in a phase flattened row after row (Wq wide), a shift by (dy, dx) is one shift by dy*Wq + dx,
      so the sum is computed for a (Ho, Wq) grid, and its columns past Wo, which wrap into the
      next row, are dropped.
    """
    batch, channels, height, width = x.shape
    kernel = weight.shape[-1]
    out_h = conv_output_size(height, kernel, stride, padding, dilation)
    out_w = conv_output_size(width, kernel, stride, padding, dilation)
    reach = dilation * (kernel - 1) // stride  # the largest shift inside a phase
    grid_h, grid_w = out_h + reach + 1, out_w + reach  # one row more: the last tap's run ends past row Ho + reach
    # Zero-padded to exactly (s*grid_h, s*grid_w): no tap reads the rows and columns past that.
    padded = np.zeros((batch, channels, stride * grid_h, stride * grid_w), dtype=x.dtype)
    rows, cols = min(height, stride * grid_h - padding), min(width, stride * grid_w - padding)
    padded[:, :, padding : padding + rows, padding : padding + cols] = x[:, :, :rows, :cols]
    phases = {phase: values.reshape(batch, channels, -1) for phase, values in stride_phases(padded, stride).items()}
    taps = weight.reshape(channels, kernel * kernel, 1)  # (C, k*k, 1)
    run = out_h * grid_w  # one tap's run: the (Ho, Wq) grid, flattened
    total, product = np.empty((batch, channels, run), dtype=x.dtype), np.empty((batch, channels, run), dtype=x.dtype)
    for t in range(kernel * kernel):
        dy, dx = t // kernel * dilation, t % kernel * dilation
        start = dy // stride * grid_w + dx // stride
        window = phases[dy % stride, dx % stride][:, :, start : start + run]  # (B, C, Ho*Wq)
        if t == 0:
            np.multiply(window, taps[:, 0], out=total)
        else:
            total += np.multiply(window, taps[:, t], out=product)  # in place: no new array per tap
    return total.reshape(batch, channels, out_h, grid_w)[:, :, :, :out_w]


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    groups: int = 1,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in PyTorch).

    x (B, C, H, W), weight (O, C/groups, k, k), bias (O,) -> (B, O, Ho, Wo)

    out[b, o] = bias[o] + sum_{c in group(o), i, j} weight[o, c, i, j] * padded[b, c, y*s + i*d, x*s + j*d]

    groups=1 is a dense convolution, groups=C a depthwise one (each channel filtered alone).
    A 1x1 convolution skips im2col: it is already a matrix product over channels.
    """
    batch, channels, _, _ = x.shape
    out_channels, group_channels, kernel, _ = weight.shape
    if groups == channels == out_channels and kernel > 1:
        return depthwise_conv2d(x, weight, bias, stride, padding, dilation)
    if kernel == 1 and stride == 1 and padding == 0:
        out_h, out_w = x.shape[2:]
        cols = x.reshape(batch, groups, group_channels, out_h * out_w)  # (B, G, C/G, HW)
    else:
        cols = im2col(x, kernel, stride, padding, dilation)  # (B, C, k*k, Ho, Wo)
        out_h, out_w = cols.shape[3:]
        cols = cols.reshape(batch, groups, group_channels * kernel * kernel, out_h * out_w)
    w = weight.reshape(groups, out_channels // groups, group_channels * kernel * kernel)
    out = np.matmul(w, cols)  # (G, O/G, K) @ (B, G, K, HW) -> (B, G, O/G, HW)
    out = out.reshape(batch, out_channels, out_h, out_w)
    if bias is not None:
        out += bias[:, None, None]  # in place on the fresh matmul result, as in batch_norm
    return out


# ---------------------------------------------------------------- normalization


def batch_norm(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    eps: float = 1e-5,
) -> np.ndarray:
    """Inference-time batch norm over channels: x (B, C, H, W) -> (B, C, H, W).

    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, per channel,
    using the statistics gathered in training (never the batch's own).
    """
    scale = weight / np.sqrt(running_var + x.dtype.type(eps))  # (C,)
    shift = bias - running_mean * scale  # (C,)
    out = x * scale[:, None, None]
    # In place: one feature-map-sized temporary fewer, whose fresh pages would cost time (docs/performance.md).
    out += shift[:, None, None]
    return out


def fold_batch_norm(
    weight: np.ndarray, bias: np.ndarray | None, normalization: dict[str, np.ndarray], eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference batch norm into the convolution before it.

    conv weight (O, C/g, k, k), conv bias (O,) or None, and the norm's {weight, bias,
    running_mean, running_var} (each (O,)) -> (weight', bias') such that
        batch_norm(conv(x, weight, bias)) == conv(x, weight', bias')
    with scale = norm.weight / sqrt(running_var + eps):
        weight' = weight * scale[:, None, None, None],  bias' = (bias - running_mean) * scale + norm.bias
    The fast engine does this once per layer at load time (kernels/engine.py); this reference
    path does not, so that it mirrors transformers step by step.
    """
    mean, var = normalization["running_mean"], normalization["running_var"]
    scale = normalization["weight"] / np.sqrt(var + weight.dtype.type(eps))  # (O,)
    conv_bias = np.zeros_like(mean) if bias is None else bias
    return weight * scale[:, None, None, None], (conv_bias - mean) * scale + normalization["bias"]


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Normalize each token over its features: x (..., D) -> (..., D).

    y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance.
    """
    centered = x - x.mean(axis=-1, keepdims=True)  # (..., D)
    var = np.square(centered).mean(axis=-1, keepdims=True)  # (..., 1)
    # The rest in place on `centered`: the same arithmetic without a new array per step.
    centered /= np.sqrt(var + x.dtype.type(eps))
    centered *= weight
    centered += bias
    return centered


def group_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """GroupNorm with one group (MobileViTV2's "layer norm"): x (B, C, ...) -> same shape.

    Each sample is normalized over all of its values at once (channels, pixels in a patch
    and patches), then scaled and shifted per channel:
        y[b, c] = (x[b, c] - mean_b) / sqrt(var_b + eps) * weight[c] + bias[c]
    Unlike layer_norm above, which normalizes each token over its D features alone.
    """
    axes = tuple(range(1, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)  # (B, 1, ...)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    per_channel = (slice(None),) + (None,) * (x.ndim - 2)  # (C,) -> (C, 1, ...)
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * weight[per_channel] + bias[per_channel]


# ------------------------------------------------------------ dense and pooling


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (..., in) @ weight.T (in, out) + bias (out,) -> (..., out); weight is (out, in) as in PyTorch."""
    # One matrix product over all leading axes (x as (N*L, in)): for a 3-D x np.matmul would
    # make one small product per sequence (docs/performance.md).
    out = x.reshape(-1, x.shape[-1]) @ weight.T  # (N*L, out)
    if bias is not None:
        out += bias  # in place on the fresh product
    return out.reshape(*x.shape[:-1], weight.shape[0])


def global_avg_pool(x: np.ndarray) -> np.ndarray:
    """Mean over the spatial axes: (B, C, H, W) -> (B, C)."""
    return x.mean(axis=(2, 3))


# ---------------------------------------------------------------- attention


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the max so exp never overflows.

    Written into `out` when given (x itself works: attention's fresh scores become its
    probabilities without a second (N, heads, L, L) array, 88 -> 68 ms at L = 1024).
    """
    e = np.subtract(x, x.max(axis=axis, keepdims=True), out=out)  # <= 0; then in place, no new array per step
    # A term e^t below (smallest normal float) * e * L would make e^t or its probability (>= e^t / L) a
    # subnormal number, which x86 computes 10-40x slower: a softmax of random-weight scores took 11.8 ms
    # against 2.8, the product probs @ V after it 38 ms against 0.9 (docs/performance.md). Such terms are
    # below 1e-34 of the row's largest, 1 (float32), so they are raised to that floor instead.
    np.maximum(e, np.log(np.finfo(x.dtype).tiny * x.shape[axis]) + 1, out=e)
    np.exp(e, out=e)
    e /= e.sum(axis=axis, keepdims=True)
    return e


def multi_head_attention(
    x: np.ndarray,
    query: dict[str, np.ndarray],
    key: dict[str, np.ndarray],
    value: dict[str, np.ndarray],
    num_heads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled dot-product self-attention with `num_heads` heads.

    x (N, L, D): N independent sequences of L tokens of width D.
    Returns the context (N, L, D) and the attention probabilities (N, heads, L, L).

    Each head h attends with its own d = D/heads slice of the projections:
        probs_h = softmax(Q_h K_h^T / sqrt(d)),  context_h = probs_h V_h
    and the heads' contexts are concatenated back to width D.
    """
    n, length, width = x.shape
    head_dim = width // num_heads

    def split_heads(t: np.ndarray) -> np.ndarray:  # (N, L, D) -> (N, heads, L, d)
        return t.reshape(n, length, num_heads, head_dim).transpose(0, 2, 1, 3)

    q = split_heads(linear(x, **query))
    k = split_heads(linear(x, **key))
    v = split_heads(linear(x, **value))
    scores = q @ k.transpose(0, 1, 3, 2)  # (N, heads, L, L)
    scores /= x.dtype.type(np.sqrt(head_dim))  # in place on the fresh product
    probs = softmax(scores, axis=-1, out=scores)  # in place: scores is a fresh array
    context = probs @ v  # (N, heads, L, d)
    return context.transpose(0, 2, 1, 3).reshape(n, length, width), probs


def separable_self_attention(
    x: np.ndarray, qkv_proj: dict[str, dict[str, np.ndarray]], out_proj: dict[str, dict[str, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """MobileViTV2's separable self-attention: linear in the number of patches.

    x (B, d, P, N): for each of the P pixel offsets inside a patch, N tokens (one per patch)
    of width d, channels first. Returns the output (B, d, P, N) and the context scores
    (B, 1, P, N).

    One 1x1 conv gives 1 + 2d channels: a one-channel query q, keys K and values V.
        scores  = softmax(q) over the N patches           (B, 1, P, N)   a weight per patch
        context = sum_n scores[n] * K[:, n]               (B, d, P, 1)   one vector per offset
        out     = out_proj(relu(V) * context)             (B, d, P, N)   context broadcast to every patch
    Where multi_head_attention builds an L x L matrix (every token scores every other),
    this scores each token once against a learned direction: O(N d) instead of O(N^2 d).
    """
    d = x.shape[1]
    qkv = conv2d(x, **qkv_proj["convolution"])  # (B, 1 + 2d, P, N): a 1x1 conv is a per-token linear
    query, key, value = qkv[:, :1], qkv[:, 1 : 1 + d], qkv[:, 1 + d :]
    scores = softmax(query, axis=-1)  # (B, 1, P, N)
    context = (key * scores).sum(axis=-1, keepdims=True)  # (B, d, P, 1)
    return conv2d(np.maximum(value, 0) * context, **out_proj["convolution"]), scores


# ------------------------------------------------------------- interpolation


def _linear_source_index(out_size: int, in_size: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each output pixel samples the input along one axis (align_corners=False).

    The output pixel centre y + 0.5 maps to input coordinate (y + 0.5) * in/out - 0.5,
    clamped at 0 as PyTorch does. Returns the lower index i0, upper index i1 (clamped at
    the edge) and the weight of i1, each (out_size,).
    """
    scale = dtype.type(in_size) / dtype.type(out_size)
    src = (np.arange(out_size, dtype=dtype) + dtype.type(0.5)) * scale - dtype.type(0.5)
    src = np.maximum(src, dtype.type(0))
    i0 = src.astype(np.int64)  # floor, since src >= 0
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, src - i0.astype(dtype)


def interpolate_bilinear(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (B, C, H, W) -> (B, C, *size) like torch's bilinear, align_corners=False.

    Each output pixel is a weighted mean of its 4 nearest input pixels:
        out = (1-wy) * ((1-wx) * x[y0, x0] + wx * x[y0, x1]) + wy * ((1-wx) * x[y1, x0] + wx * x[y1, x1])
    No antialiasing: shrinking simply samples, as torch does by default.
    """
    y0, y1, wy = _linear_source_index(size[0], x.shape[2], x.dtype)
    x0, x1, wx = _linear_source_index(size[1], x.shape[3], x.dtype)
    wy, wx = wy[:, None], wx[None, :]  # (Ho, 1), (1, Wo)
    above, below = x[:, :, y0], x[:, :, y1]  # (B, C, Ho, W): the input rows each output row sits between
    top = above[:, :, :, x0] * (1 - wx) + above[:, :, :, x1] * wx  # (B, C, Ho, Wo)
    bottom = below[:, :, :, x0] * (1 - wx) + below[:, :, :, x1] * wx
    return top * (1 - wy) + bottom * wy
