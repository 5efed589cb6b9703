"""Loading weights: layouts transformers writes, and one clear error for every broken file."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from mobilevit_np import (
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTModel,
    WeightsError,
)
from mobilevit_np.checkpoints.safetensors_io import load_safetensors
from mobilevit_np.checkpoints.state_dict import build_tree, load_checkpoint_tensors
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict


def write_raw_safetensors(path, header: dict, data: bytes) -> None:
    """A safetensors file byte by byte, so tests can write what no library would."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def valid_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, np.float32)}, str(path))
    return path


def test_reads_what_safetensors_writes(tmp_path):
    tensors = load_safetensors(valid_file(tmp_path))
    np.testing.assert_array_equal(tensors["a"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert tensors["b"].dtype == np.float32 and tensors["b"].flags.writeable


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: b"", "only 0 bytes"),
        (lambda raw: raw[:5], "only 5 bytes"),
        (lambda raw: raw[:20], "points past the end"),  # header cut
        (lambda raw: raw[:-4], "fall outside"),  # data cut
        (lambda raw: struct.pack("<Q", 10**12) + raw[8:], "points past the end"),
        (lambda raw: raw[:8] + b"\xff" * (len(raw) - 8), "not valid JSON"),
    ],
    ids=["empty", "shorter-than-length", "header-cut", "data-cut", "huge-header-length", "header-not-json"],
)
def test_truncated_and_corrupt_files(tmp_path, mutate, message):
    path = valid_file(tmp_path)
    path.write_bytes(mutate(path.read_bytes()))
    with pytest.raises(WeightsError, match=message) as error:
        load_safetensors(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"dtype": "F8_E9", "shape": [2], "data_offsets": [0, 2]}, "unknown dtype 'F8_E9'"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}, "fall outside"),
        ({"dtype": "F32", "shape": [4], "data_offsets": [8, 4]}, "fall outside"),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}, "needs 12"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 16]}, "non-negative"),
        ({"dtype": "F32", "shape": [4]}, "needs dtype, shape and data_offsets"),
    ],
)
def test_bad_header_entries_name_the_tensor(tmp_path, entry, message):
    path = tmp_path / "x.safetensors"
    write_raw_safetensors(path, {"w": entry}, bytes(16))
    with pytest.raises(WeightsError, match=message) as error:
        load_safetensors(path)
    assert "'w'" in str(error.value)


def test_overlapping_tensors(tmp_path):
    path = tmp_path / "x.safetensors"
    header = {
        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
    }
    write_raw_safetensors(path, header, bytes(12))
    with pytest.raises(WeightsError, match="'a' and 'b' overlap"):
        load_safetensors(path)


def test_float16_and_bfloat16_files_compute_in_float32(tmp_path, pixel_values):
    config = tiny_config()
    state = random_state_dict(config, "classification", seed=3)
    # bfloat16 keeps a float32's top 16 bits: write those raw, as torch does.
    bf16 = {k: (v.view(np.uint32) >> 16).astype("<u2") for k, v in state.items()}
    header, offset, chunks = {}, 0, []
    for name, raw in bf16.items():
        header[name] = {"dtype": "BF16", "shape": list(raw.shape), "data_offsets": [offset, offset + raw.nbytes]}
        chunks.append(raw.tobytes())
        offset += raw.nbytes
    config.save_pretrained(tmp_path / "bf16")
    write_raw_safetensors(tmp_path / "bf16" / "model.safetensors", header, b"".join(chunks))
    model = MobileViTForImageClassification.from_pretrained(tmp_path / "bf16")
    truncated = {k: (v.astype(np.uint32) << 16).view(np.float32) for k, v in bf16.items()}
    expected = MobileViTForImageClassification.from_config(config, truncated)(pixel_values).logits
    assert model.params["classifier"]["weight"].dtype == np.float32
    np.testing.assert_array_equal(model(pixel_values).logits, expected)

    config.save_pretrained(tmp_path / "fp16")
    save_file({k: v.astype(np.float16) for k, v in state.items()}, str(tmp_path / "fp16" / "model.safetensors"))
    model = MobileViTForImageClassification.from_pretrained(tmp_path / "fp16")
    expected = MobileViTForImageClassification.from_config(
        config, {k: v.astype(np.float16).astype(np.float32) for k, v in state.items()}
    )(pixel_values).logits
    np.testing.assert_array_equal(model(pixel_values).logits, expected)


