"""Layer norm over each token's channels, group norm over a whole image's tokens, and the
global average pool, on blocked maps.

Tokens are a blocked map (N, DB, 1, L, 16): token l of sequence n has its D channels in
16-lane pieces DB blocks apart. Channels past D (the padding of the last block) are zero
in every token map the engine makes, and `mask` (DB*16,) is 1 on real channels and 0 on
padding, so sums over whole blocks count only real channels.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.runtime.jit import inlined, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, row_moment, token_affine, token_sum

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
    token_affine(x, base, scb, blocks, mean, (zero + 1) / np.sqrt(variance + eps), weight, bias, LANES, out)


@kernel
def layer_norm_tokens(x, mask, weight, bias, eps, inv_width, out):
    """out = layer_norm(x) per token, x and out (N, DB, 1, L, 16); weight, bias (DB*16,) zero on padding.

    Twin: layers.layer_norm.
    """
    n_seq, blocks, _, length, _ = x.shape
    chunks = (length + TOKENS_PER_JOB - 1) // TOKENS_PER_JOB
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    scb = length * LANES
    jobs = n_seq * chunks
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            n, first = job // chunks, job % chunks * TOKENS_PER_JOB
            for t in range(first, min(first + TOKENS_PER_JOB, length)):
                base = n * blocks * scb + t * LANES
                _normalize_token(flat_x, base, scb, blocks, mask, weight, bias, eps, inv_width, flat_out)
            job = next_job(cursors, worker, jobs)


@kernel
def group_norm_tokens(x, per_image, mask, weight, bias, eps, out):
    """out = group_norm(x) with one group per image: x, out (B*P, DB, 1, N, 16) float32, P = per_image sequences.

    Twin: layers.group_norm (MobileViTV2's norm over (d, P, N)).

    Image b's values are its P sequences (tokens b*P .. b*P + P-1, all their real channels),
    normalized by one mean and variance, then scaled and shifted per channel: weight, bias
    (DB*16,) zero on padding, so padded channels stay 0. One pass sums each (sequence, block) row's
    deviations from a value of the image, c, and their squares, in float64 (simd.row_moment); then
    mean = c + E[x - c] and variance = E[(x - c)^2] - E[x - c]^2, without the cancellation a shift of 0
    would risk when the mean is large against the spread. A second pass normalizes.
    """
    n_seq, blocks, _, length, _ = x.shape
    images, rows = n_seq // per_image, n_seq * blocks
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    step = length * LANES  # row r = (sequence r // blocks, block r % blocks) starts at r * step
    count = mask.sum() * per_image * length  # real values per image
    image_rows = per_image * blocks
    centre = np.zeros(images, np.float64)  # a value of each image (channel 0 of its first token)
    for b in range(images):
        centre[b] = flat_x[b * image_rows * step]
    sums = np.zeros((2, rows), np.float64)
    jobs = rows
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        r = next_job(cursors, worker, jobs)
        while r >= 0:
            real = mask[r % blocks * LANES : r % blocks * LANES + LANES]
            sums[0, r] = row_moment(flat_x, r * step, length, real, centre[r // image_rows], 0)
            sums[1, r] = row_moment(flat_x, r * step, length, real, centre[r // image_rows], 1)
            r = next_job(cursors, worker, jobs)
    mean = np.zeros(images, np.float64)
    inv_std = np.zeros(images, np.float64)
    for b in range(images):
        shifted_mean = sums[0, b * image_rows : (b + 1) * image_rows].sum() / count  # mean - centre
        variance = sums[1, b * image_rows : (b + 1) * image_rows].sum() / count - shifted_mean * shifted_mean
        mean[b] = centre[b] + shifted_mean
        inv_std[b] = 1 / np.sqrt(max(variance, 0.0) + eps)
    jobs = rows
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        r = next_job(cursors, worker, jobs)
        while r >= 0:
            b, cb = r // image_rows, r % blocks
            w, c = weight[cb * LANES : cb * LANES + LANES], bias[cb * LANES : cb * LANES + LANES]
            token_affine(
                flat_x, r * step, LANES, length, np.float32(mean[b]), np.float32(inv_std[b]), w, c, 0, flat_out
            )
            r = next_job(cursors, worker, jobs)


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
    jobs = batch * blocks
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            b, cb = job // blocks, job % blocks
            acc = np.zeros(LANES, x.dtype)
            for y in range(height):
                row = x_off + b * x_sb + cb * x_scb + y * x_sy
                for px in range(width):
                    acc += flat[row + px * LANES : row + px * LANES + LANES]
            pooled[0, cb, 0, b, :] = acc * scale
            job = next_job(cursors, worker, jobs)
