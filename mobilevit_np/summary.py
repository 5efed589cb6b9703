"""An architecture table from a config alone: each block's output shape, parameters and MACs.

    for row in architecture_summary(preset_config("small"), image_size=256): print(row)
    print(format_summary(rows))

Multiply-accumulates (MACs) count the convolutions, the linear layers and the two
attention products (Q K^T and probs V); batch norm, activations, layer norm, softmax,
pooling and the bilinear resizes are not counted, as in most published MobileViT
numbers. MobileViTV2 has no attention matrix products: its separable attention is 1x1
convolutions and element-wise work, so its MACs are those of its convolutions and the
classifier. Parameters are the trainable ones (batch norm's running statistics are
buffers, as transformers' num_parameters() counts them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mobilevit_np.architecture import encoder_stages, expanded_channels, parameter_shapes
from mobilevit_np.architecture_v2 import BACKBONE, channel_widths, ffn_width, shapes_for
from mobilevit_np.architecture_v2 import encoder_stages as encoder_stages_v2
from mobilevit_np.config import MobileViTConfig
from mobilevit_np.config_v2 import MobileViTV2Config
from mobilevit_np.layers import conv_output_size

BUFFERS = (".running_mean", ".running_var")


@dataclass(frozen=True)
class Row:
    """One block: name as in the checkpoint (without the head's "mobilevit." prefix)."""

    name: str
    output_shape: tuple[int, ...]  # per image: (C, H, W); transformer tokens (p*p, patches, D); vectors (N,)
    params: int
    macs: int


def _conv_out(size: tuple[int, int], kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    pad = (kernel - 1) // 2 * dilation  # what model.conv_layer pads
    return tuple(conv_output_size(n, kernel, stride, pad, dilation) for n in size)


def _conv_macs(c_in: int, c_out: int, kernel: int, out: tuple[int, int], groups: int = 1) -> int:
    """Each output value sums (c_in / groups) * k * k products."""
    return out[0] * out[1] * c_out * (c_in // groups) * kernel * kernel


class _Table:
    """Collects rows; parameters come from the checkpoint's own names and shapes."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], prefix: str) -> None:
        self.shapes, self.prefix, self.rows = shapes, prefix, []

    def add(self, name: str, output_shape: tuple[int, ...], macs: int) -> None:
        full = self.prefix + name + "."
        params = sum(
            math.prod(shape) for key, shape in self.shapes.items() if key.startswith(full) and not key.endswith(BUFFERS)
        )
        self.rows.append(Row(name, tuple(output_shape), params, macs))


def _inverted_residual(table: _Table, name: str, c_in: int, c_out: int, size, stride, dilation, config) -> tuple:
    """expand 1x1 -> depthwise 3x3 (stride, dilation) -> reduce 1x1."""
    mid = expanded_channels(c_in, config.expand_ratio)
    out = _conv_out(size, 3, stride, dilation)
    macs = _conv_macs(c_in, mid, 1, size) + _conv_macs(mid, mid, 3, out, groups=mid) + _conv_macs(mid, c_out, 1, out)
    table.add(name, (c_out, *out), macs)
    return out


def _mobilevit_block(table: _Table, name: str, stage, size, config: MobileViTConfig) -> tuple:
    c, d, k, p = stage.out_channels, stage.hidden_size, config.conv_kernel_size, config.patch_size
    stride, dilation = stage.downsample
    size = _inverted_residual(table, f"{name}.downsampling_layer", stage.in_channels, c, size, stride, dilation, config)
    table.add(f"{name}.conv_kxk", (c, *size), _conv_macs(c, c, k, size))
    table.add(f"{name}.conv_1x1", (d, *size), _conv_macs(c, d, 1, size))
    groups, patches = p * p, math.ceil(size[0] / p) * math.ceil(size[1] / p)  # sequences, tokens per sequence
    tokens, mlp = groups * patches, int(d * config.mlp_ratio)
    for i in range(stage.depth):
        projections = tokens * 4 * d * d  # query, key, value, output
        attention = groups * 2 * patches * patches * d  # Q K^T and probs V
        table.add(f"{name}.transformer.layer.{i}", (groups, patches, d), projections + attention + tokens * 2 * d * mlp)
    table.add(f"{name}.layernorm", (groups, patches, d), 0)
    table.add(f"{name}.conv_projection", (c, *size), _conv_macs(d, c, 1, size))
    table.add(f"{name}.fusion", (c, *size), _conv_macs(2 * c, c, k, size))
    return size


def _encoder(table: _Table, stages: list, stem: int, side: int, config, attention_block) -> tuple[int, int]:
    """The stem and the five stages (both generations); attention_block adds a "mobilevit" stage's rows."""
    size = _conv_out((side, side), 3, stride=2)
    table.add("conv_stem", (stem, *size), _conv_macs(config.num_channels, stem, 3, size))
    for n, stage in enumerate(stages):
        name = f"encoder.layer.{n}"
        if stage.kind == "mobilenet":
            for i in range(stage.depth):
                c_in, stride = (stage.in_channels, stage.stride) if i == 0 else (stage.out_channels, 1)
                size = _inverted_residual(table, f"{name}.layer.{i}", c_in, stage.out_channels, size, stride, 1, config)
        else:
            size = attention_block(table, name, stage, size, config)
    return size


def _mobilevitv2_block(table: _Table, name: str, stage, size, config: MobileViTV2Config) -> tuple:
    """Downsample, depthwise kxk, 1x1 to d, separable-attention layers on (p*p, patches) tokens, 1x1 back."""
    c, d, k, p = stage.out_channels, stage.hidden_size, config.conv_kernel_size, config.patch_size
    stride, dilation = stage.downsample
    size = _inverted_residual(table, f"{name}.downsampling_layer", stage.in_channels, c, size, stride, dilation, config)
    table.add(f"{name}.conv_kxk", (c, *size), _conv_macs(c, c, k, size, groups=c))
    table.add(f"{name}.conv_1x1", (d, *size), _conv_macs(c, d, 1, size))
    grid = (p * p, (size[0] // p) * (size[1] // p))  # torch's unfold drops the pixels past the last whole patch
    f = ffn_width(config, d)
    for i in range(stage.depth):
        macs = _conv_macs(d, 1 + 2 * d, 1, grid) + _conv_macs(d, d, 1, grid)  # qkv_proj, out_proj
        macs += _conv_macs(d, f, 1, grid) + _conv_macs(f, d, 1, grid)  # the FFN
        table.add(f"{name}.transformer.layer.{i}", (d, *grid), macs)
    table.add(f"{name}.layernorm", (d, *grid), 0)
    table.add(f"{name}.conv_projection", (c, *size), _conv_macs(d, c, 1, size))
    return size


def architecture_summary(
    config: MobileViTConfig | MobileViTV2Config, head: str = "classification", image_size: int | None = None
) -> list[Row]:
    """Rows for the stem, every encoder block, and the head, at image_size x image_size."""
    side = config.image_size if image_size is None else image_size
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ValueError(f"image_size must be a positive integer, got {side!r}")
    if isinstance(config, MobileViTV2Config):
        return _summary_v2(config, head, side)
    table = _Table(parameter_shapes(config, head), "" if head == "base" else "mobilevit.")
    neck = config.neck_hidden_sizes
    size = _encoder(table, encoder_stages(config), neck[0], side, config, _mobilevit_block)
    if head == "segmentation":
        _segmentation_head(table, neck[5], size, config)
    else:
        table.add("conv_1x1_exp", (neck[6], *size), _conv_macs(neck[5], neck[6], 1, size))
        table.add("pooler", (neck[6],), 0)
        if head == "classification" and config.num_labels > 0:
            table.prefix = ""
            table.add("classifier", (config.num_labels,), neck[6] * config.num_labels)
    return table.rows


def _summary_v2(config: MobileViTV2Config, head: str, side: int) -> list[Row]:
    """MobileViTV2's rows: v1's stem, MobileNet stages and head; its own attention blocks; no conv_1x1_exp."""
    table = _Table(shapes_for(config, head), "" if head == "base" else f"{BACKBONE}.")
    widths = channel_widths(config)
    size = _encoder(table, encoder_stages_v2(config), widths[0], side, config, _mobilevitv2_block)
    if head == "segmentation":
        _segmentation_head(table, widths[5], size, config)
        return table.rows
    table.add("pooler", (widths[5],), 0)
    if head == "classification" and config.num_labels > 0:
        table.prefix = ""
        table.add("classifier", (config.num_labels,), widths[5] * config.num_labels)
    return table.rows


def _segmentation_head(table: _Table, c: int, size: tuple[int, int], config) -> None:
    """DeepLabV3 on c backbone channels: ASPP's five branches, the projection, the 1x1 classifier."""
    table.prefix = ""
    a = config.aspp_out_channels
    aspp = "segmentation_head.aspp"
    table.add(f"{aspp}.convs.0", (a, *size), _conv_macs(c, a, 1, size))
    for i in range(1, len(config.atrous_rates) + 1):
        table.add(f"{aspp}.convs.{i}", (a, *size), _conv_macs(c, a, 3, size))  # dilated: same size, 9 taps
    table.add(f"{aspp}.convs.4", (a, 1, 1), c * a)  # image pooling, then a 1x1 conv
    table.add(f"{aspp}.project", (a, *size), _conv_macs(5 * a, a, 1, size))
    table.add("segmentation_head.classifier", (config.num_labels, *size), _conv_macs(a, config.num_labels, 1, size))


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(n)


def format_summary(rows: list[Row], title: str = "") -> str:
    """A plain-text table with totals."""
    shapes = ["(" + ", ".join(map(str, r.output_shape)) + ")" for r in rows]
    name_w = max(len("block"), *(len(r.name) for r in rows))
    shape_w = max(len("output shape"), *(len(s) for s in shapes))
    header = f"{'block':<{name_w}}  {'output shape':<{shape_w}}  {'params':>12}  {'MACs':>15}"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    lines += [
        f"{r.name:<{name_w}}  {s:<{shape_w}}  {r.params:>12,}  {r.macs:>15,}" for r, s in zip(rows, shapes, strict=True)
    ]
    params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
    lines += ["-" * len(header), f"{'total':<{name_w}}  {'':<{shape_w}}  {params:>12,}  {macs:>15,}"]
    lines.append(f"{params:,} parameters ({_human(params)}), {macs:,} multiply-accumulates ({_human(macs)}) per image")
    return "\n".join(lines)
