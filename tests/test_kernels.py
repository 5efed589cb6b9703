"""Every kernel of the fast engine against its NumPy twin (the reference functions in mobilevit_np).

Shapes are small and odd (channel counts that are no multiple of 16, maps that are no
multiple of the tile width) so the suite also runs as plain Python under
NUMBA_DISABLE_JIT=1, and under NUMBA_CPU_NAME=haswell (AVX2 tiles): CI does all three.
"""

import numpy as np
import pytest

numba = pytest.importorskip("numba")
from numba import prange  # noqa: E402

from mobilevit_np import activations, layers, patches  # noqa: E402
from mobilevit_np.kernels import pack  # noqa: E402
from mobilevit_np.kernels.activation import NONE, RELU, SILU, fast_exp  # noqa: E402
from mobilevit_np.kernels.attention import attention_heads  # noqa: E402
from mobilevit_np.kernels.conv import conv2d_tiles  # noqa: E402
from mobilevit_np.kernels.depthwise import depthwise_tiles  # noqa: E402
from mobilevit_np.kernels.engine import Map, pack_qkv  # noqa: E402
from mobilevit_np.kernels.engine_v2 import pack_qkv as pack_separable_qkv  # noqa: E402
from mobilevit_np.kernels.fused import inverted_residual_rows  # noqa: E402
from mobilevit_np.kernels.layout import fold_tokens, resize_bilinear, stem_input, to_nchw, unfold_tokens  # noqa: E402
from mobilevit_np.kernels.norm import global_average_pool, group_norm_tokens, layer_norm_tokens  # noqa: E402
from mobilevit_np.kernels.runtime import threads  # noqa: E402
from mobilevit_np.kernels.runtime.jit import kernel  # noqa: E402
from mobilevit_np.kernels.runtime.jobs import CURSOR_STRIDE, job_cursors, next_job  # noqa: E402
from mobilevit_np.kernels.separable import separable_attention  # noqa: E402
from mobilevit_np.kernels.simd import ADD_BIAS, LANES, LOAD_INIT, tile_shape  # noqa: E402

TOL = dict(rtol=2e-5, atol=2e-5)
TWIN_ACT = {NONE: activations.identity, SILU: activations.silu, RELU: activations.relu}

# (batch, in channels, out channels, height, width, kernel, stride, dilation)
CONV_CASES = [
    (1, 5, 7, 9, 11, 1, 1, 1),  # 1x1, partial blocks in and out
    (2, 20, 33, 7, 13, 3, 1, 1),
    (1, 18, 70, 10, 7, 3, 2, 1),  # stride 2, 5 output blocks: a tile of 4 blocks and one of 1
    (1, 17, 16, 9, 8, 3, 1, 6),  # dilation larger than half the map: whole rows of taps skipped
    (2, 130, 70, 6, 5, 3, 1, 2),  # 9 taps x 144 x 64 floats per group > conv.PANEL_FLOATS (AVX-512): group by group
    (2, 9, 12, 6, 5, 5, 1, 1),
]
DEPTHWISE_CASES = [(1, 20, 9, 11, 3, 1, 1), (2, 33, 10, 7, 3, 2, 1), (1, 16, 13, 12, 3, 1, 2), (1, 7, 6, 9, 5, 1, 1)]
DEPTHWISE_CASES += [(1, 20, 2, 2, 3, 1, 1), (2, 36, 3, 2, 3, 1, 1)]  # MobileViTV2 layer_5 maps


