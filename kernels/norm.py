"""Layer norm over each token's channels, and the global average pool, on blocked maps.

Tokens are a blocked map (N, DB, 1, L, 16): token l of sequence n has its D channels in
16-lane pieces DB blocks apart. Channels past D (the padding of the last block) are zero
in every token map the engine makes, and `mask` (DB*16,) is 1 on real channels and 0 on
padding, so sums over whole blocks count only real channels.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.runtime.jit import inlined, kernel
from mobilevit_np.kernels.simd import LANES, token_affine, token_sum

TOKENS_PER_JOB = 16


@inlined
def _normalize_token(x, base, scb, blocks, mask, weight, bias, eps, inv_width, out):
    """out = (x - mean) / sqrt(var + eps) * weight + bias over the real channels of one token.

    x, out: flat maps; the token's channel block b is the 16 values at base + b * scb. Two passes
    for the statistics, as the reference (the mean first, then the centred squares), and a third
    for the result, each 16 lanes at a time (simd.token_sum / token_affine).
    """
    zero = x[0] * 0  # in x's dtype (a literal 1 / ... would be float64)
    mean = token_sum(x, base, scb, blocks, mask, zero, 0) * inv_width
    variance = token_sum(x, base, scb, blocks, mask, mean, 1) * inv_width
    token_affine(x, base, scb, blocks, mean, (zero + 1) / np.sqrt(variance + eps), weight, bias, out)


@kernel
def layer_norm_tokens(x, mask, weight, bias, eps, inv_width, out):
    """out = layer_norm(x) per token, x and out (N, DB, 1, L, 16); weight, bias (DB*16,) zero on padding.

    Twin: layers.layer_norm.
    """
    n_seq, blocks, _, length, _ = x.shape
    chunks = (length + TOKENS_PER_JOB - 1) // TOKENS_PER_JOB
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    scb = length * LANES
    for job in prange(n_seq * chunks):
        n, first = job // chunks, job % chunks * TOKENS_PER_JOB
        for t in range(first, min(first + TOKENS_PER_JOB, length)):
            base = n * blocks * scb + t * LANES
            _normalize_token(flat_x, base, scb, blocks, mask, weight, bias, eps, inv_width, flat_out)


@kernel
def global_average_pool(x, x_off, x_sb, x_scb, x_sy, height, width, pooled):
    """pooled[0, cb, 0, b, :] = mean over the height x width pixels of x[b, cb].

    Twin: layers.global_avg_pool.

    pooled (1, CB, 1, B, 16) is a map with the images as pixels: the classifier and ASPP's
    pooled branch then run on it as 1x1 convolutions.
    """
    _, blocks, _, batch, _ = pooled.shape
    flat = x.reshape(-1)
    scale = flat[0] * 0 + 1 / (height * width)
    for job in prange(batch * blocks):
        b, cb = job // blocks, job % blocks
        acc = np.zeros(LANES, x.dtype)
        for y in range(height):
            row = x_off + b * x_sb + cb * x_scb + y * x_sy
            for px in range(width):
                acc += flat[row + px * LANES : row + px * LANES + LANES]
        pooled[0, cb, 0, b, :] = acc * scale
