"""Write the golden fixtures: transformers' outputs on seeded weights and inputs.

Needs the `parity` extra (torch==2.13.0, transformers). For each case below it
  1. builds the config and draws the weights with mobilevit_np.random_weights (NumPy's
     RandomState: reproducible bit for bit without torch),
  2. loads them into the transformers model, runs a seeded input in float32 and float64,
  3. writes tests/fixtures/golden/<case>/: config.json, meta.json (seeds, versions, a
     checksum of the weights and input) and golden.npz (logits, pooler output, hidden
     states); tiny cases also keep model.safetensors, large ones keep a fixed sample of
     each big output so the committed files stay small.

    python tools/make_fixtures.py            # all cases
    python tools/make_fixtures.py tiny-odd   # some cases
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys

import numpy as np
from golden import FORMAT_VERSION, GOLDEN
from reference import reference_outputs, transformers_model

from mobilevit_np.config_v2 import CONFIG_CLASSES
from mobilevit_np.presets import HEAD_SETTINGS, PRESETS, TINY, V2_SEGMENTER
from mobilevit_np.random_weights import checksum, random_pixel_values, random_state_dict

SAMPLE = 1024  # values kept of an output larger than FULL_LIMIT
FULL_LIMIT = 2048

SMALL, X_SMALL, XX_SMALL = PRESETS["small"], PRESETS["x-small"], PRESETS["xx-small"]
SEGMENTER = HEAD_SETTINGS["segmentation"]
V2 = {"model_type": "mobilevitv2"}  # MobileViTV2 cases: the config class follows model_type
V2_TINY = {**V2, "width_multiplier": 0.25, "base_attn_unit_dims": [64, 96, 128], "n_attn_blocks": [1, 2, 1]}

# name: (head, config overrides, input (batch, height, width), keep weights in the repo)
CASES = {
    "small-cls": ("classification", {**SMALL, "num_labels": 1000}, (1, 256, 256), False),
    "x-small-cls": ("classification", {**X_SMALL, "num_labels": 1000}, (1, 256, 256), False),
    "xx-small-cls": ("classification", {**XX_SMALL, "num_labels": 1000}, (1, 256, 256), False),
    "small-seg-os16": ("segmentation", {**SMALL, **SEGMENTER}, (1, 512, 512), False),
    "xx-small-seg-os8": ("segmentation", {**XX_SMALL, **SEGMENTER, "output_stride": 8}, (1, 256, 256), False),
    "x-small-seg-os32": ("segmentation", {**X_SMALL, **SEGMENTER, "output_stride": 32}, (1, 320, 320), False),
    "xx-small-odd-250x330": ("classification", {**XX_SMALL, "num_labels": 10}, (1, 250, 330), False),
    "xx-small-batch3": ("classification", {**XX_SMALL, "num_labels": 10}, (3, 160, 192), False),
    "tiny-base": ("base", TINY, (2, 64, 64), True),
    "tiny-odd-batch3": ("classification", {**TINY, "num_labels": 7}, (3, 75, 99), True),
    "tiny-gelu-1head-patch3": (
        "classification",
        {**TINY, "hidden_act": "gelu", "num_attention_heads": 1, "patch_size": 3, "num_labels": 4},
        (1, 96, 80),
        True,
    ),
    "tiny-seg-os8-relu6-k5": (
        "segmentation",
        {**SEGMENTER, **TINY, "output_stride": 8, "hidden_act": "relu6", "conv_kernel_size": 5, "qkv_bias": False},
        (2, 64, 72),
        True,
    ),
    "v2-0.5-cls": ("classification", {**V2, "width_multiplier": 0.5, "num_labels": 1000}, (1, 256, 256), False),
    "v2-1.0-cls": ("classification", {**V2, "num_labels": 1000}, (1, 256, 256), False),
    "v2-2.0-cls-224x160": ("classification", {**V2, "width_multiplier": 2.0, "num_labels": 1000}, (1, 224, 160), False),
    "v2-1.5-seg-os16": ("segmentation", {**V2, **V2_SEGMENTER, "width_multiplier": 1.5}, (1, 256, 256), False),
    "v2-1.0-seg-os16-512": ("segmentation", {**V2, **V2_SEGMENTER}, (1, 512, 512), False),
    "v2-0.5-seg-os8-odd-batch2": (
        "segmentation",
        {**V2, **V2_SEGMENTER, "width_multiplier": 0.5, "output_stride": 8},
        (2, 161, 203),
        False,
    ),
    "v2-0.75-odd-batch3": ("classification", {**V2, "width_multiplier": 0.75, "num_labels": 10}, (3, 97, 131), False),
    "v2-0.5-base-patch1-gelu": (
        "base",
        {**V2, "width_multiplier": 0.5, "patch_size": 1, "hidden_act": "gelu"},
        (2, 64, 80),
        False,
    ),
    "v2-tiny-seg-os8-patch3-k5": (
        "segmentation",
        {
            **V2_TINY,
            **V2_SEGMENTER,
            "output_stride": 8,
            "patch_size": 3,
            "conv_kernel_size": 5,
            "aspp_out_channels": 16,
            "hidden_act": "relu6",
            "num_labels": 5,
        },
        (2, 70, 90),
        True,
    ),
}


def case_seed(name: str) -> int:
    """A stable per-case seed (Python's hash() is salted per process)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def sample_index(size: int) -> np.ndarray | None:
    """Which flat positions of an output to keep: all of a small one, a fixed sample of a big one."""
    if size <= FULL_LIMIT:
        return None
    return np.sort(np.random.RandomState(size % 2**31).choice(size, SAMPLE, replace=False)).astype(np.int32)


def flatten_outputs(named: dict[str, np.ndarray], tag: str) -> dict[str, np.ndarray]:
    """{'float32/logits/values': ..., 'float32/hidden_states.0/values': ...} with big arrays sampled."""
    flat = {}
    for name, value in named.items():
        key = f"{tag}/{name}"
        index = sample_index(value.size)
        flat[f"{name}/shape"] = np.array(value.shape, dtype=np.int64)
        flat[f"{key}/absmax"] = np.abs(value).max()
        flat[f"{key}/std"] = value.std()
        if index is None:
            flat[f"{key}/values"] = value.ravel()
        else:
            flat[f"{name}/index"] = index
            flat[f"{key}/values"] = value.ravel()[index]
    return flat


def make_case(name: str) -> None:
    import torch
    import transformers

    head, overrides, input_shape, keep_weights = CASES[name]
    config = CONFIG_CLASSES[overrides.get("model_type", "mobilevit")](**overrides)
    seed = case_seed(name)
    state_dict = random_state_dict(config, head, seed)
    pixel_values = random_pixel_values((input_shape[0], config.num_channels, *input_shape[1:]), seed + 1)

    folder = GOLDEN / name
    shutil.rmtree(folder, ignore_errors=True)
    model = transformers_model(head, config, state_dict)
    if keep_weights:
        # Written by transformers itself, so the tests also prove such a folder loads as is.
        model.save_pretrained(folder, safe_serialization=True)
    else:
        folder.mkdir(parents=True)
        model.config.to_json_file(folder / "config.json")
    arrays = {}
    for dtype in (np.float32, np.float64):
        outputs = reference_outputs(model, pixel_values, dtype)
        arrays.update(flatten_outputs(outputs, np.dtype(dtype).name))
    np.savez_compressed(folder / "golden.npz", **arrays)
    meta = {
        "format_version": FORMAT_VERSION,
        "case": name,
        "head": head,
        "weights_seed": seed,
        "weights_in_repo": keep_weights,
        "weights_sha256": checksum(state_dict),
        "input_seed": seed + 1,
        "input_shape": list(pixel_values.shape),
        "input_sha256": checksum({"pixel_values": pixel_values}),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"{name}: wrote {sum(f.stat().st_size for f in folder.iterdir()) / 1e3:.0f} kB")


def main(names: list[str]) -> None:
    unknown = set(names) - set(CASES)
    if unknown:
        sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    for name in names or CASES:
        make_case(name)


if __name__ == "__main__":
    main(sys.argv[1:])