def test_all_mismatches_reported_in_one_error(tmp_path):
    config = tiny_config()
    state = random_state_dict(config, "classification")
    del state["mobilevit.conv_stem.convolution.weight"]
    state["mobilevit.extra.weight"] = np.zeros(3, np.float32)
    state["classifier.weight"] = np.zeros((10, 64), np.float32)  # config says 5 labels
    state["classifier.bias"] = np.zeros(5, np.int64)
    with pytest.raises(WeightsError) as error:
        MobileViTForImageClassification.from_config(config, state)
    message = str(error.value)
    assert "4 problems" in message
    assert "missing tensor mobilevit.conv_stem.convolution.weight (expected shape (8, 3, 3, 3))" in message
    assert "unexpected tensor mobilevit.extra.weight" in message
    assert "shape mismatch for classifier.weight: file has (10, 64), config needs (5, 64)" in message
    assert "dtype mismatch for classifier.bias" in message


def test_nan_weights_warn_by_name(pixel_values):
    config = tiny_config()
    state = random_state_dict(config, "classification")
    state["classifier.bias"][0] = np.nan
    with pytest.warns(RuntimeWarning, match="classifier.bias"):
        MobileViTForImageClassification.from_config(config, state)


def test_sharded_checkpoint(tmp_path, pixel_values):
    config = tiny_config()
    state = random_state_dict(config, "classification", seed=1)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in shards.items():
        save_file({n: state[n] for n in part}, str(tmp_path / file))
    weight_map = {n: file for file, part in shards.items() for n in part}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config.save_pretrained(tmp_path)
    logits = MobileViTForImageClassification.from_pretrained(tmp_path)(pixel_values).logits
    np.testing.assert_array_equal(
        logits, MobileViTForImageClassification.from_config(config, state)(pixel_values).logits
    )

    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(WeightsError, match="names shard 'model-00002-of-00002.safetensors', which is missing"):
        MobileViTForImageClassification.from_pretrained(tmp_path)


def test_pytorch_bin_only_folder_is_not_unpickled(tmp_path):
    tiny_config().save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(WeightsError, match="pytorch_model.bin"):
        load_checkpoint_tensors(tmp_path)


def test_empty_folder_and_missing_folder(tmp_path):
    all_three = r"no model.safetensors or model.safetensors.index.json \(or pytorch_model.bin\) in"
    with pytest.raises(WeightsError, match=all_three):
        load_checkpoint_tensors(tmp_path)
    with pytest.raises(FileNotFoundError, match="checkpoint folder not found"):
        MobileViTModel.from_pretrained(tmp_path / "nope")


def test_backbone_from_head_checkpoints(make_checkpoint, pixel_values):
    classifier_folder = make_checkpoint("classification")
    base = MobileViTModel.from_pretrained(classifier_folder)(pixel_values)
    full = MobileViTForImageClassification.from_pretrained(classifier_folder)(pixel_values, output_hidden_states=True)
    np.testing.assert_array_equal(base.last_hidden_state.mean(axis=(2, 3)), base.pooler_output)
    np.testing.assert_array_equal(
        MobileViTModel.from_pretrained(classifier_folder)(pixel_values, output_hidden_states=True).hidden_states[-1],
        full.hidden_states[-1],
    )

    segmenter_folder = make_checkpoint("segmentation")
    with pytest.raises(WeightsError, match="missing tensor conv_1x1_exp"):
        MobileViTModel.from_pretrained(segmenter_folder)
    base = MobileViTModel.from_pretrained(segmenter_folder, expand_output=False)(pixel_values)
    assert base.pooler_output is None
    seg = MobileViTForSemanticSegmentation.from_pretrained(segmenter_folder)(pixel_values, output_hidden_states=True)
    np.testing.assert_array_equal(base.last_hidden_state, seg.hidden_states[-1])


