"""MobileViTV2Config: transformers' defaults and widths, config.json files, errors that name the field."""

from __future__ import annotations

import json

import pytest

from mobilevit_np import ConfigError, MobileViTConfig, MobileViTV2Config, load_config
from mobilevit_np.architecture_v2 import attention_widths, channel_widths, encoder_stages, parameter_shapes


def test_defaults_are_transformers_defaults():
    transformers = pytest.importorskip("transformers")
    ours, theirs = MobileViTV2Config(), transformers.MobileViTV2Config()
    for field, value in ours.to_dict().items():
        if field in ("extra", "id2label", "label2id", "problem_type"):
            continue
        expected = getattr(theirs, field)
        assert list(value) == list(expected) if isinstance(value, list) else value == expected, field
    assert ours.num_labels == theirs.num_labels == 2


@pytest.mark.parametrize("width", [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
@pytest.mark.parametrize("head", ["base", "classification", "segmentation"])
def test_parameter_shapes_are_transformers_state_dict(width, head):
    """Every published width, every head: the same names and shapes as transformers' own model."""
    transformers = pytest.importorskip("transformers")
    config = MobileViTV2Config(width_multiplier=width, num_labels=3, output_stride=16)
    cls = {
        "base": transformers.MobileViTV2Model,
        "classification": transformers.MobileViTV2ForImageClassification,
        "segmentation": transformers.MobileViTV2ForSemanticSegmentation,
    }[head]
    model = cls(transformers.MobileViTV2Config(**config.to_dict()))
    theirs = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert parameter_shapes(config, head) == theirs


def test_widths_of_mobilevitv2_1_0_and_0_5():
    assert channel_widths(MobileViTV2Config()) == [32, 64, 128, 256, 384, 512]
    assert attention_widths(MobileViTV2Config()) == [128, 192, 256]
    assert channel_widths(MobileViTV2Config(width_multiplier=0.5)) == [16, 32, 64, 128, 192, 256]
    assert [s.depth for s in encoder_stages(MobileViTV2Config())] == [1, 2, 2, 4, 3]


def test_reads_a_config_written_by_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.MobileViTV2Config(width_multiplier=1.5, num_labels=21, output_stride=16).save_pretrained(tmp_path)
    config = load_config(tmp_path)
    assert isinstance(config, MobileViTV2Config)
    assert (config.width_multiplier, config.num_labels, config.output_stride) == (1.5, 21, 16)
    assert "transformers_version" in config.extra
    assert config.n_attn_blocks == [2, 4, 3]  # written as a JSON list, read back as one


def test_roundtrip_and_load_config_picks_the_generation(tmp_path):
    MobileViTV2Config(width_multiplier=0.75, num_labels=4, hidden_act="gelu").save_pretrained(tmp_path / "v2")
    MobileViTConfig(num_labels=4).save_pretrained(tmp_path / "v1")
    again = load_config(tmp_path / "v2")
    assert again == MobileViTV2Config(width_multiplier=0.75, num_labels=4, hidden_act="gelu", extra={})
    assert type(load_config(tmp_path / "v1")) is MobileViTConfig
    assert type(load_config(tmp_path / "v2" / "config.json")) is MobileViTV2Config


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"width_multiplier": 0}, "width_multiplier"),
        ({"width_multiplier": "1.0"}, "width_multiplier"),
        ({"n_attn_blocks": [2, 4]}, "n_attn_blocks"),
        ({"base_attn_unit_dims": [128, 192, "256"]}, "base_attn_unit_dims"),
        ({"ffn_multiplier": 0}, "ffn_multiplier"),
        ({"ffn_multiplier": 1, "width_multiplier": 0.05}, "ffn_multiplier"),
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"conv_kernel_size": 4}, "conv_kernel_size"),
        ({"output_stride": 4}, "output_stride"),
        ({"atrous_rates": [6, 12]}, "atrous_rates"),
        ({"attn_dropout": None}, "attn_dropout"),
        ({"model_type": "mobilevit"}, "model_type"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        MobileViTV2Config.from_dict(overrides)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="config.json not found"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mobilevitv3"}))
    with pytest.raises(ConfigError, match="model_type is 'mobilevitv3'"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(ConfigError, match="JSON object"):
        load_config(tmp_path)
