"""The MobileViT forward pass, top to bottom, as plain functions.

Read this file in order: building blocks, the MobileViT block, the encoder, the heads.
Parameters arrive as nested dicts whose keys are the checkpoint's own name segments,
so `p["encoder"]["layer"][2]["fusion"]` holds what model.safetensors calls
`mobilevit.encoder.layer.2.fusion.*`, and each function's arguments are the names one
level down (`inverted_residual(x, expand_1x1, conv_3x3, reduce_1x1, ...)`).

Shapes for the default mobilevit-small on a 256x256 image are given as comments;
B is the batch. Dropout layers are identity at inference and are left out.

This is the reference: plain NumPy, one function per block. The fast path
(backend="numba") is a separate program, mobilevit_np/kernels/engine.py, whose kernels
each name the function here they stand for and are tested against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from mobilevit_np.activations import get_activation, relu
from mobilevit_np.architecture import BATCH_NORM_EPS, Stage, encoder_stages
from mobilevit_np.config import MobileViTConfig
from mobilevit_np.layers import batch_norm, conv2d, global_avg_pool, layer_norm, linear, multi_head_attention
from mobilevit_np.patches import fold, unfold
from mobilevit_np.trace import record, scope

Params = dict
Activation = Callable[[np.ndarray], np.ndarray]


@dataclass
class BackboneResult:
    """What the backbone computes; the public output classes are built from it."""

    last_hidden_state: np.ndarray
    hidden_states: list[np.ndarray]  # layer_1 .. layer_5 outputs, as transformers returns
    attentions: list[np.ndarray] = field(default_factory=list)  # one per transformer layer


# ============================================================ building blocks


def conv_layer(
    x: np.ndarray,
    convolution: Params,
    normalization: Params | None = None,
    *,
    stride: int = 1,
    dilation: int = 1,
    activation: Activation | None = None,
) -> np.ndarray:
    """MobileViTConvLayer: convolution -> batch norm -> activation.

    x (B, C, H, W) -> (B, O, H/stride, W/stride). Padding (k-1)/2 * dilation keeps the
    size at stride 1. The group count follows from the weight: C / weight.shape[1]
    (1 for a dense convolution, C for a depthwise one).
    """
    weight = convolution["weight"]  # (O, C/groups, k, k)
    kernel = weight.shape[-1]
    groups = x.shape[1] // weight.shape[1]
    x = conv2d(x, weight, convolution.get("bias"), stride, (kernel - 1) // 2 * dilation, dilation, groups)
    if normalization is not None:
        x = batch_norm(x, **normalization, eps=BATCH_NORM_EPS)
    if activation is not None:
        x = activation(x)
    return x


def inverted_residual(
    x: np.ndarray,
    expand_1x1: Params,
    conv_3x3: Params,
    reduce_1x1: Params,
    *,
    activation: Activation,
    stride: int = 1,
    dilation: int = 1,
) -> np.ndarray:
    """MobileNetV2 block: widen with a 1x1, filter each channel with a 3x3, narrow with a 1x1.

    x (B, C, H, W) -> (B, O, H/stride, W/stride); the input is added back when the
    shapes allow it (stride 1 and C == O).
    """
    h = conv_layer(x, **expand_1x1, activation=activation)  # (B, E, H, W), E = expand_ratio * C
    h = conv_layer(h, **conv_3x3, stride=stride, dilation=dilation, activation=activation)  # depthwise
    h = conv_layer(h, **reduce_1x1)  # (B, O, H/s, W/s), no activation: a linear bottleneck
    return x + h if stride == 1 and x.shape[1] == h.shape[1] else h


def transformer_layer(
    x: np.ndarray,
    attention: Params,
    intermediate: Params,
    output: Params,
    layernorm_before: Params,
    layernorm_after: Params,
    *,
    num_heads: int,
    activation: Activation,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Pre-norm transformer layer on N sequences of L tokens: x (N, L, D) -> (N, L, D).

    x = x + Attention(LayerNorm(x));  x = x + MLP(LayerNorm(x)), MLP = D -> mlp_ratio*D -> D.
    Also returns the attention probabilities (N, heads, L, L).
    """
    context, probs = multi_head_attention(
        layer_norm(x, **layernorm_before, eps=eps), **attention["attention"], num_heads=num_heads
    )
    x = x + linear(context, **attention["output"]["dense"])  # (N, L, D)
    h = activation(linear(layer_norm(x, **layernorm_after, eps=eps), **intermediate["dense"]))  # (N, L, 2D)
    return x + linear(h, **output["dense"]), probs


# ======================================================== the MobileViT block