def test_float64_weights_and_dtype_argument(make_checkpoint, pixel_values):
    folder = make_checkpoint("classification")
    model = MobileViTForImageClassification.from_pretrained(folder, dtype=np.float64)
    assert model(pixel_values).logits.dtype == np.float64
    with pytest.raises(ValueError, match="float32, float64, float16, bfloat16 or 'auto'"):
        MobileViTForImageClassification.from_pretrained(folder, dtype=np.int8)


def test_build_tree_numbering_gap_names_the_prefix():
    w = np.zeros(1, np.float32)
    assert build_tree({"a.0.b": w, "a.1.b": w})["a"][1]["b"] is w
    with pytest.raises(ValueError, match=r"under 'enc.a' must run 0..1 without gaps, found 0, 2"):
        build_tree({"enc.a.0.b": w, "enc.a.2.b": w})
    with pytest.raises(ValueError, match="found 0, 01"):
        build_tree({"a.0": w, "a.01": w})


@pytest.mark.parametrize(
    "shape",
    [[0, 10**30], [1] * 65, [True, 2]],
    ids=["huge-dimension-beside-zero", "65-dimensions", "boolean-dimension"],
)
def test_shapes_numpy_cannot_hold_are_refused_by_name(tmp_path, shape):
    path = tmp_path / "x.safetensors"
    write_raw_safetensors(path, {"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}, b"")
    with pytest.raises(WeightsError, match="'w': shape .* is not a list of at most 64 non-negative integers"):
        load_safetensors(path)


def test_from_config_does_not_share_the_callers_arrays(pixel_values):
    config = tiny_config()
    state_dict = random_state_dict(config, "classification", seed=0)
    model = MobileViTForImageClassification.from_config(config, state_dict)
    before = model(pixel_values).logits
    for array in state_dict.values():
        array[...] = 0  # float32 C-contiguous already: a plain cast would have returned these very arrays
    np.testing.assert_array_equal(model(pixel_values).logits, before)
    assert not any(np.shares_memory(model.params["classifier"]["weight"], a) for a in state_dict.values())


def test_backbone_without_expansion_from_a_classifier_checkpoint(make_checkpoint, pixel_values):
    folder = make_checkpoint("classification")
    base = MobileViTModel.from_pretrained(folder, expand_output=False)  # transformers ignores conv_1x1_exp too
    assert "conv_1x1_exp" not in base.params and base(pixel_values).pooler_output is None
    full = MobileViTForImageClassification.from_pretrained(folder)(pixel_values, output_hidden_states=True)
    np.testing.assert_array_equal(base(pixel_values).last_hidden_state, full.hidden_states[-1])


def test_unknown_model_options_are_refused_before_loading(tmp_path):
    with pytest.raises(TypeError, match=r"from_pretrained\(\) got an unexpected keyword argument 'expand_output'"):
        MobileViTForImageClassification.from_pretrained(tmp_path / "not-even-there", expand_output=False)
    with pytest.raises(TypeError, match="'expand_outptu' .*it takes expand_output"):
        MobileViTModel.from_config(tiny_config(), {}, expand_outptu=False)


def test_from_pretrained_with_a_config_of_ones_own(make_checkpoint, pixel_values):
    """config= replaces the folder's config.json (as in transformers), e.g. a segmenter at another output stride."""
    folder = make_checkpoint("segmentation", output_stride=16)
    at_8 = tiny_config(output_stride=8)
    model = MobileViTForSemanticSegmentation.from_pretrained(folder, config=at_8)
    assert model.config.output_stride == 8
    expected = MobileViTForSemanticSegmentation.from_config(at_8, load_checkpoint_tensors(folder))(pixel_values)
    np.testing.assert_array_equal(model(pixel_values).logits, expected.logits)
    assert model(pixel_values).logits.shape[-1] == pixel_values.shape[-1] // 8
    narrower = tiny_config(output_stride=16, hidden_sizes=[8, 8, 8])
    with pytest.raises(WeightsError, match="shape"):  # the weights must still fit the config given
        MobileViTForSemanticSegmentation.from_pretrained(folder, config=narrower)
    with pytest.raises(TypeError, match="config must be a MobileViTConfig, got dict"):
        MobileViTForSemanticSegmentation.from_pretrained(folder, config=at_8.to_dict())
