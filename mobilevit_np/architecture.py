"""The network's plan: which blocks, with which channels, strides and dilations.

Everything here follows from a MobileViTConfig alone (no weights): the five encoder
stages, the output-stride rule, and the name and shape of every parameter a
checkpoint must hold. The forward pass (model.py) reads the same plan, and the weight
loader checks files against `parameter_shapes`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mobilevit_np.config import MobileViTConfig

HEADS = ("base", "classification", "segmentation")
BATCH_NORM_EPS = 1e-5  # transformers hard-codes this for every BatchNorm2d in MobileViT


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of `divisor`, never dropping below 90%."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


def expanded_channels(in_channels: int, expand_ratio: float) -> int:
    """Width of an inverted residual's hidden (depthwise) layer."""
    return make_divisible(int(round(in_channels * expand_ratio)), 8)


@dataclass(frozen=True)
class Stage:
    """One of the encoder's five layers.

    kind "mobilenet": `depth` inverted residuals, the first with `stride`.
    kind "mobilevit": one inverted residual that downsamples, then a MobileViT block
    whose transformer has `depth` layers of width `hidden_size`.
    """

    kind: str
    in_channels: int
    out_channels: int
    stride: int
    depth: int
    hidden_size: int = 0
    dilation: int = 1

    @property
    def downsample(self) -> tuple[int, int]:
        """(stride, dilation) of a MobileViT stage's downsampling inverted residual.

        To reach output_stride 16 or 8, DeepLab swaps the last stages' stride-2 for
        dilation: the map keeps its size and later convolutions look twice as far apart.
        """
        if self.dilation == 1:
            return self.stride, 1
        return 1, self.dilation // 2


def encoder_stages(config: MobileViTConfig) -> list[Stage]:
    """layer_1 .. layer_5 of the encoder. Output stride 32 halves the map 5 times in all
    (stem, layer_2..5); 16 keeps layer_5 at layer_4's size, 8 also keeps layer_4's."""
    neck, hidden = config.neck_hidden_sizes, config.hidden_sizes
    dilation_4, dilation_5 = _stage_dilations(config.output_stride)
    return [
        Stage("mobilenet", neck[0], neck[1], stride=1, depth=1),
        Stage("mobilenet", neck[1], neck[2], stride=2, depth=3),
        Stage("mobilevit", neck[2], neck[3], stride=2, depth=2, hidden_size=hidden[0]),
        Stage("mobilevit", neck[3], neck[4], stride=2, depth=4, hidden_size=hidden[1], dilation=dilation_4),
        Stage("mobilevit", neck[4], neck[5], stride=2, depth=3, hidden_size=hidden[2], dilation=dilation_5),
    ]


def _stage_dilations(output_stride: int) -> tuple[int, int]:
    """The dilations of layer_4 and layer_5 that keep the map at 1/output_stride of the image."""
    dilation_4 = 2 if output_stride == 8 else 1
    dilation_5 = dilation_4 * 2 if output_stride in (8, 16) else dilation_4
    return dilation_4, dilation_5


# ------------------------------------------------------------ parameter shapes

Shapes = dict[str, tuple[int, ...]]


