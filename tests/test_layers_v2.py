"""MobileViTV2's new pieces on their own against torch and transformers: one-group GroupNorm,
separable self-attention, and unfold/fold on maps that are not a multiple of the patch size."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np.layers import group_norm, separable_self_attention
from mobilevit_np.patches import fold_v2, unfold_v2

torch = pytest.importorskip("torch")
from test_layers import assert_close  # noqa: E402  (the project's relative-error check, per dtype)

F = torch.nn.functional
RNG = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_is_torch_group_norm_with_one_group(dtype):
    x = (RNG.standard_normal((3, 6, 4, 5)) * 3 + 1).astype(dtype)
    weight, bias = RNG.standard_normal(6).astype(dtype), RNG.standard_normal(6).astype(dtype)
    expected = F.group_norm(torch.from_numpy(x), 1, torch.from_numpy(weight), torch.from_numpy(bias), eps=1e-5)
    assert_close(group_norm(x, weight, bias, eps=1e-5), expected.numpy())


def test_group_norm_differs_from_a_per_token_layer_norm():
    """Samples are normalized as a whole: one sample's scale does not leak into another's."""
    x = RNG.standard_normal((2, 4, 3, 3))
    x[1] *= 100
    y = group_norm(x, np.ones(4), np.zeros(4))
    assert np.allclose(y[0], group_norm(x[:1], np.ones(4), np.zeros(4))[0])
    assert np.isclose(y.reshape(2, -1).std(axis=1), 1, atol=1e-4).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_separable_attention_is_transformers_linear_self_attention(dtype):
    transformers = pytest.importorskip("transformers")
    from transformers.models.mobilevitv2.modeling_mobilevitv2 import MobileViTV2LinearSelfAttention

    d = 12
    layer = (
        MobileViTV2LinearSelfAttention(transformers.MobileViTV2Config(), d)
        .eval()
        .to(getattr(torch, np.dtype(dtype).name))
    )
    x = RNG.standard_normal((2, d, 4, 9)).astype(dtype)  # (B, d, P, N)
    params = {
        name: {"convolution": {k: v.detach().numpy() for k, v in getattr(layer, name).convolution.named_parameters()}}
        for name in ("qkv_proj", "out_proj")
    }
    out, scores = separable_self_attention(x, **params)
    with torch.no_grad():
        assert_close(out, layer(torch.from_numpy(x)).numpy())
    assert scores.shape == (2, 1, 4, 9)
    assert np.allclose(scores.sum(axis=-1), 1)  # a distribution over the N patches, per pixel offset


def test_separable_attention_cost_is_linear_in_patches():
    """No N x N array anywhere: the context is one d-vector per image and pixel offset."""
    d = 4
    params = {
        "qkv_proj": {"convolution": {"weight": RNG.standard_normal((1 + 2 * d, d, 1, 1)), "bias": np.zeros(1 + 2 * d)}},
        "out_proj": {"convolution": {"weight": np.eye(d)[:, :, None, None], "bias": np.zeros(d)}},
    }
    x = RNG.standard_normal((1, d, 1, 10_000))  # 10^4 patches: an N x N float64 matrix would be 800 MB
    out, scores = separable_self_attention(x, **params)
    assert out.shape == x.shape and scores.shape == (1, 1, 1, 10_000)


@pytest.mark.parametrize("size, patch", [((8, 8), 2), ((9, 7), 2), ((11, 13), 3), ((5, 6), 1), ((3, 2), 2)])
def test_unfold_and_fold_are_torch_unfold_and_fold(size, patch):
    x = RNG.standard_normal((2, 3, *size))
    ours = unfold_v2(x, patch)
    theirs = F.unfold(torch.from_numpy(x), patch, stride=patch).reshape(2, 3, patch * patch, -1)
    assert np.array_equal(ours, theirs.numpy())
    back = F.fold(theirs.reshape(2, 3 * patch * patch, -1), size, patch, stride=patch)
    assert np.array_equal(fold_v2(ours, size), back.numpy())  # zeros past the last whole patch


def test_a_map_smaller_than_a_patch_is_refused_plainly():
    with pytest.raises(ValueError, match="1x3 feature map is smaller than one 2x2 patch"):
        unfold_v2(np.zeros((1, 2, 1, 3)), 2)
