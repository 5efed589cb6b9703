"""The MobileViTV2 forward pass, top to bottom, as plain functions: read it beside model.py.

What stays from v1 (imported from model.py, the same functions): conv_layer, the
inverted residual, the stem, the MobileNetV2 stages and the DeepLabV3 head.
What changes, all inside the attention stages:

- the local representation's kxk conv is depthwise (v1: dense);
- tensors stay channels first and 4-D, (B, d, P, N) with P = p*p pixel offsets and N
  patches, so every linear is a 1x1 conv;
- the "layer norm" is a GroupNorm with one group over (d, P, N) (layers.group_norm);
- attention is separable self-attention (layers.separable_self_attention): O(N), no heads;
- unfold/fold drop the pixels past the last whole patch instead of resizing (patches.py);
- no fusion conv and no concat: the block ends at conv_projection; no conv_1x1_exp.

Parameters arrive as nested dicts named as in the checkpoint, as in model.py:
`p["encoder"]["layer"][2]["transformer"]["layer"][0]["attention"]["qkv_proj"]` holds
`mobilevitv2.encoder.layer.2.transformer.layer.0.attention.qkv_proj.*`.
Shapes in comments are for mobilevitv2-1.0 on a 256x256 image; B is the batch.
"""

from __future__ import annotations

import numpy as np

from mobilevit_np.activations import get_activation
from mobilevit_np.architecture import Stage
from mobilevit_np.architecture_v2 import encoder_stages
from mobilevit_np.config_v2 import MobileViTV2Config
from mobilevit_np.layers import group_norm, separable_self_attention
from mobilevit_np.model import Activation, BackboneResult, Params, conv_layer, inverted_residual
from mobilevit_np.patches import fold_v2, unfold_v2
from mobilevit_np.trace import record, scope


def attention_layer(
    x: np.ndarray,
    layernorm_before: Params,
    attention: Params,
    layernorm_after: Params,
    ffn: Params,
    *,
    activation: Activation,
    eps: float,
) -> np.ndarray:
    """MobileViTV2TransformerLayer, pre-norm like v1's transformer_layer: x (B, d, P, N) -> same.

    x = x + SeparableAttention(GroupNorm(x));  x = x + FFN(GroupNorm(x)), FFN = 1x1 d -> f -> d.
    """
    h, scores = separable_self_attention(group_norm(x, **layernorm_before, eps=eps), **attention)
    record("context_scores", scores)  # (B, 1, P, N): where this layer looks (docs/mobilevitv2.md)
    x = x + h
    h = conv_layer(group_norm(x, **layernorm_after, eps=eps), **ffn["conv1"], activation=activation)  # (B, f, P, N)
    return x + conv_layer(h, **ffn["conv2"])


def mobilevitv2_block(
    x: np.ndarray, p: Params, stage: Stage, config: MobileViTV2Config, activation: Activation
) -> np.ndarray:
    """MobileViTV2Layer: downsample, local depthwise conv, global separable attention over patches.

    x (B, C_in, H, W) -> (B, C, H', W'), H' = H/2 unless dilated (output stride).
    For layer_3 of mobilevitv2-1.0 at 256x256: (B, 128, 64, 64) -> (B, 256, 32, 32).
    """
    stride, dilation = stage.downsample
    x = record(
        "downsampling_layer",
        inverted_residual(x, **p["downsampling_layer"], stride=stride, dilation=dilation, activation=activation),
    )

    # Local representation: a depthwise kxk conv sees neighbours, a 1x1 projects to width d.
    h = record("conv_kxk", conv_layer(x, **p["conv_kxk"], activation=activation))  # (B, C, H', W')
    h = record("conv_1x1", conv_layer(h, **p["conv_1x1"]))  # (B, d, H', W')

    # Global representation: P = p*p sequences (one per pixel offset) over N patches.
    size = h.shape[2:]
    tokens = record("unfold", unfold_v2(h, config.patch_size))  # (B, d, P, N)
    for i, layer in enumerate(p["transformer"]["layer"]):
        with scope(f"transformer.layer.{i}"):
            tokens = attention_layer(tokens, **layer, activation=activation, eps=config.layer_norm_eps)
        record(f"transformer.layer.{i}", tokens)
    tokens = group_norm(tokens, **p["layernorm"], eps=config.layer_norm_eps)
    h = record("fold", fold_v2(tokens, size))  # (B, d, H', W')

    # Back to C channels; no activation and, unlike v1, no fusion with the block's input.
    return record("conv_projection", conv_layer(h, **p["conv_projection"]))


def backbone(pixel_values: np.ndarray, p: Params, config: MobileViTV2Config) -> BackboneResult:
    """MobileViTV2Model's stem and encoder: (B, 3, H, W) -> layer_5 output (B, 512, H/32, W/32).

    For mobilevitv2-1.0 at 256x256 the hidden states are (B, 64, 128, 128), (B, 128, 64, 64),
    (B, 256, 32, 32), (B, 384, 16, 16), (B, 512, 8, 8).
    """
    activation = get_activation(config.hidden_act)
    x = record(
        "conv_stem", conv_layer(pixel_values, **p["conv_stem"], stride=2, activation=activation)
    )  # (B, 32, H/2, W/2)
    hidden_states = []
    for n, (stage, layer) in enumerate(zip(encoder_stages(config), p["encoder"]["layer"], strict=True)):
        with scope(f"encoder.layer.{n}"):
            if stage.kind == "mobilenet":
                for i, block in enumerate(layer["layer"]):
                    stride = stage.stride if i == 0 else 1
                    x = record(f"layer.{i}", inverted_residual(x, **block, stride=stride, activation=activation))
            else:
                x = mobilevitv2_block(x, layer, stage, config, activation)
        hidden_states.append(x)
    return BackboneResult(x, hidden_states)
