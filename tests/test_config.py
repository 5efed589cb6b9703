"""MobileViTConfig: transformers' defaults, reading real config.json files, and errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mobilevit_np import ConfigError, MobileViTConfig
from mobilevit_np.architecture import encoder_stages, make_divisible

GOLDEN_CONFIG = Path(__file__).parent / "fixtures" / "golden" / "small-cls" / "config.json"


def test_defaults_are_transformers_defaults():
    transformers = pytest.importorskip("transformers")
    ours, theirs = MobileViTConfig(), transformers.MobileViTConfig()
    for field, value in ours.to_dict().items():
        if field in ("extra", "id2label", "label2id", "problem_type", "model_type"):
            continue
        assert (
            list(value) == list(getattr(theirs, field)) if isinstance(value, list) else value == getattr(theirs, field)
        ), field
    assert ours.num_labels == theirs.num_labels == 2


def test_reads_a_config_written_by_transformers():
    config = MobileViTConfig.from_pretrained(GOLDEN_CONFIG)
    raw = json.loads(GOLDEN_CONFIG.read_text())
    assert config.num_labels == len(raw["id2label"]) == 1000
    assert all(isinstance(k, int) for k in config.id2label)
    assert config.label2id[config.id2label[7]] == 7
    assert "transformers_version" in config.extra  # unknown keys kept, not fatal


def test_folder_and_file_paths_and_roundtrip(tmp_path):
    config = MobileViTConfig(num_labels=3, output_stride=16, hidden_act="gelu")
    config.save_pretrained(tmp_path)
    again = MobileViTConfig.from_pretrained(tmp_path)
    assert again == config
    assert MobileViTConfig.from_pretrained(tmp_path / "config.json") == config
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}


def test_config_and_preprocessor_files_are_written_in_transformers_layout(tmp_path):
    from mobilevit_np.config import write_json_file
    from mobilevit_np.image_processing import MobileViTImageProcessor

    write_json_file(str(tmp_path / "small.json"), {"b": 1, "a": [1, 2]})
    assert (tmp_path / "small.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    MobileViTConfig(num_labels=2).save_pretrained(tmp_path)
    MobileViTImageProcessor().save_pretrained(tmp_path)
    for name in ("config.json", "preprocessor_config.json"):
        text = (tmp_path / name).read_text()
        assert text.endswith("}\n") and text.startswith('{\n  "')  # 2-space indent, final newline
        keys = list(json.loads(text))
        assert keys == sorted(keys), name


def test_num_labels_without_id2label():
    assert MobileViTConfig.from_dict({"num_labels": 21}).num_labels == 21
    assert MobileViTConfig(num_labels=0).num_labels == 0
    with pytest.raises(ConfigError, match="num_labels=3 disagrees"):
        MobileViTConfig(num_labels=3, id2label={0: "a"})


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"output_stride": 4}, "output_stride"),
        ({"hidden_sizes": [144, 192, 241]}, "hidden_sizes"),
        ({"num_attention_heads": 5}, "hidden_sizes"),
        ({"hidden_sizes": [144, 192]}, "hidden_sizes"),
        ({"neck_hidden_sizes": [16, 32, 64]}, "neck_hidden_sizes"),
        ({"atrous_rates": [6, 12]}, "atrous_rates"),
        ({"hidden_act": "swishy"}, "hidden_act"),
        ({"patch_size": 0}, "patch_size"),
        ({"patch_size": "2"}, "patch_size"),
        ({"conv_kernel_size": 4}, "conv_kernel_size"),
        ({"model_type": "mobilevitv2"}, "model_type"),
        ({"qkv_bias": "yes"}, "qkv_bias"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"problem_type": "ranking"}, "problem_type"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        MobileViTConfig.from_dict(overrides)


def test_mobilevitv2_is_refused_plainly(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mobilevitv2"}))
    with pytest.raises(ConfigError, match="MobileViTV2Config"):
        MobileViTConfig.from_pretrained(tmp_path)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config.json not found"):
        MobileViTConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        MobileViTConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        MobileViTConfig.from_pretrained(tmp_path)


def test_make_divisible_matches_transformers():
    modeling = pytest.importorskip("transformers.models.mobilevit.modeling_mobilevit")
    for value in range(1, 700):
        assert make_divisible(value) == modeling.make_divisible(value)


@pytest.mark.parametrize(
    "output_stride, expected",
    [(32, [(2, 1), (2, 1), (2, 1)]), (16, [(2, 1), (2, 1), (1, 1)]), (8, [(2, 1), (1, 1), (1, 2)])],
)
def test_output_stride_turns_strides_into_dilation(output_stride, expected):
    stages = encoder_stages(MobileViTConfig(output_stride=output_stride))
    assert [s.downsample for s in stages[2:]] == expected