def _conv_layer(
    prefix: str, c_in: int, c_out: int, kernel: int, groups: int = 1, norm: bool = True, bias: bool = False
) -> Shapes:
    """A MobileViTConvLayer: convolution (+ bias), then optional batch norm."""
    shapes = {f"{prefix}.convolution.weight": (c_out, c_in // groups, kernel, kernel)}
    if bias:
        shapes[f"{prefix}.convolution.bias"] = (c_out,)
    if norm:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.normalization.{name}"] = (c_out,)
    return shapes


def _inverted_residual(prefix: str, c_in: int, c_out: int, expand_ratio: float) -> Shapes:
    mid = expanded_channels(c_in, expand_ratio)
    return {
        **_conv_layer(f"{prefix}.expand_1x1", c_in, mid, 1),
        **_conv_layer(f"{prefix}.conv_3x3", mid, mid, 3, groups=mid),
        **_conv_layer(f"{prefix}.reduce_1x1", mid, c_out, 1),
    }


def _linear(prefix: str, d_in: int, d_out: int, bias: bool = True) -> Shapes:
    shapes = {f"{prefix}.weight": (d_out, d_in)}
    if bias:
        shapes[f"{prefix}.bias"] = (d_out,)
    return shapes


def _layer_norm(prefix: str, width: int) -> Shapes:
    return {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,)}


def _transformer_layer(prefix: str, width: int, config: MobileViTConfig) -> Shapes:
    mlp = int(width * config.mlp_ratio)
    return {
        **_linear(f"{prefix}.attention.attention.query", width, width, config.qkv_bias),
        **_linear(f"{prefix}.attention.attention.key", width, width, config.qkv_bias),
        **_linear(f"{prefix}.attention.attention.value", width, width, config.qkv_bias),
        **_linear(f"{prefix}.attention.output.dense", width, width),
        **_linear(f"{prefix}.intermediate.dense", width, mlp),
        **_linear(f"{prefix}.output.dense", mlp, width),
        **_layer_norm(f"{prefix}.layernorm_before", width),
        **_layer_norm(f"{prefix}.layernorm_after", width),
    }


def _mobilenet_stage(prefix: str, stage: Stage, expand_ratio: float) -> Shapes:
    """`depth` inverted residuals (MobileViT and MobileViTV2 alike)."""
    shapes: Shapes = {}
    for i in range(stage.depth):
        c_in = stage.in_channels if i == 0 else stage.out_channels
        shapes.update(_inverted_residual(f"{prefix}.layer.{i}", c_in, stage.out_channels, expand_ratio))
    return shapes


def _stage(prefix: str, stage: Stage, config: MobileViTConfig) -> Shapes:
    if stage.kind == "mobilenet":
        return _mobilenet_stage(prefix, stage, config.expand_ratio)
    c, k, width = stage.out_channels, config.conv_kernel_size, stage.hidden_size
    shapes = _inverted_residual(f"{prefix}.downsampling_layer", stage.in_channels, c, config.expand_ratio)
    shapes.update(_conv_layer(f"{prefix}.conv_kxk", c, c, k))
    shapes.update(_conv_layer(f"{prefix}.conv_1x1", c, width, 1, norm=False))
    for i in range(stage.depth):
        shapes.update(_transformer_layer(f"{prefix}.transformer.layer.{i}", width, config))
    shapes.update(_layer_norm(f"{prefix}.layernorm", width))
    shapes.update(_conv_layer(f"{prefix}.conv_projection", width, c, 1))
    shapes.update(_conv_layer(f"{prefix}.fusion", 2 * c, c, k))
    return shapes


def backbone_shapes(config: MobileViTConfig, expand_output: bool = True) -> Shapes:
    """Parameters of MobileViTModel, named as in its own state dict (no prefix)."""
    neck = config.neck_hidden_sizes
    shapes = _conv_layer("conv_stem", config.num_channels, neck[0], 3)
    for i, stage in enumerate(encoder_stages(config)):
        shapes.update(_stage(f"encoder.layer.{i}", stage, config))
    if expand_output:
        shapes.update(_conv_layer("conv_1x1_exp", neck[5], neck[6], 1))
    return shapes


def parameter_shapes(config: MobileViTConfig, head: str) -> Shapes:
    """Every parameter a checkpoint for `head` holds, with its shape.

    head "base" is MobileViTModel (with expand_output); "classification" and
    "segmentation" prefix the backbone with "mobilevit." as transformers does.
    BatchNorm's `num_batches_tracked` counters are training state and not listed.
    """
    if head == "base":
        return backbone_shapes(config)
    if head == "classification":
        shapes = {f"mobilevit.{k}": v for k, v in backbone_shapes(config).items()}
        if config.num_labels > 0:
            shapes.update(_linear("classifier", config.neck_hidden_sizes[6], config.num_labels))
        return shapes
    if head == "segmentation":
        shapes = {f"mobilevit.{k}": v for k, v in backbone_shapes(config, expand_output=False).items()}
        return {**shapes, **segmentation_head_shapes(config.neck_hidden_sizes[5], config)}
    raise ValueError(f"head must be one of {HEADS}, got {head!r}")


def segmentation_head_shapes(c_in: int, config) -> Shapes:
    """DeepLabV3 on c_in backbone channels (the same head in MobileViT and MobileViTV2)."""
    c_out = config.aspp_out_channels
    aspp = "segmentation_head.aspp"
    shapes = _conv_layer(f"{aspp}.convs.0", c_in, c_out, 1)
    for i in range(1, 4):
        shapes.update(_conv_layer(f"{aspp}.convs.{i}", c_in, c_out, 3))
    shapes.update(_conv_layer(f"{aspp}.convs.4.conv_1x1", c_in, c_out, 1))
    shapes.update(_conv_layer(f"{aspp}.project", 5 * c_out, c_out, 1))
    shapes.update(_conv_layer("segmentation_head.classifier", c_out, config.num_labels, 1, norm=False, bias=True))
    return shapes
