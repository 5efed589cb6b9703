"""Every Numba kernel against its NumPy twin (the reference functions in mobilevit_np.layers / model).

Shapes are small and odd so the suite also runs quickly as plain Python under
NUMBA_DISABLE_JIT=1 (CI does both), which covers the kernels' source line by line.
"""

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from mobilevit_np import activations, layers  # noqa: E402
from mobilevit_np.backends import fold_batch_norm  # noqa: E402
from mobilevit_np.kernels import ops  # noqa: E402
from mobilevit_np.kernels.conv import bias_act, dense_conv2d, depthwise_conv2d, im2col, tap_major  # noqa: E402
from mobilevit_np.kernels.elementwise import NONE, RELU, SILU, fast_exp  # noqa: E402
from mobilevit_np.kernels.transformer import layer_norm, scaled_softmax, split_heads  # noqa: E402
from mobilevit_np.model import conv_layer  # noqa: E402

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
TWIN_ACT = {NONE: activations.identity, SILU: activations.silu, RELU: activations.relu}

# (batch, channels, height, width, kernel, stride, dilation): odd sizes, stride 2, dilation 2 and 6
CONV_CASES = [
    (1, 3, 9, 11, 3, 1, 1),
    (2, 4, 10, 7, 3, 2, 1),
    (3, 2, 13, 12, 3, 1, 2),
    (2, 3, 15, 14, 3, 1, 6),
    (1, 5, 7, 9, 3, 2, 2),
    (2, 2, 6, 5, 5, 1, 1),
    (1, 2, 4, 3, 3, 1, 6),  # dilation larger than the map: many taps fall in the padding
]


def rand(rng: np.random.RandomState, *shape: int, dtype=np.float32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def noncontiguous(x: np.ndarray) -> np.ndarray:
    """The same values as x, as a strided view (every other element of a twice-as-wide array)."""
    wide = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), x.dtype)
    wide[..., ::2] = x
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


@numba.njit
def _exp_all(x, out):
    for i in range(x.size):
        out[i] = fast_exp(x[i])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_exp_matches_numpy(dtype):
    x = np.concatenate([np.linspace(-87, 88, 20001), [-1e4, -100, -88.5, 0, 1e-30, 89, 1e4]]).astype(dtype)
    out = np.empty_like(x)
    _exp_all(x, out)
    finite = np.abs(x) < 87  # beyond, float32 e^x leaves the normal range; we clamp
    np.testing.assert_allclose(
        out[finite], np.exp(x[finite].astype(np.float64)), rtol=3e-7 if dtype == np.float32 else 1e-14
    )
    assert not np.isnan(out).any() and np.all(out >= 0)  # far outside: clamped (jitted float32) or inf/0


@pytest.mark.parametrize("act", [NONE, SILU, RELU])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_act_matches_twin(act, dtype):
    rng = np.random.RandomState(act)
    x, bias = 4 * rand(rng, 2, 5, 3, 7, dtype=dtype), rand(rng, 5, dtype=dtype)
    expected = TWIN_ACT[act](x + bias[:, None, None])
    np.testing.assert_allclose(bias_act(x.copy(), bias, act, channel_axis=1), expected, **TOL[dtype])
    tokens, bias = 4 * rand(rng, 3, 11, 6, dtype=dtype), rand(rng, 6, dtype=dtype)
    np.testing.assert_allclose(bias_act(tokens.copy(), bias, act, -1), TWIN_ACT[act](tokens + bias), **TOL[dtype])