def mobilevit_block(
    x: np.ndarray,
    p: Params,
    stage: Stage,
    config: MobileViTConfig,
    activation: Activation,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """MobileViTLayer: local convolutions, global attention over patches, fusion.

    x (B, C_in, H, W) -> (B, C, H', W') with H' = H/2 unless dilated (output stride).
    For layer_3 of mobilevit-small at 256x256: (B, 64, 64, 64) -> (B, 96, 32, 32).
    """
    # Output stride 16 or 8 (DeepLab's segmenters): instead of halving the map, this stage keeps
    # its input's size (stride 1) and its depthwise conv spreads its taps apart (dilation).
    stride, dilation = (1, stage.dilation // 2) if stage.dilation > 1 else (stage.stride, 1)
    x = inverted_residual(x, **p["downsampling_layer"], stride=stride, dilation=dilation, activation=activation)
    record("downsampling_layer", x)  # (B, C, H', W')
    residual = x

    # Local representation: a kxk conv sees neighbours, a 1x1 projects to the token width D.
    h = conv_layer(x, **p["conv_kxk"], activation=activation)  # (B, C, H', W')
    record("conv_kxk", h)
    h = conv_layer(h, **p["conv_1x1"])  # (B, D, H', W')
    record("conv_1x1", h)

    # Global representation: each of the p*p pixel offsets is a sequence over all patches.
    tokens, grid = unfold(h, config.patch_size)  # (B*p*p, nh*nw, D)
    record("unfold", tokens)
    attentions = []
    for i, layer in enumerate(p["transformer"]["layer"]):
        tokens, probs = transformer_layer(
            tokens,
            **layer,
            num_heads=config.num_attention_heads,
            activation=activation,
            eps=config.layer_norm_eps,
        )
        record(f"transformer.layer.{i}", tokens)
        attentions.append(probs)  # (B*p*p, heads, nh*nw, nh*nw)
    tokens = layer_norm(tokens, **p["layernorm"], eps=config.layer_norm_eps)
    h = fold(tokens, grid)  # (B, D, H', W')
    record("fold", h)

    # Fusion: back to C channels, then a kxk conv over [input, global features].
    h = conv_layer(h, **p["conv_projection"], activation=activation)  # (B, C, H', W')
    record("conv_projection", h)
    h = np.concatenate([residual, h], axis=1)  # (B, 2C, H', W')
    h = conv_layer(h, **p["fusion"], activation=activation)  # (B, C, H', W')
    record("fusion", h)
    return h, attentions


# ================================================================ the encoder


def backbone(pixel_values: np.ndarray, p: Params, config: MobileViTConfig) -> BackboneResult:
    """MobileViTModel up to (not including) the final 1x1 expansion.

    pixel_values (B, 3, H, W) -> layer_5 output (B, neck[5], H/32, W/32) at output stride 32.
    For mobilevit-small at 256x256 the hidden states are
    (B, 32, 128, 128), (B, 64, 64, 64), (B, 96, 32, 32), (B, 128, 16, 16), (B, 160, 8, 8).
    """
    activation = get_activation(config.hidden_act)
    x = conv_layer(pixel_values, **p["conv_stem"], stride=2, activation=activation)  # (B, 16, H/2, W/2)
    record("conv_stem", x)
    hidden_states, attentions = [], []
    for n, (stage, layer) in enumerate(zip(encoder_stages(config), p["encoder"]["layer"], strict=True)):
        with scope(f"encoder.layer.{n}"):  # names the recorded steps "encoder.layer.{n}.*"
            if stage.kind == "mobilenet":
                for i, block in enumerate(layer["layer"]):
                    stride = stage.stride if i == 0 else 1
                    x = inverted_residual(x, **block, stride=stride, activation=activation)
                    record(f"layer.{i}", x)
            else:
                x, probs = mobilevit_block(x, layer, stage, config, activation)
                attentions.extend(probs)
        hidden_states.append(x)
    return BackboneResult(x, hidden_states, attentions)


def expand_and_pool(x: np.ndarray, conv_1x1_exp: Params, config: MobileViTConfig) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's last features: 1x1 conv to neck[6] channels, then the spatial mean.

    x (B, 160, 8, 8) -> last_hidden_state (B, 640, 8, 8), pooler_output (B, 640).
    """
    x = conv_layer(x, **conv_1x1_exp, activation=get_activation(config.hidden_act))
    record("conv_1x1_exp", x)
    pooled = global_avg_pool(x)
    record("pooler", pooled)
    return x, pooled


# ================================================================== the heads


def aspp(x: np.ndarray, convs: list[Params], project: Params, atrous_rates: list[int]) -> np.ndarray:
    """Atrous Spatial Pyramid Pooling: five views of x at growing receptive fields.

    x (B, C, h, w) -> (B, A, h, w), A = aspp_out_channels. The branches are a 1x1 conv,
    three 3x3 convs dilated by the atrous rates (6, 12, 18: the kernel taps sit that many
    pixels apart), and image-level pooling; all are concatenated and projected to A.
    Every branch uses ReLU, whatever the config's hidden_act.
    """
    branches = [conv_layer(x, **convs[0], activation=relu)]  # (B, A, h, w)
    record("convs.0", branches[0])
    for i, (conv, rate) in enumerate(zip(convs[1:4], atrous_rates, strict=True), start=1):
        branches.append(conv_layer(x, **conv, dilation=rate, activation=relu))  # (B, A, h, w)
        record(f"convs.{i}", branches[i])
    pooled = global_avg_pool(x)[:, :, None, None]  # (B, C, 1, 1)
    pooled = conv_layer(pooled, **convs[4]["conv_1x1"], activation=relu)  # (B, A, 1, 1)
    record("convs.4", pooled)
    # transformers upsamples the 1x1 map bilinearly, which repeats its one value.
    branches.append(np.broadcast_to(pooled, branches[0].shape))
    x = conv_layer(np.concatenate(branches, axis=1), **project, activation=relu)  # (B, 5A, h, w) -> (B, A, h, w)
    record("project", x)
    return x


def segmentation_head(
    features: np.ndarray, aspp_params: Params, classifier: Params, config: MobileViTConfig
) -> np.ndarray:
    """DeepLabV3: ASPP then a 1x1 conv to class scores. (B, C, h, w) -> (B, num_labels, h, w)."""
    with scope("segmentation_head.aspp"):
        x = aspp(features, **aspp_params, atrous_rates=config.atrous_rates)
    logits = conv_layer(x, **classifier)
    record("logits", logits)
    return logits


def classification_head(pooled: np.ndarray, classifier: Params | None) -> np.ndarray:
    """Linear layer from pooled features to class logits: (B, 640) -> (B, num_labels).

    With num_labels == 0 transformers uses an identity here; so does this.
    """
    logits = pooled if classifier is None else linear(pooled, **classifier)
    record("logits", logits)
    return logits
