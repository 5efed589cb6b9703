"""MobileViTV2 on the fast engine: engine.Engine with v2's attention stages.

Everything outside the attention stages is v1's, so it is engine.Engine's: the stem, the
inverted residuals (with output-stride dilation), the DeepLabV3 head, the pooling and the
classifier (v2 has no conv_1x1_exp: it pools its last stage). An attention stage
(model_v2.mobilevitv2_block) becomes:

    downsampling inverted residual -> depthwise kxk (BN, activation) -> 1x1 to width d
    -> unfold into S = B*P token sequences of N patches, (S, DB, 1, N, 16) as v1's tokens
    -> per layer: group norm, qkv 1x1, separable attention, out_proj 1x1 + residual,
                  group norm, FFN 1x1 (activation) -> 1x1 + residual
    -> group norm -> fold (zeros past the last whole patch) -> conv_projection (BN, no activation)

Which kernel stands for which reference function, beyond engine.py's list:
    layers.group_norm                          -> norm.group_norm_tokens
    layers.separable_self_attention            -> conv.conv2d_tiles (qkv_proj, out_proj) around
                                                  separable.separable_attention
    patches.unfold_v2 / fold_v2                -> layout.unfold_tokens / fold_tokens
"""

from __future__ import annotations

from mobilevit_np.architecture_v2 import BACKBONE, encoder_stages
from mobilevit_np.kernels.engine import Conv, Engine, Map, Plan, pack_conv_layer, stacked_linear
from mobilevit_np.kernels.layout import fold_tokens, unfold_tokens
from mobilevit_np.kernels.norm import group_norm_tokens
from mobilevit_np.kernels.separable import separable_attention
from mobilevit_np.patches import whole_patches


def pack_qkv(p: dict, width: int) -> Conv:
    """qkv_proj (1 + 2d outputs: query, keys, values) with each part on its own blocks: [q | K | V],
    the layout separable.separable_attention reads (the query alone in block 0, lane 0)."""
    weight, bias = p["convolution"]["weight"][:, :, 0, 0], p["convolution"]["bias"]
    parts = [(weight[:1], bias[:1]), (weight[1 : 1 + width], bias[1 : 1 + width])]
    parts.append((weight[1 + width :], bias[1 + width :]))
    return stacked_linear(parts, width)


class EngineV2(Engine):
    """A MobileViTV2 backbone (+ head) packed for the kernels."""

    backbone_prefix = BACKBONE
    encoder_stages = staticmethod(encoder_stages)

    # ------------------------------------------------------------------ packing

    def _pack_mobilevit_stage(self, stage, p: dict) -> dict:
        stride, dilation = stage.downsample  # output stride 8/16: stride 1 and dilation, as model_v2
        width = stage.hidden_size
        layers = [
            {
                "before": self._pack_group_norm(layer["layernorm_before"], width),
                "qkv": pack_qkv(layer["attention"]["qkv_proj"], width),
                "out": pack_conv_layer(layer["attention"]["out_proj"]),
                "after": self._pack_group_norm(layer["layernorm_after"], width),
                "fc1": pack_conv_layer(layer["ffn"]["conv1"]),
                "fc2": pack_conv_layer(layer["ffn"]["conv2"]),
            }
            for layer in p["transformer"]["layer"]
        ]
        return {
            "kind": "mobilevit",
            "down": self._pack_residual(p["downsampling_layer"], stride, dilation),
            "conv_kxk": pack_conv_layer(p["conv_kxk"], depthwise=True),
            "conv_1x1": pack_conv_layer(p["conv_1x1"]),
            "layers": layers,
            "norm": self._pack_group_norm(p["layernorm"], width),
            "projection": pack_conv_layer(p["conv_projection"]),
        }

    def _pack_group_norm(self, p: dict, width: int) -> tuple:
        """(mask, weight, bias, eps) for norm.group_norm_tokens: v1's layer norm parameters without 1/width."""
        return self._pack_norm(p, width)[:4]

    # ------------------------------------------------------------------ building a plan

    def _mobilevit_stage(self, plan: Plan, x: Map, stage: dict, out_pad: int) -> Map:
        kxk = stage["conv_kxk"]
        down = self._inverted_residual(plan, x, stage["down"], pad=kxk.reach)  # (B, C, h, w), kxk's border
        plan.buffers.give(x)
        local = self._conv(plan, down, kxk, activation=self.activation)
        plan.buffers.give(down)
        projected = self._conv(plan, local, stage["conv_1x1"])  # (B, d, h, w)
        plan.buffers.give(local)
        p = self.config.patch_size
        nh, nw = whole_patches(projected.height, projected.width, p)
        tokens = plan.buffers.new_map(plan.batch * p * p, projected.channels, 1, nh * nw)  # (B*P, DB, 1, N, 16)
        plan.add(unfold_tokens, projected.buffer, *projected.strides(), p, nh, nw, tokens.buffer)
        for layer in stage["layers"]:
            tokens = self._attention_layer(plan, tokens, layer)
        normed = self._token_norm(plan, tokens, stage["norm"])
        plan.buffers.give(tokens)
        folded = projected  # dead since the unfold: same shape; fold_tokens rewrites all of it
        plan.add(fold_tokens, normed.buffer, p, nh, nw, folded.buffer, *folded.strides(), folded.height, folded.width)
        plan.buffers.give(normed)
        out = self._conv(plan, folded, stage["projection"], pad=out_pad)
        plan.buffers.give(folded)
        return out

    def _token_norm(self, plan: Plan, tokens: Map, norm: tuple) -> Map:
        """v2's norm: one group per image (its P sequences of tokens)."""
        out = plan.buffers.new_map(tokens.buffer.shape[0], tokens.channels, 1, tokens.width)
        per_image = self.config.patch_size**2
        plan.add(group_norm_tokens, tokens.buffer, per_image, *norm, out.buffer, work=3 * tokens.buffer.size)
        return out

    def _attention_layer(self, plan: Plan, x: Map, layer: dict) -> Map:
        """MobileViTV2TransformerLayer on tokens x (S, DB, 1, N, 16) -> a new token map."""
        normed = self._token_norm(plan, x, layer["before"])
        qkv = self._conv(plan, normed, layer["qkv"])  # (S, 1 + 2 DB, 1, N, 16)
        plan.buffers.give(normed)
        mixed = plan.buffers.new_map(x.buffer.shape[0], x.channels, 1, x.width)
        plan.add(separable_attention, qkv.buffer, mixed.buffer, work=2 * mixed.buffer.size)
        plan.buffers.give(qkv)
        return self._output_and_ffn(plan, x, mixed, layer)
