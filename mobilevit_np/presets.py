"""The published MobileViT sizes as configs, for building or summarising a model without a checkpoint.

    config = preset_config("x-small")                      # ImageNet classifier, 1000 labels
    config = preset_config("xx-small", "segmentation")     # DeepLabV3 head, 21 PASCAL VOC labels
    config = preset_config("v2-1.0")                       # MobileViTV2, width multiplier 1.0

The numbers are those of the apple/mobilevit-* and apple/deeplabv3-mobilevit-* configs
(channel widths from the MobileViT paper, Table 4). Labels are generic (LABEL_0, ...):
the real names come with a checkpoint's config.json.

    config = tiny_config(num_labels=3)                     # a toy MobileViT, for tests and tools

TINY is no published size: every stage of the network at a few channels, so a forward
pass takes milliseconds. The tests, tools/make_fixtures.py's tiny golden cases and
tools/error_catalogue.py build on it.
"""

from __future__ import annotations

from mobilevit_np.config import MobileViTConfig
from mobilevit_np.config_v2 import MobileViTV2Config

PRESETS = {
    "small": dict(hidden_sizes=[144, 192, 240], neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640], expand_ratio=4.0),
    "x-small": dict(hidden_sizes=[96, 120, 144], neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384], expand_ratio=4.0),
    "xx-small": dict(hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0),
}
TINY = dict(
    hidden_sizes=[16, 24, 32],
    neck_hidden_sizes=[8, 8, 16, 16, 24, 32, 64],
    num_attention_heads=2,
    expand_ratio=2.0,
    image_size=64,
    aspp_out_channels=16,
)
# ImageNet-1k classifiers at output stride 32; the DeepLabV3 segmenters keep layer_5
# at 1/16 of the image and predict the 21 PASCAL VOC classes.
HEAD_SETTINGS = {
    "classification": dict(num_labels=1000),
    "segmentation": dict(num_labels=21, output_stride=16, aspp_out_channels=256, atrous_rates=[6, 12, 18]),
}


# MobileViTV2: one width multiplier per published size (apple/mobilevitv2-<w>-imagenet1k-256);
# the DeepLabV3 segmenters (apple/mobilevitv2-<w>-voc-deeplabv3) keep layer_5 at 1/16 with
# transformers' default 512-channel ASPP.
V2_WIDTHS = {f"v2-{w}": w for w in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)}
V2_SEGMENTER = dict(num_labels=21, output_stride=16, aspp_out_channels=512, atrous_rates=[6, 12, 18])
V2_HEAD_SETTINGS = {"classification": HEAD_SETTINGS["classification"], "segmentation": V2_SEGMENTER}
PRESET_NAMES = (*PRESETS, *V2_WIDTHS)


def preset_config(name: str, head: str = "classification", **overrides) -> MobileViTConfig | MobileViTV2Config:
    """The config of a published size: "small", "x-small", "xx-small" (MobileViT) or "v2-0.5" .. "v2-2.0"."""
    if name not in PRESET_NAMES:
        raise ValueError(f"unknown MobileViT size {name!r}; choose one of {', '.join(PRESET_NAMES)}")
    if head not in HEAD_SETTINGS:
        raise ValueError(f"head must be one of {', '.join(HEAD_SETTINGS)}, got {head!r}")
    if name in V2_WIDTHS:
        return MobileViTV2Config(width_multiplier=V2_WIDTHS[name], **{**V2_HEAD_SETTINGS[head], **overrides})
    return MobileViTConfig(**{**PRESETS[name], **HEAD_SETTINGS[head], **overrides})


def tiny_config(**overrides) -> MobileViTConfig:
    """The TINY MobileViT (5 labels unless overridden): a forward pass takes milliseconds."""
    return MobileViTConfig(**{**TINY, "num_labels": 5, **overrides})
