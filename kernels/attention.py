"""Multi-head self-attention over MobileViT's patch sequences, one (sequence, head) per job.

Input: the fused Q/K/V projection of every token as a blocked token map
qkv (N, 3*DB, 1, L, 16): channels [0, D) are Q (already scaled by 1/sqrt(d), folded into its
weights at load time), [D, 2D) K and [2D, 3D) V, each part padded to DB whole blocks. Per
sequence n and head h (d = D/heads channels starting at h*d):

    P = softmax(Q_h K_h^T)   (L, L), row by row
    context_h = P V_h        (L, d)

K_h is first copied with the keys in the vector lanes (kt: (LB, d, 16), zero past L) and
V_h with its d channels starting at lane 0 (vh: (HB, L, 16), HB = blocks of d), both small
enough to stay in cache. Then for each tile of ROWS query rows: the scores (ROWS, L) come
from simd.gemm_tile (a broadcast of Q times a vector of 16 keys), the softmax runs on them
in place while they are in L1, and a second gemm_tile multiplies them by V_h, the 1/sum of
each row applied to the context afterwards. So no (L, L) matrix is written unless the
attention probabilities were asked for (output_attentions).

Output: context (N, heads*HB, 1, L, 16), head h's channels in blocks [h*HB, (h+1)*HB), the
layout the output projection's packed weights expect (pack.heads_index).
Twin: layers.multi_head_attention (its probabilities and its context before the head merge).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from mobilevit_np.kernels.activation import fast_exp
from mobilevit_np.kernels.conv import BLOCKS, ROWS, gemm
from mobilevit_np.kernels.runtime.jit import helper, inlined, kernel
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job
from mobilevit_np.kernels.simd import LANES, row_exp_sum, row_max


@inlined
def softmax_row(scores, row, length):
    """In place: scores[row, :length] = exp(s - max); returns 1 / sum (the caller normalizes).

    Whole blocks of 16 scores go through simd.row_max / row_exp_sum (vector code: a scalar
    loop here ran at ~1 ns per score, 10x ONNX Runtime's softmax); the last partial block
    is scalar.
    """
    s = scores[row]
    whole = length // LANES
    peak = row_max(s, 0, whole)
    for j in range(whole * LANES, length):
        peak = max(peak, s[j])
    total = row_exp_sum(s, 0, whole, peak)
    for j in range(whole * LANES, length):
        e = fast_exp(s[j] - peak)
        s[j] = e
        total += e
    return 1 / total


@helper
def _gather_keys_values(qkv, n, first, head_dim, seg_blocks, length, kt, vh):
    """kt[j // 16, c, j % 16] = K[n, first + c, j];  vh[c // 16, j, c % 16] = V[n, first + c, j].

    K channel by channel, 16 keys at a time (a fixed-length loop LLVM turns into vector code);
    V token by token, whose d channels are runs of neighbours in both layouts. (Channel by
    channel with one loop over the tokens: 0.23-0.28 ms for mobilevit-small's layer_3, one
    thread; this way 0.18 ms.)
    """
    whole = length // LANES * LANES
    for c in range(head_dim):
        ch = first + c
        keys = qkv[n, seg_blocks + ch // LANES, 0, :, ch % LANES]  # (L,), every 16th value
        for jb in range(whole // LANES):
            for lane in range(LANES):
                kt[jb, c, lane] = keys[jb * LANES + lane]
        for j in range(whole, length):
            kt[j // LANES, c, j % LANES] = keys[j]
    values = qkv[n, 2 * seg_blocks :, 0]  # (DB, L, 16)
    for j in range(length):
        for c in range(head_dim):
            ch = first + c
            vh[c // LANES, j, c % LANES] = values[ch // LANES, j, ch % LANES]


@kernel
def attention_heads(qkv, num_heads, head_dim, seg_blocks, ctx, probs, want_probs):
    """context (and probs (N, heads, L, L) if want_probs) from qkv; see the module docstring.

    Twin: layers.multi_head_attention (its probabilities, and its context before the heads merge).
    """
    n_seq, _, _, length, _ = qkv.shape
    head_blocks = (head_dim + LANES - 1) // LANES
    key_blocks = (length + LANES - 1) // LANES
    q_sb, scb = qkv.shape[1] * length * LANES, length * LANES
    c_sb, c_scb = ctx.shape[1] * length * LANES, length * LANES
    flat_ctx = ctx.reshape(-1)
    jobs = n_seq * num_heads
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        # A thread's scratch, once: every job writes the same positions of kt and vh (their padding,
        # keys past L and channels past d, stays the zeros it starts with) and all of scores' it reads.
        kt = np.zeros((key_blocks, head_dim, LANES), qkv.dtype)
        vh = np.zeros((head_blocks, length, LANES), qkv.dtype)
        scores = np.empty((ROWS, key_blocks * LANES), qkv.dtype)
        inverse = np.empty(ROWS, qkv.dtype)
        one_tap = np.zeros(1, np.int64)
        no_bias = np.zeros(LANES, qkv.dtype)
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            n, h = job // num_heads, job % num_heads
            _gather_keys_values(qkv, n, h * head_dim, head_dim, seg_blocks, length, kt, vh)
            for i0 in range(0, length, ROWS):
                rows = min(ROWS, length - i0)
                for jb in range(0, key_blocks, BLOCKS):  # scores[r, j] = sum_c Q[i0 + r, c] K[j, c]
                    operands = (
                        qkv,
                        n * q_sb + i0 * LANES,
                        LANES,
                        scb,
                        h * head_dim,
                        one_tap,
                        kt,
                        jb * head_dim * LANES,
                        one_tap,
                        LANES,
                        head_dim * LANES,
                        1,
                        head_dim,
                        scores,
                        jb * LANES,
                        key_blocks * LANES,
                        LANES,
                        scores,
                        0,
                        LANES,
                        no_bias,
                        0,
                        0,
                    )
                    gemm(rows, min(BLOCKS, key_blocks - jb), operands)
                for r in range(rows):
                    inverse[r] = softmax_row(scores, r, length)
                    if want_probs:
                        probs[n, h, i0 + r, :] = scores[r, :length] * inverse[r]
                for cb in range(0, head_blocks, BLOCKS):  # context[i0 + r, c] = sum_j P[r, j] V[j, c]
                    c_off = n * c_sb + (h * head_blocks + cb) * c_scb + i0 * LANES
                    operands = (
                        scores,
                        0,
                        key_blocks * LANES,
                        LANES,
                        0,
                        one_tap,
                        vh,
                        cb * length * LANES,
                        one_tap,
                        LANES,
                        length * LANES,
                        1,
                        length,
                        ctx,
                        c_off,
                        LANES,
                        c_scb,
                        ctx,
                        0,
                        LANES,
                        no_bias,
                        0,
                        0,
                    )
                    gemm(rows, min(BLOCKS, head_blocks - cb), operands)
                for r in range(rows):  # flat indices: a sliced ctx[...] *= s made a temporary array per row and block
                    for b in range(head_blocks):
                        base = n * c_sb + (h * head_blocks + b) * c_scb + (i0 + r) * LANES
                        for lane in range(LANES):
                            flat_ctx[base + lane] *= inverse[r]
            job = next_job(cursors, worker, jobs)
