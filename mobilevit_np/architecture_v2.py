"""MobileViTV2's plan: channel widths from the width multiplier, the stages, every parameter's shape.

v2 keeps v1's skeleton (a stride-2 stem, two MobileNetV2 stages, three attention stages,
the same output-stride rule) but derives every width from one `width_multiplier` w:

    stem 32w (clipped to 16..64), layer_1 64w, layer_2 128w, layer_3 256w, layer_4 384w,
    layer_5 512w; attention widths base_attn_unit_dims * w = 128w, 192w, 256w

each rounded by make_divisible (layer_1 to a multiple of 16, the rest to 8), as
transformers' MobileViTV2Encoder does. For w = 1.0: 32, 64, 128, 256, 384, 512 and
attention widths 128, 192, 256.
"""

from __future__ import annotations

from mobilevit_np.architecture import (
    HEADS,
    Shapes,
    Stage,
    _conv_layer,
    _inverted_residual,
    _linear,
    _mobilenet_stage,
    _stage_dilations,
    make_divisible,
    segmentation_head_shapes,
)
from mobilevit_np.architecture import parameter_shapes as v1_parameter_shapes
from mobilevit_np.config import LabelledConfig

BACKBONE = "mobilevitv2"  # transformers' base_model_prefix: head checkpoints name the backbone "mobilevitv2.*"


def channel_widths(config) -> list[int]:
    """[stem, layer_1, .., layer_5] output channels of a MobileViTV2Config."""
    w = config.width_multiplier
    stem = make_divisible(min(max(32 * w, 16), 64), 8)  # transformers clips before rounding
    return [
        stem,
        make_divisible(64 * w, 16),
        *(make_divisible(base * w, 8) for base in (128, 256, 384, 512)),
    ]


def attention_widths(config) -> list[int]:
    """The token (channel) width d of the attention layers in layer_3, layer_4, layer_5."""
    return [make_divisible(base * config.width_multiplier, 8) for base in config.base_attn_unit_dims]


def ffn_width(config, width: int) -> int:
    """An attention layer's FFN hidden width: ffn_multiplier * d rounded down to a multiple of 16."""
    return config.ffn_multiplier * width // 16 * 16


def encoder_stages(config) -> list[Stage]:
    """layer_1 .. layer_5. A "mobilevit" stage here is one downsampling inverted residual, then a
    MobileViTV2 block of `depth` separable-attention layers of width `hidden_size`."""
    c = channel_widths(config)
    d = attention_widths(config)
    n = config.n_attn_blocks
    dilation_4, dilation_5 = _stage_dilations(config.output_stride)
    return [
        Stage("mobilenet", c[0], c[1], stride=1, depth=1),
        Stage("mobilenet", c[1], c[2], stride=2, depth=2),  # v1 has 3 blocks here
        Stage("mobilevit", c[2], c[3], stride=2, depth=n[0], hidden_size=d[0]),
        Stage("mobilevit", c[3], c[4], stride=2, depth=n[1], hidden_size=d[1], dilation=dilation_4),
        Stage("mobilevit", c[4], c[5], stride=2, depth=n[2], hidden_size=d[2], dilation=dilation_5),
    ]


# ------------------------------------------------------------ parameter shapes


def _group_norm(prefix: str, width: int) -> Shapes:
    return {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}


def _attention_layer(prefix: str, width: int, config) -> Shapes:
    """One MobileViTV2TransformerLayer: every linear is a 1x1 conv with bias, no batch norm."""
    ffn = ffn_width(config, width)
    return {
        **_group_norm(f"{prefix}.layernorm_before", width),
        **_conv_layer(f"{prefix}.attention.qkv_proj", width, 1 + 2 * width, 1, norm=False, bias=True),
        **_conv_layer(f"{prefix}.attention.out_proj", width, width, 1, norm=False, bias=True),
        **_group_norm(f"{prefix}.layernorm_after", width),
        **_conv_layer(f"{prefix}.ffn.conv1", width, ffn, 1, norm=False, bias=True),
        **_conv_layer(f"{prefix}.ffn.conv2", ffn, width, 1, norm=False, bias=True),
    }


def _stage(prefix: str, stage: Stage, config) -> Shapes:
    if stage.kind == "mobilenet":
        return _mobilenet_stage(prefix, stage, config.expand_ratio)
    c, d = stage.out_channels, stage.hidden_size
    shapes = _inverted_residual(f"{prefix}.downsampling_layer", stage.in_channels, c, config.expand_ratio)
    shapes.update(_conv_layer(f"{prefix}.conv_kxk", c, c, config.conv_kernel_size, groups=c))  # depthwise
    shapes.update(_conv_layer(f"{prefix}.conv_1x1", c, d, 1, norm=False))
    for i in range(stage.depth):
        shapes.update(_attention_layer(f"{prefix}.transformer.layer.{i}", d, config))
    shapes.update(_group_norm(f"{prefix}.layernorm", d))
    shapes.update(_conv_layer(f"{prefix}.conv_projection", d, c, 1))
    return shapes


def backbone_shapes(config) -> Shapes:
    """Parameters of MobileViTV2Model, named as in its own state dict (no prefix).

    Unlike v1 there is no conv_1x1_exp: expand_output only adds the mean pooling.
    """
    shapes = _conv_layer("conv_stem", config.num_channels, channel_widths(config)[0], 3)
    for i, stage in enumerate(encoder_stages(config)):
        shapes.update(_stage(f"encoder.layer.{i}", stage, config))
    return shapes


def parameter_shapes(config, head: str) -> Shapes:
    """Every parameter a MobileViTV2 checkpoint for `head` holds, with its shape."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if head == "base":
        return backbone_shapes(config)
    shapes = {f"{BACKBONE}.{k}": v for k, v in backbone_shapes(config).items()}
    c_out = channel_widths(config)[5]
    if head == "segmentation":
        return {**shapes, **segmentation_head_shapes(c_out, config)}
    if config.num_labels > 0:
        shapes.update(_linear("classifier", c_out, config.num_labels))
    return shapes


def shapes_for(config: LabelledConfig, head: str) -> Shapes:
    """parameter_shapes of either generation, chosen by the config's model_type."""
    if config.model_type == "mobilevitv2":
        return parameter_shapes(config, head)
    return v1_parameter_shapes(config, head)
