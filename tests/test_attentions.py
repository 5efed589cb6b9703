"""output_attentions=True: one probability tensor per transformer layer, equal to transformers' softmax."""

import numpy as np
import pytest

from mobilevit_np import MobileViTForImageClassification, MobileViTForSemanticSegmentation
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict


def expected_attention_shapes(batch: int, height: int, width: int, output_stride: int = 32) -> list[tuple]:
    """(batch * patch_area, heads, num_patches, num_patches) for the tiny config's 2+4+3 layers."""
    sizes = [(height // 8, width // 8), (height // 16, width // 16), (height // 32, width // 32)]
    if output_stride == 16:
        sizes[2] = sizes[1]
    shapes = []
    for (h, w), depth in zip(sizes, (2, 4, 3), strict=True):
        num_patches = -(-h // 2) * -(-w // 2)  # ceil: maps are resized up to a multiple of the patch size
        shapes += [(batch * 4, 2, num_patches, num_patches)] * depth
    return shapes


@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_attention_shapes_and_rows_sum_to_one(make_checkpoint, size):
    model = MobileViTForImageClassification.from_pretrained(make_checkpoint("classification"))
    x = np.random.RandomState(1).uniform(0, 1, (3, 3, *size)).astype(np.float32)
    attentions = model(x, output_attentions=True).attentions
    assert [a.shape for a in attentions] == expected_attention_shapes(3, *size)
    for probs in attentions:
        assert probs.min() >= 0
        np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert model(x).attentions is None


def test_segmenter_attentions_at_output_stride_16(make_checkpoint, pixel_values):
    model = MobileViTForSemanticSegmentation.from_pretrained(make_checkpoint("segmentation", output_stride=16))
    attentions = model(pixel_values, output_attentions=True).attentions
    assert [a.shape for a in attentions] == expected_attention_shapes(2, 64, 64, output_stride=16)


# ------------------------------------------------------------------ parity with transformers


def transformers_attention_probs(config, state_dict, pixel_values, head):
    """Run transformers' model and capture each attention softmax with a forward hook.

    MobileViTSelfAttention computes softmax(QK^T / sqrt(d)) and passes it straight to its
    `dropout` module (p=0, eval mode), so that module's input is the softmax output.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.mobilevit.modeling_mobilevit import MobileViTSelfAttention

    classes = {
        "classification": transformers.MobileViTForImageClassification,
        "segmentation": transformers.MobileViTForSemanticSegmentation,
    }
    reference = classes[head](transformers.MobileViTConfig(**config.to_dict())).eval()
    result = reference.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()}, strict=False)
    assert not result.unexpected_keys
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys), result.missing_keys
    captured = []
    hooks = [
        module.dropout.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach().numpy()))
        for module in reference.modules()
        if isinstance(module, MobileViTSelfAttention)
    ]
    with torch.no_grad():
        reference(torch.from_numpy(pixel_values))
    for hook in hooks:
        hook.remove()
    return captured


@pytest.mark.parity
@pytest.mark.parametrize(
    "head, overrides, size",
    [
        ("classification", {}, (64, 64)),
        ("classification", {}, (72, 88)),  # maps not a multiple of the patch size: resized before unfolding
        ("segmentation", {"output_stride": 16}, (64, 64)),
    ],
)
def test_attentions_match_transformers_softmax(head, overrides, size):
    config = tiny_config(**overrides)
    state_dict = random_state_dict(config, head, seed=3)
    x = np.random.RandomState(2).uniform(0, 1, (2, 3, *size)).astype(np.float32)
    reference = transformers_attention_probs(config, state_dict, x, head)

    model_class = MobileViTForImageClassification if head == "classification" else MobileViTForSemanticSegmentation
    ours = model_class.from_config(config, state_dict)(x, output_attentions=True).attentions

    assert len(ours) == len(reference) == 9
    for i, (a, b) in enumerate(zip(ours, reference, strict=True)):
        assert a.shape == b.shape, f"layer {i}: {a.shape} vs {b.shape}"
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"attention layer {i}")
