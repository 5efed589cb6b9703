"""Each building block on its own against torch.nn.functional and transformers' ACT2FN (parity extra)."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import activations
from mobilevit_np.layers import (
    batch_norm,
    channel_blocks,
    conv2d,
    depthwise_conv2d,
    fold_batch_norm,
    global_avg_pool,
    interpolate_bilinear,
    layer_norm,
    linear,
    multi_head_attention,
    softmax,
)

RNG = np.random.default_rng(0)
# max |ours - reference| / max |reference|, the measure the whole project uses: an element-wise
# rtol would flag values that cancel to near zero, where float32 keeps only absolute precision.
TOLERANCE = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}


def assert_close(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    error = np.abs(ours - reference).max() / np.abs(reference).max()
    assert error <= TOLERANCE[reference.dtype], f"relative error {error:.2e}"


def randn(*shape: int, dtype=np.float64) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------- against torch


torch = pytest.importorskip("torch")
F = torch.nn.functional
T = torch.from_numpy


@pytest.mark.parity
@pytest.mark.parametrize(
    "c_in, c_out, k, stride, dilation, groups, size",
    [
        (3, 8, 3, 2, 1, 1, (17, 20)),  # stem
        (8, 16, 1, 1, 1, 1, (9, 9)),  # pointwise
        (12, 12, 3, 2, 1, 12, (15, 16)),  # depthwise, stride 2
        (12, 12, 3, 1, 2, 12, (11, 13)),  # depthwise, dilated
        (6, 4, 3, 1, 6, 1, (20, 19)),  # ASPP atrous conv
        (6, 4, 5, 1, 1, 1, (7, 8)),  # kernel 5
        (8, 4, 3, 1, 1, 2, (6, 6)),  # 2 groups
    ],
)
def test_conv2d(c_in, c_out, k, stride, dilation, groups, size):
    x, w, b = randn(2, c_in, *size), randn(c_out, c_in // groups, k, k), randn(c_out)
    padding = (k - 1) // 2 * dilation
    ours = conv2d(x, w, b, stride, padding, dilation, groups)
    theirs = F.conv2d(T(x), T(w), T(b), stride, padding, dilation, groups).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize(
    "k, stride, padding, dilation, size",
    [
        (3, 1, 1, 1, (9, 7)),
        (3, 2, 1, 1, (9, 8)),  # odd and even sizes: the stride phases differ in length
        (3, 2, 2, 2, (13, 11)),  # strided and dilated: taps read different phases
        (5, 2, 2, 1, (12, 12)),
        (3, 3, 0, 1, (10, 11)),  # stride 3, no padding: the map is cut, not padded, at the end
        (5, 1, 4, 2, (6, 9)),
        (1, 2, 0, 1, (7, 7)),
    ],
)
def test_depthwise_conv2d_any_stride_padding_dilation(k, stride, padding, dilation, size):
    x, w, b = randn(2, 6, *size), randn(6, 1, k, k), randn(6)
    ours = depthwise_conv2d(x, w, b, stride, padding, dilation)
    theirs = F.conv2d(T(x), T(w), T(b), stride, padding, dilation, groups=6).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_conv2d_over_several_channel_blocks_float32(stride):
    x, w = randn(2, 40, 48, 48, dtype=np.float32), randn(40, 1, 3, 3, dtype=np.float32)
    assert len(channel_blocks(40, x[:, 0].nbytes)) > 2  # the case this test is for
    ours = depthwise_conv2d(x, w, None, stride, 1, 1)
    assert ours.flags.c_contiguous
    assert_close(ours, F.conv2d(T(x), T(w), None, stride, 1, 1, groups=40).numpy())


@pytest.mark.parity
def test_softmax_of_widely_spread_scores_has_no_subnormals():
    scores = np.array([[0.0, -50.0, -90.0, -100.0, -200.0], [3.0, 2.0, 1.0, 0.0, -1.0]], dtype=np.float32)
    ours = softmax(scores)
    assert_close(ours, F.softmax(T(scores), dim=-1).numpy())
    assert np.all(ours >= np.finfo(np.float32).tiny)  # no subnormal probability, none flushed to 0 either
    assert ours[0, 2] == ours[0, 3] == ours[0, 4] < 1e-36  # the terms raised to the floor
    np.testing.assert_allclose(ours[0, 1], np.exp(-50.0), rtol=1e-6)  # above the floor: untouched
    in_place = scores.copy()
    assert softmax(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, ours)


@pytest.mark.parity
def test_batch_norm_layer_norm_linear_softmax_pool():
    x = randn(2, 5, 4, 3)
    stats = dict(weight=randn(5), bias=randn(5), running_mean=randn(5), running_var=np.abs(randn(5)) + 0.5)
    expected = F.batch_norm(
        T(x), T(stats["running_mean"]), T(stats["running_var"]), T(stats["weight"]), T(stats["bias"]), False, 0.1, 1e-5
    )
    np.testing.assert_allclose(batch_norm(x, **stats), expected.numpy(), rtol=1e-12, atol=1e-12)

    tokens, w, b = randn(3, 7, 6), randn(6), randn(6)
    expected = F.layer_norm(T(tokens), (6,), T(w), T(b), 1e-5).numpy()
    np.testing.assert_allclose(layer_norm(tokens, w, b, 1e-5), expected, rtol=1e-12, atol=1e-12)

    weight, bias = randn(4, 6), randn(4)
    np.testing.assert_allclose(
        linear(tokens, weight, bias), F.linear(T(tokens), T(weight), T(bias)).numpy(), rtol=1e-12
    )
    np.testing.assert_allclose(softmax(tokens), F.softmax(T(tokens), dim=-1).numpy(), rtol=1e-12)
    np.testing.assert_allclose(global_avg_pool(x), T(x).mean(dim=(2, 3)).numpy(), rtol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize("size, out", [((5, 7), (6, 8)), ((8, 8), (3, 5)), ((1, 1), (4, 2)), ((9, 4), (9, 4))])
def test_bilinear_matches_torch_align_corners_false(size, out):
    for dtype in (np.float32, np.float64):
        x = randn(2, 3, *size, dtype=dtype)
        theirs = F.interpolate(T(x), size=out, mode="bilinear", align_corners=False).numpy()
        assert_close(interpolate_bilinear(x, out), theirs)


@pytest.mark.parity
def test_multi_head_attention_matches_torch_sdpa():
    x = randn(3, 10, 8)
    proj = {name: dict(weight=randn(8, 8), bias=randn(8)) for name in ("query", "key", "value")}
    context, probs = multi_head_attention(x, **proj, num_heads=2)

    def heads(name):  # (N, L, D) -> (N, 2, L, 4)
        return F.linear(T(x), T(proj[name]["weight"]), T(proj[name]["bias"])).view(3, 10, 2, 4).transpose(1, 2)

    expected = F.scaled_dot_product_attention(heads("query"), heads("key"), heads("value"))
    np.testing.assert_allclose(context, expected.transpose(1, 2).reshape(3, 10, 8).numpy(), rtol=1e-10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)


@pytest.mark.parity
@pytest.mark.parametrize("name", sorted(activations.ACTIVATIONS))
def test_activations_match_transformers_act2fn(name):
    act2fn = pytest.importorskip("transformers.activations").ACT2FN
    x = np.concatenate([np.linspace(-12, 12, 2001), [-100.0, 100.0, 0.0]])
    for dtype in (np.float64, np.float32):
        assert_close(activations.get_activation(name)(x.astype(dtype)), act2fn[name](T(x.astype(dtype))).numpy())


def test_fold_batch_norm_equals_conv_then_norm():
    rng = np.random.RandomState(0)
    x, weight, bias = rng.randn(2, 4, 7, 6), rng.randn(5, 4, 3, 3), rng.randn(5)
    norm = {
        "weight": rng.randn(5),
        "bias": rng.randn(5),
        "running_mean": rng.randn(5),
        "running_var": rng.rand(5) + 0.5,
    }
    for conv_bias in (bias, None):
        expected = batch_norm(conv2d(x, weight, conv_bias, 2, 1), **norm, eps=1e-5)
        folded_weight, folded_bias = fold_batch_norm(weight, conv_bias, norm)
        np.testing.assert_allclose(conv2d(x, folded_weight, folded_bias, 2, 1), expected, rtol=1e-12, atol=1e-12)