def rand(rng: np.random.RandomState, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def blocked(x: np.ndarray, pad: int = 0) -> Map:
    """NCHW (B, C, H, W) -> a blocked Map with a zero border of `pad`."""
    batch, channels, height, width = x.shape
    padded = np.zeros((batch, pack.num_blocks(channels) * LANES, height, width), np.float32)
    padded[:, :channels] = x
    buffer = np.zeros((batch, pack.num_blocks(channels), height + 2 * pad, width + 2 * pad, LANES), np.float32)
    buffer[:, :, pad : pad + height, pad : pad + width] = padded.reshape(batch, -1, LANES, height, width).transpose(
        0, 1, 3, 4, 2
    )
    return Map(buffer, channels, height, width, pad)


def empty_map(batch: int, channels: int, height: int, width: int) -> Map:
    return Map(np.zeros((batch, pack.num_blocks(channels), height, width, LANES), np.float32), channels, height, width)


def run_packed(
    x: Map,
    packed: np.ndarray,
    bias: np.ndarray,
    taps: np.ndarray,
    stride: int,
    out: Map,
    act: int,
    residual: Map | None = None,
) -> Map:
    """conv2d_tiles with packed weights (OB, T, K, 16) and a padded bias (OB*16,) from x into out."""
    k = packed.shape[2]
    r = residual if residual is not None else out
    flags = ADD_BIAS | (LOAD_INIT if residual is not None else 0)
    conv2d_tiles(
        x.buffer,
        *x.strides(),
        LANES,
        x.height,
        x.width,
        stride,
        taps,
        k,
        packed,
        packed.shape[1] * k * LANES,
        bias,
        0,
        out.buffer,
        *out.strides(),
        out.buffer.shape[0],
        out.height,
        out.width,
        out.blocks,
        r.buffer,
        *r.strides(),
        flags,
        act,
    )
    return out


def run_conv(x: Map, weight: np.ndarray, bias: np.ndarray, stride: int, dilation: int, act: int, residual=None) -> Map:
    size = weight.shape[-1]
    out_h = layers.conv_output_size(x.height, size, stride, (size - 1) // 2 * dilation, dilation)
    out_w = layers.conv_output_size(x.width, size, stride, (size - 1) // 2 * dilation, dilation)
    out = empty_map(x.buffer.shape[0], weight.shape[0], out_h, out_w)
    bias = pack.pack_vector(bias, len(bias), np.float32)
    return run_packed(x, pack.pack_conv(weight), bias, pack.kernel_taps(size, dilation), stride, out, act, residual)


def nchw(m: Map) -> np.ndarray:
    return to_nchw(m.interior(), m.channels)


@numba.njit
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = fast_exp(x[i])


def test_fast_exp_matches_numpy():
    x = np.concatenate([np.linspace(-87, 88, 20001), [-1e4, -100, -88.5, 0, 1e-30, 89, 1e4]]).astype(np.float32)
    out = np.empty_like(x)
    _exp_all(x, out)
    finite = np.abs(x) < 87  # beyond, float32 e^x leaves the normal range; we clamp
    np.testing.assert_allclose(out[finite], np.exp(x[finite].astype(np.float64)), rtol=2e-7)
    if not numba.config.DISABLE_JIT:  # compiled, fast_exp clamps its input (as plain Python it is np.exp)
        assert np.all(np.isfinite(out)) and out[x < -88].max() < 1.2e-38


@pytest.mark.parametrize("act", [SILU, RELU])
def test_activations_in_registers_match_twins_and_keep_nan(act):
    """The tiles' SiLU / ReLU epilogue (simd._Vectors.activate) on values across exp's range, NaN included."""
    values = np.concatenate([np.linspace(-90, 90, 7 * 16 - 1), [np.nan]]).astype(np.float32)
    x = values.reshape(1, 7, 4, 4)  # 7 channels at 4x4: one partial block
    identity = np.eye(7, dtype=np.float32)[:, :, None, None]
    out = nchw(run_conv(blocked(x), identity, np.zeros(7, np.float32), 1, 1, act))  # a 1x1 identity conv + act
    expected = TWIN_ACT[act](layers.conv2d(x, identity))  # the NaN spreads to its pixel's other channels
    inside = ~np.isnan(expected) & (
        np.abs(np.nan_to_num(x)) <= 87
    )  # fast_exp's documented range (activation.py); beyond, SiLU is x * 1.2e-38 or x
    np.testing.assert_allclose(out[inside], expected[inside], rtol=3e-7, atol=1e-37)
    assert np.abs(out[x < -87] - expected[x < -87]).max() < 1e-36
    assert np.array_equal(np.isnan(out), np.isnan(expected))


def test_tile_shape_fits_the_target():
    rows, blocks = tile_shape()
    assert rows == 6 and blocks in (1, 4)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", [NONE, SILU])
def test_conv2d_tiles_matches_conv2d(case, act):
    batch, c_in, c_out, height, width, size, stride, dilation = case
    rng = np.random.RandomState(sum(case))
    x, weight, bias = rand(rng, batch, c_in, height, width), rand(rng, c_out, c_in, size, size), rand(rng, c_out)
    weight /= np.float32(np.sqrt(c_in * size * size))  # outputs of order 1, as in a trained network
    expected = TWIN_ACT[act](layers.conv2d(x, weight, bias, stride, (size - 1) // 2 * dilation, dilation))
    out = run_conv(blocked(x, (size - 1) // 2 * dilation), weight, bias, stride, dilation, act)
    np.testing.assert_allclose(nchw(out), expected, **TOL)
    assert not out.buffer[:, -1, :, :, (c_out - 1) % LANES + 1 :].any()  # padding channels: bias 0 + zero weights


def test_conv2d_tiles_adds_a_residual():
    rng = np.random.RandomState(0)
    x, weight, bias, skip = rand(rng, 2, 20, 5, 7), rand(rng, 20, 20, 1, 1), rand(rng, 20), rand(rng, 2, 20, 5, 7)
    out = run_conv(blocked(x), weight, bias, 1, 1, NONE, residual=blocked(skip, pad=2))  # the skip has a border
    np.testing.assert_allclose(nchw(out), skip + layers.conv2d(x, weight, bias), **TOL)


def test_stem_reads_channels_last():
    rng = np.random.RandomState(1)
    x, weight, bias = rand(rng, 2, 3, 11, 8), rand(rng, 16, 3, 3, 3), rand(rng, 16)
    image = np.zeros((2, 13, 10, 3), np.float32)
    stem_input(x, image)
    out = empty_map(2, 16, 6, 4)
    packed = pack.pack_conv(weight, np.arange(3))
    sy = 10 * 3
    conv2d_tiles(
        image[:, None],  # (B, 1, H+2, W+2, 3), as the engine passes it
        sy + 3,
        13 * sy,
        0,
        sy,
        3,
        11,
        8,
        2,
        pack.kernel_taps(3, 1),
        3,
        packed,
        packed.shape[1] * 3 * LANES,
        pack.pack_vector(bias, 16, np.float32),
        0,
        out.buffer,
        *out.strides(),
        2,
        6,
        4,
        1,
        out.buffer,
        0,
        0,
        0,
        0,
        ADD_BIAS,
        NONE,
    )
    np.testing.assert_allclose(nchw(out), layers.conv2d(x, weight, bias, 2, 1), **TOL)


@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_matches_conv2d(case):
    batch, channels, height, width, size, stride, dilation = case
    rng = np.random.RandomState(sum(case))
    x, weight, bias = rand(rng, batch, channels, height, width), rand(rng, channels, 1, size, size), rand(rng, channels)
    padding = (size - 1) // 2 * dilation
    expected = activations.silu(layers.conv2d(x, weight, bias, stride, padding, dilation, groups=channels))
    source = blocked(x, padding)
    out = empty_map(batch, channels, *expected.shape[2:])
    depthwise_tiles(
        source.buffer,
        *source.strides(),
        stride,
        pack.kernel_taps(size, dilation),
        pack.pack_depthwise(weight),
        pack.pack_vector(bias, channels, np.float32),
        out.buffer,
        *out.strides(),
        batch,
        out.blocks,
        out.height,
        out.width,
        SILU,
    )
    np.testing.assert_allclose(nchw(out), expected, **TOL)


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_inverted_residual_rows_matches_three_convolutions(case, residual):
    batch, wide, height, width, size, stride, dilation = case  # wide: the expanded (depthwise) channels
    c_in, c_out = 20, 20  # the block's input and output channels: two blocks, the second partly padding
    rng = np.random.RandomState(sum(case) + residual)
    x = rand(rng, batch, c_in, height, width)
    expand_weight, expand_bias = rand(rng, wide, c_in, 1, 1), rand(rng, wide)
    weight, bias = rand(rng, wide, 1, size, size), rand(rng, wide)
    reduce_weight, reduce_bias = rand(rng, c_out, wide, 1, 1), rand(rng, c_out)
    padding = (size - 1) // 2 * dilation
    expanded = activations.silu(layers.conv2d(x, expand_weight, expand_bias))
    mid = activations.silu(layers.conv2d(expanded, weight, bias, stride, padding, dilation, groups=wide))
    expected = layers.conv2d(mid, reduce_weight, reduce_bias)
    out = empty_map(batch, c_out, *expected.shape[2:])
    skip = blocked(rand(rng, *expected.shape), pad=1) if residual else out
    if residual:
        expected = expected + nchw(skip)
    source = blocked(x, pad=1)  # any border: the expand reads only the interior
    inverted_residual_rows(
        source.buffer,
        *source.strides(),
        height,
        width,
        pack.pack_conv(expand_weight),
        pack.pack_vector(expand_bias, wide, np.float32),
        stride,
        pack.kernel_taps(size, dilation),
        padding,
        pack.pack_depthwise(weight),
        pack.pack_vector(bias, wide, np.float32),
        pack.num_blocks(wide),
        SILU,
        pack.pack_conv(reduce_weight),
        pack.pack_vector(reduce_bias, c_out, np.float32),
        out.buffer,
        *out.strides(),
        out.blocks,
        skip.buffer,
        *(skip.strides() if residual else (0, 0, 0, 0)),
        ADD_BIAS | (LOAD_INIT if residual else 0),
        batch,
        out.height,
        out.width,
    )
    np.testing.assert_allclose(nchw(out), expected, **TOL)


def tokens_map(x: np.ndarray) -> Map:
    """(N, L, D) tokens -> a blocked token map (N, DB, 1, L, 16)."""
    return blocked(x.transpose(0, 2, 1)[:, :, None, :])


def from_tokens(m: Map) -> np.ndarray:
    return nchw(m)[:, :, 0, :].transpose(0, 2, 1)


@pytest.mark.parametrize("n, length, width, heads", [(2, 7, 24, 2), (3, 37, 36, 1), (1, 16, 64, 4), (2, 5, 20, 4)])
def test_attention_heads_matches_multi_head_attention(n, length, width, heads):
    rng = np.random.RandomState(length)
    x = rand(rng, n, length, width)
    params = {
        name: {"weight": rand(rng, width, width) * 0.3, "bias": rand(rng, width)} for name in ("query", "key", "value")
    }
    context_ref, probs_ref = layers.multi_head_attention(x, **params, num_heads=heads)
    qkv_layer = pack_qkv(params, width, heads)
    qkv = run_packed(
        tokens_map(x),
        qkv_layer.weight,
        qkv_layer.bias,
        qkv_layer.taps,
        1,
        empty_map(n, qkv_layer.out_channels, 1, length),
        NONE,
    )
    head_dim = width // heads
    context = empty_map(n, heads * pack.num_blocks(head_dim) * LANES, 1, length)
    probs = np.zeros((n, heads, length, length), np.float32)
    attention_heads(qkv.buffer, heads, head_dim, pack.num_blocks(width), context.buffer, probs, True)
    np.testing.assert_allclose(probs, probs_ref, rtol=2e-5, atol=1e-6)
    got = nchw(context)[:, :, 0, :].transpose(0, 2, 1)  # (N, L, heads * HB * 16)
    index = pack.heads_index(width, heads)
    merged = np.zeros((n, length, width), np.float32)
    merged[:, :, index[index >= 0]] = got[:, :, index >= 0]
    np.testing.assert_allclose(merged, context_ref, **TOL)


@pytest.mark.parametrize("width", [5, 16, 36])
def test_layer_norm_tokens_matches_layer_norm(width):
    rng = np.random.RandomState(width)
    x, weight, bias = rand(rng, 3, 9, width) * 3 + 1, rand(rng, width), rand(rng, width)
    source = tokens_map(x)
    out = Map(np.zeros_like(source.buffer), width, 1, 9)
    mask = pack.pack_vector(np.ones(width, np.float32), width, np.float32)
    layer_norm_tokens(
        source.buffer,
        mask,
        pack.pack_vector(weight, width, np.float32),
        pack.pack_vector(bias, width, np.float32),
        np.float32(1e-5),
        np.float32(1 / width),
        out.buffer,
    )
    np.testing.assert_allclose(from_tokens(out), layers.layer_norm(x, weight, bias, 1e-5), **TOL)


def v2_tokens_map(x: np.ndarray) -> Map:
    """MobileViTV2's tokens (B, d, P, N) -> the engine's token map (B*P, DB, 1, N, 16)."""
    batch, width, area, length = x.shape
    return blocked(x.transpose(0, 2, 1, 3).reshape(batch * area, width, 1, length))


def from_v2_tokens(m: Map, area: int) -> np.ndarray:
    """The engine's token map -> (B, d, P, N)."""
    got = nchw(m)[:, :, 0, :]  # (B*P, d, N)
    return got.reshape(-1, area, *got.shape[1:]).transpose(0, 2, 1, 3)


def padded_lanes(width: int) -> tuple:
    """Index of a blocked map's padded channels (the lanes past `width` in its last block)."""
    return (slice(None), slice(pack.num_blocks(width) - 1, None), ..., slice(width % LANES or LANES, None))


@pytest.mark.parametrize("batch, width, area, length", [(2, 20, 4, 9), (1, 16, 1, 37), (3, 7, 9, 2)])
def test_group_norm_tokens_matches_group_norm(batch, width, area, length):
    rng = np.random.RandomState(width)
    # An offset mean (a float32 sum of squares about zero would lose the variance's digits) and varied scales.
    x = rand(rng, batch, width, area, length) * np.float32(3) + np.float32(20)
    x[1 % batch] *= 0.01
    weight, bias = rand(rng, width), rand(rng, width)
    source = v2_tokens_map(x)
    out = Map(np.full_like(source.buffer, np.nan), width, 1, length)  # every value must be written
    mask = pack.pack_vector(np.ones(width, np.float32), width, np.float32)
    packed = [pack.pack_vector(v, width, np.float32) for v in (weight, bias)]
    group_norm_tokens(source.buffer, area, mask, *packed, np.float32(1e-5), out.buffer)
    assert np.all(out.buffer[padded_lanes(width)] == 0), "padded channels must stay 0"
    expected = layers.group_norm(x.astype(np.float64), weight, bias, 1e-5)
    np.testing.assert_allclose(from_v2_tokens(out, area), expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("batch, width, area, length", [(2, 20, 4, 9), (1, 36, 1, 1), (1, 16, 4, 40), (2, 5, 9, 17)])
def test_separable_attention_matches_separable_self_attention(batch, width, area, length):
    rng = np.random.RandomState(length)
    x = rand(rng, batch, width, area, length)
    qkv_proj = {
        "convolution": {"weight": rand(rng, 1 + 2 * width, width, 1, 1) * 0.5, "bias": rand(rng, 1 + 2 * width)}
    }
    out_proj = {"convolution": {"weight": np.eye(width, dtype=np.float32)[:, :, None, None], "bias": None}}
    expected, _ = layers.separable_self_attention(x, qkv_proj, out_proj)  # out_proj = identity: the gated values
    qkv_layer = pack_separable_qkv(qkv_proj, width)
    tokens = v2_tokens_map(x)
    qkv = run_packed(
        tokens,
        qkv_layer.weight,
        qkv_layer.bias,
        qkv_layer.taps,
        1,
        empty_map(batch * area, qkv_layer.out_channels, 1, length),
        NONE,
    )
    mixed = Map(np.full_like(tokens.buffer, np.nan), width, 1, length)
    separable_attention(qkv.buffer, mixed.buffer)
    np.testing.assert_allclose(from_v2_tokens(mixed, area), expected, **TOL)
    assert np.all(mixed.buffer[padded_lanes(width)] == 0), "padded channels must stay 0"


def test_separable_attention_gate_keeps_nan_and_zeroes_minus_inf():
    """relu(V) * context as np.maximum: NaN values stay NaN, -inf gives 0 (simd.gate_vectors), on the kernel's
    own layout: one sequence, the query in lane 0 of block 0, K in block 1, V in block 2."""
    rng = np.random.RandomState(3)
    length = 23  # five groups of four tokens and three more (simd.weighted_vectors' two loops)
    qkv = np.zeros((1, 3, 1, length, LANES), np.float32)
    qkv[0, 0, 0, :, 0] = rng.randn(length)
    qkv[0, 1, 0] = rng.randn(length, LANES)
    qkv[0, 2, 0] = rng.randn(length, LANES)
    qkv[0, 2, 0, 4, :3] = [np.nan, -np.inf, np.inf]
    out = np.full((1, 1, 1, length, LANES), np.nan, np.float32)
    separable_attention(qkv, out)
    q = qkv[0, 0, 0, :, 0].astype(np.float64)
    scores = np.exp(q - q.max()) / np.exp(q - q.max()).sum()
    context = scores @ qkv[0, 1, 0]  # (16,)
    expected = np.maximum(qkv[0, 2, 0], 0) * context
    np.testing.assert_allclose(out[0, 0, 0], expected, **TOL)
    assert (
        np.isnan(out[0, 0, 0, 4, 0])
        and out[0, 0, 0, 4, 1] == 0
        and np.isposinf(out[0, 0, 0, 4, 2] * np.sign(context[2]))
    )


def test_global_average_pool_matches_numpy():
    x = rand(np.random.RandomState(2), 3, 20, 5, 7)
    source = blocked(x, 2)
    pooled = np.zeros((1, 2, 1, 3, LANES), np.float32)
    global_average_pool(source.buffer, *source.strides(), 5, 7, pooled)
    got = pooled[0, :, 0].transpose(1, 0, 2).reshape(3, -1)[:, :20]
    np.testing.assert_allclose(got, layers.global_avg_pool(x), **TOL)


@pytest.mark.parametrize("patch", [1, 2, 3])
def test_unfold_and_fold_tokens_match_patches(patch):
    x = rand(np.random.RandomState(patch), 2, 20, 3 * patch, 2 * patch)
    expected, grid = patches.unfold(x, patch)
    source = blocked(x, 1)
    tokens = Map(np.zeros((2 * patch * patch, 2, 1, 6, LANES), np.float32), 20, 1, 6)
    unfold_tokens(source.buffer, *source.strides(), patch, 3, 2, tokens.buffer)
    np.testing.assert_array_equal(from_tokens(tokens), expected)
    folded = empty_map(2, 20, 3 * patch, 2 * patch)
    fold_tokens(tokens.buffer, patch, 3, 2, folded.buffer, *folded.strides(), 3 * patch, 2 * patch)
    np.testing.assert_array_equal(nchw(folded), patches.fold(expected, grid))


@pytest.mark.parametrize("patch, height, width", [(2, 7, 5), (3, 9, 11), (2, 4, 4), (1, 3, 2)])
def test_unfold_and_fold_tokens_match_patches_v2(patch, height, width):
    """MobileViTV2 drops the pixels past the last whole patch; fold puts zeros there, over whatever the buffer held."""
    x = rand(np.random.RandomState(height), 2, 20, height, width)
    expected = patches.unfold_v2(x, patch)  # (B, C, P, N)
    nh, nw = patches.whole_patches(height, width, patch)
    source = blocked(x, 1)
    tokens = Map(np.zeros((2 * patch * patch, 2, 1, nh * nw, LANES), np.float32), 20, 1, nh * nw)
    unfold_tokens(source.buffer, *source.strides(), patch, nh, nw, tokens.buffer)
    np.testing.assert_array_equal(from_v2_tokens(tokens, patch * patch), expected)
    folded = blocked(rand(np.random.RandomState(0), 2, 20, height, width), 1)  # stale values, as a reused buffer
    fold_tokens(tokens.buffer, patch, nh, nw, folded.buffer, *folded.strides(), height, width)
    np.testing.assert_array_equal(nchw(folded), patches.fold_v2(expected, (height, width)))
    assert np.all(folded.buffer[:, :, 0] == 0) and np.all(folded.buffer[:, :, :, -1] == 0), "the border stays zero"


@pytest.mark.parametrize("size", [(7, 9), (16, 11), (3, 3)])
def test_resize_bilinear_matches_interpolate_bilinear(size):
    x = rand(np.random.RandomState(3), 2, 20, 8, 5)
    source = blocked(x)
    out = empty_map(2, 20, *size)
    y0, y1, wy = layers._linear_source_index(size[0], 8, np.dtype(np.float32))
    x0, x1, wx = layers._linear_source_index(size[1], 5, np.dtype(np.float32))
    resize_bilinear(source.buffer, *source.strides(), out.buffer, *out.strides(), y0, y1, wy, x0, x1, wx)
    np.testing.assert_allclose(nchw(out), layers.interpolate_bilinear(x, size), rtol=1e-6, atol=1e-6)


def test_pack_conv_places_concatenated_inputs():
    rng = np.random.RandomState(4)
    weight = rand(rng, 18, 2 * 20, 3, 3)  # a fusion conv over [20 residual channels | 20 global channels]
    index = pack.concat_index(20, 20)
    packed = pack.pack_conv(weight, index)  # (OB, 9, 64, 16)
    assert packed.shape == (2, 9, 64, LANES)
    np.testing.assert_array_equal(packed[0, 4, 32 + 3, 5], weight[5, 20 + 3, 1, 1])  # global channel 3 at block 2
    assert not packed[:, :, 20:32].any() and not packed[1, :, :, 2:].any()  # padding: zero weights


def test_small_work_and_forked_children_run_the_serial_build(monkeypatch):
    calls = []

    class Probe:
        def serial(self, *args):
            calls.append("serial")

        def parallel(self, *args):
            calls.append("parallel")

    monkeypatch.setattr(threads, "_layer_is_threadsafe", lambda: True)
    monkeypatch.setattr(threads.numba, "get_num_threads", lambda: 2)
    threads.launch(Probe(), (), work=10)
    threads.launch(Probe(), (), work=threads.PARALLEL_MIN_WORK)
    monkeypatch.setattr(threads, "_forked", True)
    threads.launch(Probe(), (), work=threads.PARALLEL_MIN_WORK)
    assert calls == ["serial", "parallel", "serial"]


@kernel
def _record_jobs(jobs, runs):
    """runs[job] += 1 for each job a worker takes (the pattern every kernel uses, jobs.py)."""
    cursors = job_cursors(jobs)
    for worker in prange(cursors.shape[0] // CURSOR_STRIDE):
        job = next_job(cursors, worker, jobs)
        while job >= 0:
            runs[job] += 1
            job = next_job(cursors, worker, jobs)


@pytest.mark.parametrize("jobs", [0, 1, 7, 1000])
def test_every_job_runs_once_on_both_builds(jobs):
    for build in (_record_jobs.parallel, _record_jobs.serial):
        runs = np.zeros(jobs, np.int64)
        build(jobs, runs)
        assert (runs == 1).all()


def test_a_worker_runs_its_own_band_then_takes_over_the_others():
    cursors = _cursors(10, 2)  # two workers: bands [0, 5) and [5, 10)
    taken = [_next(cursors, 1, 10) for _ in range(11)]  # worker 1 alone (worker 0 was held off its core)
    assert taken == [5, 6, 7, 8, 9, 0, 1, 2, 3, 4, -1]


@numba.njit
def _next(cursors, worker, jobs):
    return next_job(cursors, worker, jobs)


def _cursors(jobs: int, workers: int) -> np.ndarray:
    cursors = np.zeros(workers * CURSOR_STRIDE, np.int64)
    cursors[::CURSOR_STRIDE] = np.arange(workers) * jobs // workers
    return cursors