def test_bias_act_without_bias():
    x = rand(np.random.RandomState(0), 2, 3, 4, 5)
    np.testing.assert_allclose(bias_act(x.copy(), None, SILU, 1), activations.silu(x), **TOL[np.float32])


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("act", [NONE, SILU])
def test_depthwise_matches_conv2d(case, act):
    batch, channels, height, width, k, stride, dilation = case
    rng = np.random.RandomState(sum(case))
    x, weight, bias = rand(rng, batch, channels, height, width), rand(rng, channels, 1, k, k), rand(rng, channels)
    padding = (k - 1) // 2 * dilation
    expected = TWIN_ACT[act](layers.conv2d(x, weight, bias, stride, padding, dilation, groups=channels))
    out = depthwise_conv2d(noncontiguous(x), weight, bias, stride, padding, dilation, act)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, **TOL[np.float32])


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c[5] == 1])
@pytest.mark.parametrize("act", [NONE, SILU, RELU])
def test_dense_conv2d_matches_conv2d(case, act):
    batch, channels, height, width, k, _, dilation = case
    rng = np.random.RandomState(batch * 100 + height + k)
    out_channels = 5
    x = rand(rng, batch, channels, height, width)
    weight, bias = rand(rng, out_channels, channels, k, k), rand(rng, out_channels)
    padding = (k - 1) // 2 * dilation
    expected = TWIN_ACT[act](layers.conv2d(x, weight, bias, 1, padding, dilation))
    for taps in (None, tap_major(weight)):  # made per call, or once at load time
        out = dense_conv2d(noncontiguous(x), weight, bias, padding, dilation, act, taps)
        np.testing.assert_allclose(out, expected, **TOL[np.float32])
    out = dense_conv2d(x, weight, None, padding, dilation, act)
    np.testing.assert_allclose(
        out, TWIN_ACT[act](layers.conv2d(x, weight, None, 1, padding, dilation)), **TOL[np.float32]
    )


@pytest.mark.parametrize("case", CONV_CASES)
def test_im2col_matches_numpy(case):
    batch, channels, height, width, k, stride, dilation = case
    x = rand(np.random.RandomState(0), batch, channels, height, width)
    padding = (k - 1) // 2 * dilation
    expected = layers.im2col(x, k, stride, padding, dilation)
    np.testing.assert_array_equal(im2col(noncontiguous(x), k, stride, padding, dilation), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_matches_numpy(dtype):
    rng = np.random.RandomState(1)
    x = 3 * rand(rng, 3, 7, 13, dtype=dtype) + 2
    weight, bias = rand(rng, 13, dtype=dtype), rand(rng, 13, dtype=dtype)
    np.testing.assert_allclose(
        layer_norm(noncontiguous(x), weight, bias, 1e-5), layers.layer_norm(x, weight, bias, 1e-5), **TOL[dtype]
    )


@pytest.mark.parametrize("width", [5, 17, 48])  # below, across and at multiples of the 16 max-lanes
def test_scaled_softmax_matches_numpy(width):
    x = 10 * rand(np.random.RandomState(2), 2, 3, 5, width)
    x[0, 0, 0, -1] = 40  # the row max in the tail, after the lanes
    expected = layers.softmax(x * np.float32(0.3), axis=-1)
    out = scaled_softmax(x.copy(), 0.3)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.sum(-1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match="C-contiguous"):
        scaled_softmax(noncontiguous(x), 0.3)


def test_split_heads_matches_twin():
    n, length, heads, depth = 3, 7, 2, 5
    rng = np.random.RandomState(6)
    projected, bias = rand(rng, n * length, 3 * heads * depth), rand(rng, 3 * heads * depth)
    expected = (projected + bias).reshape(n, length, 3, heads, depth).transpose(2, 0, 3, 1, 4)
    out = split_heads(noncontiguous(projected), bias, n, heads)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)


def test_fast_silu_matches_numpy():
    x = 20 * rand(np.random.RandomState(3), 3, 4, 5)
    np.testing.assert_allclose(ops.fast_silu(noncontiguous(x)), activations.silu(x), **TOL[np.float32])


def _conv_params(rng, out_channels, in_per_group, k, with_bias):
    conv = {"weight": rand(rng, out_channels, in_per_group, k, k)}
    if with_bias:
        conv["bias"] = rand(rng, out_channels)
    norm = {
        "weight": rand(rng, out_channels),
        "bias": rand(rng, out_channels),
        "running_mean": rand(rng, out_channels),
        "running_var": rng.uniform(0.5, 1.5, out_channels).astype(np.float32),
    }
    return conv, norm


