"""MobileViTV2 models: losses against transformers, loading checkpoints of every head, clear errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTConfig,
    MobileViTV2Config,
    MobileViTV2ForImageClassification,
    MobileViTV2ForSemanticSegmentation,
    MobileViTV2Model,
    WeightsError,
)
from mobilevit_np.backends import numba_available
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.random_weights import random_pixel_values, random_state_dict

TINY_V2 = dict(width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[1, 1, 1], aspp_out_channels=8)
X = random_pixel_values((2, 3, 64, 64), seed=3)
needs_numba = pytest.mark.skipif(not numba_available(), reason="needs numba")


def tiny_v2(**overrides) -> MobileViTV2Config:
    return MobileViTV2Config(**{**TINY_V2, "num_labels": 4, **overrides})


def build(cls, head: str, **overrides):
    config = tiny_v2(**overrides)
    return cls.from_config(config, random_state_dict(config, head, seed=1))


def test_output_shapes_and_trace_of_mobilevitv2_1_0():
    config = MobileViTV2Config(num_labels=1000)
    model = MobileViTV2ForImageClassification.from_config(config, random_state_dict(config, "classification"))
    trace = model.trace(random_pixel_values((1, 3, 256, 256)), output_hidden_states=True)
    out = trace.output
    assert out.logits.shape == (1, 1000) and out.attentions is None
    assert [h.shape[1:] for h in out.hidden_states] == [
        (64, 128, 128), (128, 64, 64), (256, 32, 32), (384, 16, 16), (512, 8, 8)
    ]  # fmt: skip
    scores = trace["encoder.layer.2.transformer.layer.0.context_scores"]
    assert scores.shape == (1, 1, 4, 256)  # (B, 1, pixels per patch, patches) at layer_3's 32x32 map
    assert np.allclose(scores.sum(axis=-1), 1)


def test_base_model_loads_the_backbone_of_a_head_checkpoint(tmp_path):
    config = tiny_v2()
    state_dict = random_state_dict(config, "segmentation", seed=2)
    save_checkpoint(tmp_path, config, state_dict)
    base = MobileViTV2Model.from_pretrained(tmp_path)
    segmenter = MobileViTV2ForSemanticSegmentation.from_pretrained(tmp_path)
    ours = base(X, output_hidden_states=True)
    assert np.array_equal(ours.last_hidden_state, segmenter(X, output_hidden_states=True).hidden_states[-1])
    assert ours.pooler_output.shape == (2, 128)
    assert MobileViTV2Model.from_pretrained(tmp_path, expand_output=False)(X).pooler_output is None


def test_v1_checkpoint_is_refused_by_a_v2_model(tmp_path, make_checkpoint):
    folder = make_checkpoint("classification")
    with pytest.raises(Exception, match="model_type is 'mobilevit'"):
        MobileViTV2ForImageClassification.from_pretrained(folder)
    with pytest.raises(TypeError, match="config must be a MobileViTV2Config"):
        MobileViTV2ForImageClassification.from_pretrained(folder, config=MobileViTConfig())


def test_weights_of_another_width_are_named(tmp_path):
    config = tiny_v2()
    with pytest.raises(WeightsError, match="shape mismatch for mobilevitv2.conv_stem"):
        MobileViTV2ForImageClassification.from_config(
            config, random_state_dict(tiny_v2(width_multiplier=1.0), "classification")
        )


def test_backends_behave_as_for_mobilevit(tmp_path, monkeypatch):
    """ "auto" runs the engine when numba is there and the reference when not; "numba" without numba names the extra."""
    config = tiny_v2()
    state_dict = random_state_dict(config, "base")
    save_checkpoint(tmp_path, config, state_dict)
    auto = "numba" if numba_available() else "numpy"
    assert MobileViTV2Model.from_config(config, state_dict, backend="auto").backend == auto
    assert MobileViTV2Model.from_pretrained(tmp_path, backend="auto").backend == auto
    monkeypatch.setitem(sys.modules, "numba", None)  # as on an install without the fast extra
    assert MobileViTV2Model.from_pretrained(tmp_path, backend="auto").backend == "numpy"
    with pytest.raises(ImportError, match=r"mobilevit-np\[fast\]"):
        MobileViTV2Model.from_config(config, state_dict, backend="numba")


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_too_small_an_input_says_so(backend):
    config = tiny_v2()
    model = MobileViTV2ForImageClassification.from_config(
        config, random_state_dict(config, "classification", seed=1), backend=backend
    )
    with pytest.raises(ValueError, match="smaller than one 2x2 patch"):
        model(random_pixel_values((1, 3, 32, 32)))  # layer_5's map is 1x1


def test_segmentation_needs_two_labels_for_a_loss():
    model = build(MobileViTV2ForSemanticSegmentation, "segmentation", num_labels=1)
    with pytest.raises(ValueError, match="greater than one"):
        model(X, labels=np.zeros((2, 64, 64), np.int64))


@pytest.mark.parity
@pytest.mark.parametrize(
    "head, num_labels, labels",
    [
        ("classification", 4, np.array([0, 3])),
        ("classification", 4, np.random.RandomState(0).randint(0, 2, (2, 4)).astype(np.float32)),
        ("classification", 1, np.array([0.5, -1.0], np.float32)),
        ("segmentation", 4, np.where(np.random.RandomState(1).rand(2, 64, 64) < 0.2, 255, 1)),
    ],
    ids=["single-label", "multi-label", "regression", "segmentation-ignore-index"],
)
def test_losses_match_transformers(head, num_labels, labels):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from reference import transformers_model

    config = tiny_v2(num_labels=num_labels)
    state_dict = random_state_dict(config, head, seed=4)
    cls = MobileViTV2ForImageClassification if head == "classification" else MobileViTV2ForSemanticSegmentation
    ours = cls.from_config(config, state_dict, dtype=np.float64)(X, labels=labels).loss
    reference = transformers_model(head, config, state_dict).double()
    targets = torch.from_numpy(labels.astype(np.float64) if labels.dtype.kind == "f" else labels)  # float64 throughout
    with torch.no_grad():
        theirs = reference(torch.from_numpy(X.astype(np.float64)), labels=targets).loss.numpy()
    assert abs(float(ours) - float(theirs)) <= 1e-9 * max(1.0, abs(float(theirs)))


def test_memory_estimate_covers_v2_and_refuses_a_batch_that_cannot_fit(monkeypatch):
    """The pre-flight check reads v2's widths (no N x N attention term) and fails before allocating."""
    import mobilevit_np.memory as memory

    config = MobileViTV2Config()
    one = memory.forward_bytes(config, (1, 3, 512, 512), np.float32)
    assert memory.forward_bytes(config, (4, 3, 512, 512), np.float32) == 4 * one
    # The largest map: layer_2's 128-channel expansion of layer_1's 64-channel 256x256 output, 6 x 4 bytes each.
    assert one == int(6 * 128 * 256 * 256 * 4)
    monkeypatch.setattr(memory, "available_bytes", lambda: one)
    model = MobileViTV2Model.from_config(config, random_state_dict(config, "base"))
    with pytest.raises(MemoryError, match="lower the batch size"):
        model(np.zeros((2, 3, 512, 512), np.float32))


def test_return_dict_false_gives_transformers_tuple():
    model = build(MobileViTV2ForImageClassification, "classification")
    out = model(X, labels=np.array([0, 1]), output_hidden_states=True)
    loss, logits, hidden_states = model(X, labels=np.array([0, 1]), output_hidden_states=True, return_dict=False)
    assert np.array_equal(logits, out.logits) and loss == out.loss and len(hidden_states) == 5
