"""The architecture table: shapes agree with a real forward pass; parameters and MACs with transformers."""

from __future__ import annotations

import numpy as np
import pytest

from mobilevit_np import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTV2Config,
    MobileViTV2ForImageClassification,
    MobileViTV2ForSemanticSegmentation,
)
from mobilevit_np.presets import PRESET_NAMES, preset_config, tiny_config
from mobilevit_np.random_weights import random_state_dict
from mobilevit_np.summary import architecture_summary, format_summary


@pytest.mark.parametrize("side", [64, 50])  # 50: not a multiple of the patch grid (unfold resizes)
@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_shapes_match_the_traced_forward_pass(head, side):
    config = tiny_config(output_stride=16 if head == "segmentation" else 32)
    cls = MobileViTForImageClassification if head == "classification" else MobileViTForSemanticSegmentation
    model = cls.from_config(config, random_state_dict(config, head))
    trace = model.trace(np.zeros((1, 3, side, side), np.float32))
    traced = {name: shape[1:] for name, shape in zip(trace.names, (e.shape for e in trace.entries), strict=True)}
    rows = architecture_summary(config, head, side)
    checked = 0
    for row in rows:
        name = row.name.replace("segmentation_head.", "")
        if name in traced and "transformer" not in name:  # tokens are traced for the whole batch of patches
            assert traced[name] == row.output_shape, row.name
            checked += 1
    assert checked >= 20
    logits = model(np.zeros((1, 3, side, side), np.float32)).logits
    assert logits.shape[1:] == rows[-1].output_shape


def test_format_has_totals():
    rows = architecture_summary(preset_config("xx-small"), "classification", 256)
    text = format_summary(rows, title="xx-small")
    assert text.splitlines()[0] == "xx-small"
    assert f"{sum(r.params for r in rows):,} parameters" in text
    with pytest.raises(ValueError, match="image_size must be a positive integer"):
        architecture_summary(preset_config("xx-small"), image_size=0)


@pytest.mark.parity
@pytest.mark.parametrize("name", PRESET_NAMES)  # MobileViT's three sizes and MobileViTV2's seven widths
@pytest.mark.parametrize(
    "head, side",
    [("classification", 256), pytest.param("segmentation", 512, marks=pytest.mark.slow), ("segmentation", 200)],
)  # 200: maps not a multiple of the patch size (v1 resizes, v2 drops the remainder)
def test_params_and_macs_match_transformers(name, head, side):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    config = preset_config(name, head)
    data = {k: v for k, v in config.to_dict().items() if k != "label2id"}
    generation = "MobileViTV2" if config.model_type == "mobilevitv2" else "MobileViT"
    task = "ForImageClassification" if head == "classification" else "ForSemanticSegmentation"
    cls = getattr(transformers, generation + task)
    model = cls(getattr(transformers, f"{generation}Config")(**data)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    rows = architecture_summary(config, head, side)
    assert sum(r.params for r in rows) == model.num_parameters()
    assert sum(r.macs for r in rows) * 2 == counter.get_total_flops()  # torch counts a MAC as 2 FLOPs


@pytest.mark.parametrize("side", [64, 50])  # 50: layer_5's map is 2x2, layer_4's 4x4, layer_3's 7x7 (remainder dropped)
@pytest.mark.parametrize("head", ["classification", "segmentation"])
def test_v2_shapes_match_the_traced_forward_pass(head, side):
    config = MobileViTV2Config(
        width_multiplier=0.25, base_attn_unit_dims=[32, 48, 64], n_attn_blocks=[1, 1, 1], num_labels=3
    )
    cls = MobileViTV2ForImageClassification if head == "classification" else MobileViTV2ForSemanticSegmentation
    model = cls.from_config(config, random_state_dict(config, head))
    trace = model.trace(np.zeros((1, 3, side, side), np.float32))
    traced = {name: shape[1:] for name, shape in zip(trace.names, (e.shape for e in trace.entries), strict=True)}
    rows = architecture_summary(config, head, side)
    compared = {row.name: row.output_shape for row in rows if row.name.replace("segmentation_head.", "") in traced}
    assert len(compared) >= 15  # the stem, every block, the transformer layers (tokens (d, p*p, patches)), the head
    for name, shape in compared.items():
        assert traced[name.replace("segmentation_head.", "")] == shape, name
    assert model(np.zeros((1, 3, side, side), np.float32)).logits.shape[1:] == rows[-1].output_shape