# (in channels, out channels, groups, kernel, stride, dilation)
LAYER_CASES = [
    (6, 5, 1, 1, 1, 1),  # pointwise
    (6, 6, 6, 3, 2, 1),  # depthwise, stride 2
    (4, 7, 1, 3, 1, 6),  # dense, dilated (ASPP): im2col
    (5, 7, 1, 3, 1, 1),  # dense, stride 1: shifted taps (conv.dense_conv2d)
    (3, 4, 1, 3, 2, 1),  # dense, stride 2 (the stem)
    (4, 6, 2, 3, 1, 2),  # grouped: the generic fallback
]


@pytest.mark.parametrize("case", LAYER_CASES)
@pytest.mark.parametrize("activation", [None, activations.silu, activations.relu, activations.gelu, ops.fast_silu])
def test_conv_layer_matches_reference(case, activation):
    channels, out_channels, groups, k, stride, dilation = case
    rng = np.random.RandomState(channels * 7 + k)
    x = rand(rng, 2, channels, 11, 9)
    conv, norm = _conv_params(rng, out_channels, channels // groups, k, with_bias=groups > 1)
    expected = conv_layer(x, conv, norm, stride=stride, dilation=dilation, activation=activation)
    out = ops.conv_layer(noncontiguous(x), conv, norm, stride=stride, dilation=dilation, activation=activation)
    np.testing.assert_allclose(out, expected, **TOL[np.float32])
    weight, bias = fold_batch_norm(conv["weight"], conv.get("bias"), norm)
    folded = ops.conv_layer(
        x, {"weight": weight, "bias": bias}, stride=stride, dilation=dilation, activation=activation
    )
    np.testing.assert_allclose(folded, expected, **TOL[np.float32])


def test_linear_matches_numpy():
    rng = np.random.RandomState(4)
    x, weight, bias = rand(rng, 3, 5, 7), rand(rng, 4, 7), rand(rng, 4)
    np.testing.assert_allclose(
        ops.linear(noncontiguous(x), weight, bias), layers.linear(x, weight, bias), **TOL[np.float32]
    )
    np.testing.assert_allclose(ops.linear(x[0], weight), layers.linear(x[0], weight), **TOL[np.float32])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_matches_numpy(dtype):
    rng = np.random.RandomState(5)
    n, length, width, heads = 3, 9, 12, 3
    x = rand(rng, n, length, width, dtype=dtype)
    proj = {
        name: {"weight": rand(rng, width, width, dtype=dtype) / 3, "bias": rand(rng, width, dtype=dtype)}
        for name in ("query", "key", "value")
    }
    del proj["key"]["bias"]  # a projection without bias: fused with a zero bias
    ref_context, ref_probs = layers.multi_head_attention(x, **proj, num_heads=heads)
    for qkv in (None, ops.fuse_qkv(**proj)):  # fused here, or once at load time
        context, probs = ops.multi_head_attention(noncontiguous(x), **proj, num_heads=heads, qkv=qkv)
        assert probs.shape == (n, heads, length, length)
        np.testing.assert_allclose(probs, ref_probs, rtol=1e-5 if dtype == np.float32 else 1e-10, atol=1e-7)
        np.testing.assert_allclose(context, ref_context, **TOL[dtype])


def test_launch_runs_small_work_on_one_thread_and_restores_the_count(monkeypatch):
    from mobilevit_np.kernels import launch as launch_module

    seen = []
    kernel = lambda out: seen.append(numba.get_num_threads())  # noqa: E731 (a probe, not a kernel)
    before = numba.get_num_threads()
    launch_module.launch(kernel, 10, None)
    monkeypatch.setattr(launch_module, "PARALLEL_MIN_ELEMENTS", 5)
    launch_module.launch(kernel, 10, None)
    assert seen == [1, before]
    assert numba.get_num_threads() == before
