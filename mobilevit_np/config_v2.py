"""MobileViTV2Config: the same fields, names and defaults as transformers' MobileViTV2Config.

MobileViTV2 (Mehta & Rastegari, 2022, "Separable Self-attention for Mobile Vision
Transformers") has no per-layer channel lists: one `width_multiplier` (0.5 .. 2.0 in
the apple/mobilevitv2-* checkpoints) scales every width of a fixed plan, and
`base_attn_unit_dims` are the attention widths at multiplier 1. architecture_v2.py
turns these into channel counts.

`load_config(folder)` reads a config.json of either generation and returns the
matching class, by its `model_type` ("mobilevit" or "mobilevitv2").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import ClassVar

from mobilevit_np.config import (
    ConfigError,
    LabelledConfig,
    MobileViTConfig,
    _check_common,
    _check_int,
    _check_int_list,
    _check_number,
    config_file,
    read_settings_file,
)

MODEL_TYPE = "mobilevitv2"


@dataclass
class MobileViTV2Config(LabelledConfig):
    """Hyper-parameters of a MobileViTV2 network (field names and defaults follow transformers)."""

    num_channels: int = 3
    image_size: int = 256
    patch_size: int = 2
    expand_ratio: float = 2.0
    hidden_act: str = "swish"
    conv_kernel_size: int = 3
    output_stride: int = 32
    classifier_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    aspp_out_channels: int = 512
    atrous_rates: list[int] = field(default_factory=lambda: [6, 12, 18])
    aspp_dropout_prob: float = 0.1
    semantic_loss_ignore_index: int = 255
    n_attn_blocks: list[int] = field(default_factory=lambda: [2, 4, 3])  # attention layers in layer_3, 4, 5
    base_attn_unit_dims: list[int] = field(default_factory=lambda: [128, 192, 256])  # their widths at multiplier 1
    width_multiplier: float = 1.0
    ffn_multiplier: int = 2  # each attention layer's FFN is ffn_multiplier x its width (rounded down to 16)
    attn_dropout: float = 0.0
    ffn_dropout: float = 0.0
    model_type: str = MODEL_TYPE

    LIST_FIELDS: ClassVar[tuple[str, ...]] = ("atrous_rates", "n_attn_blocks", "base_attn_unit_dims")

    def _validate_network(self) -> None:
        if self.model_type != MODEL_TYPE:
            raise ConfigError(f"model_type is {self.model_type!r}: MobileViTV2Config reads 'mobilevitv2'")
        _check_common(self)
        _check_int_list(self, "n_attn_blocks", length=3)
        _check_int_list(self, "base_attn_unit_dims", length=3)
        _check_number(self, "width_multiplier", positive=True)
        _check_int(self, "ffn_multiplier", minimum=1)
        for name in ("attn_dropout", "ffn_dropout"):
            _check_number(self, name)
        from mobilevit_np.architecture_v2 import attention_widths  # the widths follow from the fields above

        for width in attention_widths(self):
            if self.ffn_multiplier * width < 16:
                # transformers rounds the FFN width down to a multiple of 16: below 16 it would have no channels.
                raise ConfigError(
                    f"ffn_multiplier={self.ffn_multiplier} gives an attention layer of width {width} an FFN of "
                    f"{self.ffn_multiplier * width // 16 * 16} channels; ffn_multiplier * width must be >= 16"
                )


CONFIG_CLASSES: dict[str, type[LabelledConfig]] = {"mobilevit": MobileViTConfig, MODEL_TYPE: MobileViTV2Config}


def load_config(path: str | os.PathLike) -> MobileViTConfig | MobileViTV2Config:
    """Read `path/config.json` (or the JSON file `path`) as the config class its model_type names."""
    return read_settings_file(
        config_file(path), "config.json", config_from_dict, missing=ConfigError, invalid=ConfigError
    )


def config_from_dict(data: dict) -> MobileViTConfig | MobileViTV2Config:
    """A transformers config dict as MobileViTConfig or MobileViTV2Config, by its model_type."""
    # Not an object: MobileViTConfig names that problem.
    model_type = data.get("model_type", "mobilevit") if isinstance(data, dict) else "mobilevit"
    if model_type not in CONFIG_CLASSES:
        raise ConfigError(f"model_type is {model_type!r}; supported: {', '.join(map(repr, CONFIG_CLASSES))}")
    return CONFIG_CLASSES[model_type].from_dict(data)
