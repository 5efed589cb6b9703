"""backend="numpy" | "numba" | "auto": selection, errors, batch-norm folding, and whole-model parity."""

import importlib.util
import sys

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTConfig,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
)
from mobilevit_np.architecture import BATCH_NORM_EPS
from mobilevit_np.backends import fold_batch_norm, fold_batch_norms, prepare_params, resolve_backend
from mobilevit_np.layers import batch_norm, conv2d
from mobilevit_np.model import REFERENCE_OPS
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

# float32 rounding through ~30 layers; the kernels reorder sums and use their own exp.
RTOL32 = 1e-5


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture
def no_numba(monkeypatch):
    """Make `import numba` fail, as on an install without the fast extra."""
    monkeypatch.setitem(sys.modules, "numba", None)


def test_resolve_backend_names():
    assert resolve_backend("numpy") == "numpy"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("cuda")


def test_missing_numba_names_the_fast_extra(no_numba, make_checkpoint):
    with pytest.raises(ImportError, match=r"mobilevit-np\[fast\]"):
        resolve_backend("numba")
    folder = make_checkpoint("classification")
    with pytest.raises(ImportError, match=r"mobilevit-np\[fast\]"):
        MobileViTForImageClassification.from_pretrained(folder, backend="numba")
    model = MobileViTForImageClassification.from_pretrained(folder, backend="auto")
    assert model.backend == "numpy" and model.ops is REFERENCE_OPS


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
        expected = batch_norm(conv2d(x, weight, conv_bias, 2, 1), **norm, eps=BATCH_NORM_EPS)
        folded_weight, folded_bias = fold_batch_norm(weight, conv_bias, norm)
        np.testing.assert_allclose(conv2d(x, folded_weight, folded_bias, 2, 1), expected, rtol=1e-12, atol=1e-12)


def test_fold_batch_norms_removes_every_norm(make_checkpoint):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    folded = fold_batch_norms(model.params)

    def walk(original, node):
        if isinstance(node, list):
            for a, b in zip(original, node, strict=True):
                walk(a, b)
        elif isinstance(node, dict):
            assert "normalization" not in node
            if "normalization" in original:  # a folded norm leaves a bias behind
                assert node["convolution"]["bias"].shape == original["normalization"]["bias"].shape
            for key, child in node.items():
                if key in original:  # a conv bias is new where the conv had none
                    walk(original[key], child)

    walk(model.params, folded)
    assert "normalization" in model.params["mobilevit"]["conv_stem"]  # the original tree is untouched


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba (the fast extra) not installed")
def test_prepare_params_keeps_dense_conv_weights_tap_major(make_checkpoint):
    from mobilevit_np.kernels.conv import tap_major

    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    prepared = prepare_params(model.params, "numba")
    fusion = prepared["mobilevit"]["encoder"]["layer"][2]["fusion"]["convolution"]  # dense 3x3
    np.testing.assert_array_equal(fusion["taps"], tap_major(fusion["weight"]))
    assert fusion["taps"].flags.c_contiguous
    assert "taps" not in prepared["mobilevit"]["encoder"]["layer"][2]["conv_1x1"]["convolution"]  # 1x1: no taps
    depthwise = prepared["mobilevit"]["encoder"]["layer"][0]["layer"][0]["conv_3x3"]["convolution"]
    assert "taps" not in depthwise
    assert prepare_params(model.params, "numpy") is model.params


numba_only = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None, reason="numba (the fast extra) not installed"
)


@numba_only
def test_auto_picks_numba(make_checkpoint):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"), backend="auto")
    assert model.backend == "numba"
    assert "normalization" not in model.params["mobilevit"]["conv_stem"]
    attention = model.params["mobilevit"]["encoder"]["layer"][2]["transformer"]["layer"][0]["attention"]["attention"]
    qkv = attention["qkv"]["weight"]  # (3D, D); query/key/value are views into it, not copies
    width = qkv.shape[1]
    assert qkv.shape == (3 * width, width)
    for i, name in enumerate(("query", "key", "value")):
        assert np.shares_memory(attention[name]["weight"], qkv)
        np.testing.assert_array_equal(attention[name]["weight"], qkv[i * width : (i + 1) * width])


@numba_only
@pytest.mark.parametrize("dtype, rtol", [(np.float32, RTOL32), (np.float64, 1e-10)])
def test_classifier_numba_matches_numpy(make_checkpoint, pixel_values, dtype, rtol):
    folder = make_checkpoint("classification")
    ref = MobileViTForImageClassification.from_pretrained(folder, dtype=dtype)
    fast = MobileViTForImageClassification.from_pretrained(folder, dtype=dtype, backend="numba")
    a = ref(pixel_values, output_hidden_states=True, output_attentions=True)
    b = fast(pixel_values, output_hidden_states=True, output_attentions=True)
    assert b.logits.dtype == dtype
    assert relative_error(b.logits, a.logits) < rtol
    for h_fast, h_ref in zip(b.hidden_states, a.hidden_states, strict=True):
        assert relative_error(h_fast, h_ref) < rtol
    for p_fast, p_ref in zip(b.attentions, a.attentions, strict=True):
        np.testing.assert_allclose(p_fast, p_ref, rtol=rtol, atol=rtol * 1e-2)


@numba_only
def test_segmenter_and_base_numba_match_numpy(make_checkpoint):
    # output_stride 8 (dilated stages, ASPP) and a size that is no multiple of the patch grid (bilinear resize)
    x = np.random.RandomState(1).uniform(0, 1, (2, 3, 66, 75)).astype(np.float32)
    folder = make_checkpoint("segmentation", output_stride=8)
    a = MobileViTForSemanticSegmentation.from_pretrained(folder)(x).logits
    b = MobileViTForSemanticSegmentation.from_pretrained(folder, backend="numba")(x).logits
    assert b.shape == a.shape and relative_error(b, a) < RTOL32
    base_folder = make_checkpoint("classification")
    a = MobileViTModel.from_pretrained(base_folder)(x)
    b = MobileViTModel.from_pretrained(base_folder, backend="numba")(x)
    assert relative_error(b.pooler_output, a.pooler_output) < RTOL32
    assert relative_error(b.last_hidden_state, a.last_hidden_state) < RTOL32


@numba_only
def test_from_config_takes_backend_and_trace_works(pixel_values):
    config = tiny_config()
    state_dict = random_state_dict(config, "classification", seed=3)
    ref = MobileViTForImageClassification.from_config(config, state_dict)
    fast = MobileViTForImageClassification.from_config(config, state_dict, backend="numba")
    assert relative_error(fast(pixel_values).logits, ref(pixel_values).logits) < RTOL32
    traced = fast.trace(pixel_values)
    assert traced.names == ref.trace(pixel_values).names


@pytest.mark.slow
@numba_only
@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_full_size_numba_matches_numpy(head):
    config = MobileViTConfig(
        num_labels=21 if head == "segmentation" else 1000, output_stride=16 if head == "segmentation" else 32
    )
    cls = MobileViTForSemanticSegmentation if head == "segmentation" else MobileViTForImageClassification
    state_dict = random_state_dict(config, head, seed=0)
    x = np.random.RandomState(0).uniform(0, 1, (2, 3, 256, 256)).astype(np.float32)
    ref = cls.from_config(config, state_dict)(x).logits
    fast = cls.from_config(config, state_dict, backend="numba")(x).logits
    assert relative_error(fast, ref) < RTOL32
