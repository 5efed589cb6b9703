"""The fast engine: MobileViT compiled into a plan of blocked-layout kernels.

model.py is the reference a learner reads; this is the same network as a different
program, built for speed. At load time (Engine.__init__) every layer's weights are packed
once: batch norm folded into the convolution before it, channels padded to blocks of 16
and reordered for the register tiles (pack.py), attention's 1/sqrt(d) folded into the query
projection and Q/K/V fused into one projection. For each input shape, a plan is built once
(Plan): every intermediate map gets a buffer (buffers whose values are dead are reused),
every kernel launch gets its arguments, so a forward pass is one loop over prepared
launches. Plans are kept per thread, so several Python threads can call one model.

Activations stay in the blocked layout (B, CB, H, W, 16) from the stem's output to the
heads: reorders happen only at the input image (NCHW -> channels last), around attention
(unfold/fold into patch sequences, which are blocked too) and for outputs that leave the
engine (logits, and hidden states or attention probabilities when asked for), so NCHW
copies are made only on request.

Which kernel stands for which reference function (the twin index is in kernels/__init__.py):
    model.conv_layer (1x1 and kxk, batch norm, activation) -> conv.conv2d_tiles
    model.conv_layer (depthwise)                           -> depthwise.depthwise_tiles
    model.inverted_residual (expand, depthwise, reduce)   -> fused.inverted_residual_rows
    model.transformer_layer's linears                      -> conv.conv2d_tiles on tokens
    layers.layer_norm                                      -> norm.layer_norm_tokens
    layers.multi_head_attention                            -> attention.attention_heads
    patches.unfold / fold (and their bilinear resize)      -> layout.unfold_tokens / fold_tokens / resize_bilinear
    layers.global_avg_pool                                 -> norm.global_average_pool
    model.aspp's pooled branch                             -> a per-image bias of the projection

MobileViTV2 (model_v2.py) is engine_v2.EngineV2: this engine with v2's attention stages.
The engine computes in float32 (what checkpoints hold); float64 models run the reference.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mobilevit_np.activations import get_activation, relu
from mobilevit_np.architecture import encoder_stages
from mobilevit_np.config import MobileViTConfig
from mobilevit_np.kernels import pack
from mobilevit_np.kernels.activation import FUSED, NONE
from mobilevit_np.kernels.attention import attention_heads
from mobilevit_np.kernels.conv import conv2d_tiles
from mobilevit_np.kernels.depthwise import depthwise_tiles
from mobilevit_np.kernels.fused import inverted_residual_rows
from mobilevit_np.kernels.layout import fold_tokens, resize_bilinear, stem_input, to_nchw, unfold_tokens
from mobilevit_np.kernels.norm import global_average_pool, layer_norm_tokens
from mobilevit_np.kernels.runtime.jit import Kernel
from mobilevit_np.kernels.runtime.threads import launch
from mobilevit_np.kernels.simd import ADD_BIAS, LANES, LOAD_INIT
from mobilevit_np.layers import _linear_source_index, conv_output_size, fold_batch_norm

MAX_PLANS_PER_THREAD = 4  # input shapes whose buffers a thread keeps (least recently used dropped)


# ---------------------------------------------------------------- packed layers


@dataclass
class Conv:
    """A convolution (or linear) with batch norm folded in, packed for conv2d_tiles."""

    weight: np.ndarray  # (OB, T, Kp, 16)
    bias: np.ndarray  # (OB*16,)
    taps: np.ndarray  # (T, 2) (dy, dx), dilation included
    out_channels: int
    size: int = 1
    stride: int = 1
    dilation: int = 1
    depthwise: bool = False

    @property
    def reach(self) -> int:
        """How far a tap reaches from the output pixel: the zero border its input needs."""
        return (self.size - 1) // 2 * self.dilation


def pack_conv_layer(
    p: dict,
    stride: int = 1,
    dilation: int = 1,
    in_index: np.ndarray | None = None,
    weight_slice: slice | None = None,
    depthwise: bool = False,
) -> Conv:
    """A {convolution, normalization?} node (model.conv_layer's parameters) -> Conv.

    weight_slice keeps only some input channels (ASPP's projection is split by branch).
    """
    weight, bias = p["convolution"]["weight"], p["convolution"].get("bias")
    if p.get("normalization") is not None:
        weight, bias = fold_batch_norm(weight, bias, p["normalization"])
    if weight_slice is not None:
        weight = weight[:, weight_slice]
    out_channels, _, size, _ = weight.shape
    packed = pack.pack_depthwise(weight) if depthwise else pack.pack_conv(weight, in_index)
    bias = pack.pack_vector(bias, out_channels, weight.dtype)
    taps = pack.kernel_taps(size, dilation)
    return Conv(packed, bias, taps, out_channels, size, stride, dilation, depthwise)


def pack_linear(p: dict, in_index: np.ndarray, scale: float = 1.0) -> Conv:
    """A linear {weight (O, C), bias} -> Conv (a 1x1 convolution on tokens), optionally scaled."""
    weight, bias = p["weight"] * p["weight"].dtype.type(scale), p.get("bias")
    if bias is not None:
        bias = bias * bias.dtype.type(scale)
    return Conv(
        pack.pack_linear(weight, in_index),
        pack.pack_vector(bias, len(weight), weight.dtype),
        pack.kernel_taps(1, 1),
        len(weight),
    )


def stacked_linear(parts: list[tuple[np.ndarray, np.ndarray | None]], in_channels: int) -> Conv:
    """Several linears on the same tokens as one: [(weight (O_i, C), bias (O_i,) or None), ...] -> a Conv
    whose outputs are part after part, each starting on a block boundary (padded to whole blocks)."""
    sizes = [pack.num_blocks(len(weight)) * LANES for weight, _ in parts]
    dtype = parts[0][0].dtype
    weight = np.zeros((sum(sizes), in_channels), dtype)
    bias = pack.aligned_zeros((sum(sizes),), dtype)
    for (w, b), start in zip(parts, np.cumsum([0, *sizes[:-1]]), strict=True):
        weight[start : start + len(w)] = w
        if b is not None:
            bias[start : start + len(w)] = b
    return Conv(pack.pack_linear(weight, pack.channel_index(in_channels)), bias, pack.kernel_taps(1, 1), sum(sizes))


def pack_qkv(attention: dict, width: int, num_heads: int) -> Conv:
    """Q, K and V as one linear: output blocks [Q | K | V], each padded to whole blocks; Q scaled by 1/sqrt(d)."""
    dtype = attention["query"]["weight"].dtype
    scale = dtype.type(1 / math.sqrt(width // num_heads))
    parts = []
    for name in ("query", "key", "value"):
        factor = scale if name == "query" else dtype.type(1)
        bias = attention[name].get("bias")
        parts.append((attention[name]["weight"] * factor, None if bias is None else bias * factor))
    return stacked_linear(parts, width)


def activation_code(activation: Callable) -> tuple[int, Callable | None]:
    """(fused kernel code, reference function to apply after the kernel, or None)."""
    code = FUSED.get(activation)
    return (code, None) if code is not None else (NONE, activation)


# ----------------------------------------------------------------- maps and plans


@dataclass
class Map:
    """A blocked feature map: blocks [block0, block0 + blocks) of a buffer (B, CB, H + 2 pad, W + 2 pad, 16)."""

    buffer: np.ndarray
    channels: int
    height: int
    width: int
    pad: int = 0
    block0: int = 0

    @property
    def blocks(self) -> int:
        return pack.num_blocks(self.channels)

    def strides(self) -> tuple[int, int, int, int]:
        """(offset of pixel (0, 0) of image 0, image stride, block stride, row stride) in elements."""
        _, blocks, rows, cols, _ = self.buffer.shape
        sy, scb = cols * LANES, rows * cols * LANES
        return self.block0 * scb + self.pad * sy + self.pad * LANES, blocks * scb, scb, sy

    def interior(self) -> np.ndarray:
        p = self.pad
        return self.buffer[:, self.block0 : self.block0 + self.blocks, p : p + self.height, p : p + self.width]


class Buffers:
    """Where a plan's feature maps live.

    A plan is built twice (Engine._build). The first build, a rehearsal never run, records for each
    map without a border its size and when it is taken and given back (`spans`, on a clock that
    ticks at every take and give); `arena_layout` then places those maps in one array so that no
    two alive at the same time overlap, and the second build takes the same maps, in the same
    order, as views of that array. A map given back is dead once the steps added before are run,
    so a map taken later may share its memory: every kernel writes every element it later reads
    (nothing may count on zeros), and no kernel reads a map's memory past its own shape.
    Measured (mobilevit-small, one 256x256 image): border-less maps 5.8 MB when a dead buffer went
    to the next map it fitted, 3.6 MB in the arena (the most alive at once: 3.0 MB).

    A map with a zero border stays out of the arena: it takes a dead buffer of the same shape and
    the same border, or a new one, so the border, which no kernel writes, stays zero. (A map of 2x2
    pixels with a border of 1 has the shape of a 4x4 map without one, whose edge pixels are not 0.)"""

    def __init__(self, rehearsed: list[list[float]] | None = None) -> None:
        """rehearsed: the spans of a rehearsal of the same build, or None for a rehearsal."""
        self.bordered: dict[tuple, list[np.ndarray]] = {}  # (shape, pad) -> dead buffers
        self.spans: list[list[float]] = []  # per border-less map, in the order taken: [size, taken at, given at]
        self.taken: dict[int, tuple] = {}  # id(buffer) -> (buffer, its span) until given back
        self.clock = 0
        self.rehearsed = rehearsed
        if rehearsed is not None:
            self.offsets, size = arena_layout(rehearsed)
            self.arena = pack.aligned_zeros((size,))

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    def take(self, shape: tuple[int, ...], pad: int = 0) -> np.ndarray:
        """A buffer of `shape` for a map with a zero border of `pad` pixels."""
        if pad:
            pool = self.bordered.get((shape, pad))
            return pool.pop() if pool else pack.aligned_zeros(shape)
        size, n = math.prod(shape), len(self.spans)
        if self.rehearsed is None:
            buffer = np.empty(shape, np.float32)  # a rehearsal's plan never runs: nothing writes it
        elif n < len(self.rehearsed) and self.rehearsed[n][0] == size:
            buffer = self.arena[self.offsets[n] : self.offsets[n] + size].reshape(shape)
        else:
            raise RuntimeError(f"engine plan: map {n} of {shape} differs from its rehearsal (a build must repeat)")
        span = [size, self._tick(), math.inf]  # given at: never, until given back
        self.spans.append(span)
        self.taken[id(buffer)] = (buffer, span)  # the buffer kept too, so its id stays its own
        return buffer

    def give(self, *maps: Map) -> None:
        for m in maps:
            if m.pad:
                self.bordered.setdefault((m.buffer.shape, m.pad), []).append(m.buffer)
            else:
                self.taken.pop(id(m.buffer))[1][2] = self._tick()

    def new_map(self, batch: int, channels: int, height: int, width: int, pad: int = 0) -> Map:
        shape = (batch, pack.num_blocks(channels), height + 2 * pad, width + 2 * pad, LANES)
        return Map(self.take(shape, pad), channels, height, width, pad)


def arena_layout(spans: list[list[float]]) -> tuple[list[int], int]:
    """Offsets in one array for buffers of spans [size, taken at, given at], so that two buffers alive at
    the same time never overlap -> (offsets, the array's size). Greedy by size: the largest first (the
    earliest taken among equals), each at the lowest offset free during its lifetime."""
    offsets = [0] * len(spans)
    placed: list[int] = []
    for i in sorted(range(len(spans)), key=lambda i: (-spans[i][0], spans[i][1])):
        size, taken, given = spans[i]
        alive = sorted((j for j in placed if spans[j][1] < given and taken < spans[j][2]), key=offsets.__getitem__)
        offset = 0
        for j in alive:
            if offset + size <= offsets[j]:
                break  # a gap below the next one alive
            offset = max(offset, offsets[j] + int(spans[j][0]))
        offsets[i] = offset
        placed.append(i)
    return offsets, max((offset + int(span[0]) for offset, span in zip(offsets, spans, strict=True)), default=0)


@dataclass
class Output:
    """An array a plan's step writes that leaves the engine: made fresh every call."""

    name: str
    shape: tuple[int, ...]


class Plan:
    """The launches of one forward pass at one input shape, with their buffers."""

    def __init__(self, shape: tuple[int, int, int, int], want_attentions: bool, buffers: Buffers) -> None:
        batch, channels, height, width = shape
        self.shape, self.batch, self.want_attentions = shape, batch, want_attentions
        self.input = np.zeros((batch, height + 2, width + 2, channels), np.float32)  # the stem's, channels last
        self.steps: list[tuple[Callable, tuple, int]] = []  # (kernel or function, arguments, work)
        self.outputs: list[tuple[int, int, Output]] = []  # (step, argument index, output)
        self.buffers = buffers
        self.labels: list[str] = []  # one per step

    def add(self, fn: Callable, *args, work: int = 0, label: str = "") -> None:
        """Append a launch of fn(*args); `work` (multiply-adds) decides serial or parallel, `label` names it
        in profiles (benchmarks/bench.py --profile)."""
        self.labels.append(label or getattr(fn, "__name__", "step").strip("_"))
        for i, a in enumerate(args):
            if isinstance(a, Output):
                self.outputs.append((len(self.steps), i, a))
        self.steps.append((fn, args, work))

    def run(self, spent: dict[str, float] | None = None) -> dict[str, list[np.ndarray]]:
        """Run every step; returns the outputs made, by name. With `spent`, adds each step's seconds
        to spent[label] (a profile; benchmarks/bench.py --profile)."""
        steps = list(self.steps)
        made: dict[str, list[np.ndarray]] = {}
        for index, position, output in self.outputs:
            array = np.empty(output.shape, np.float32)
            made.setdefault(output.name, []).append(array)
            fn, args, work = steps[index]
            steps[index] = (fn, args[:position] + (array,) + args[position + 1 :], work)
        for (fn, args, work), label in zip(steps, self.labels, strict=True):
            start = time.perf_counter() if spent is not None else 0.0
            if isinstance(fn, Kernel):
                launch(fn, args, work)
            else:
                fn(*args)
            if spent is not None:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
        return made


def _copy_out(interior: np.ndarray, channels: int, out: np.ndarray) -> None:
    out[...] = to_nchw(interior, channels)


def _apply(activation: Callable, view: np.ndarray) -> None:
    view[...] = activation(view)


# ---------------------------------------------------------------------- the engine


class Engine:
    """A MobileViT backbone (+ head) packed for the kernels; call it like the reference's forward.

    engine_v2.EngineV2 is MobileViTV2's: it replaces the attention stages (_pack_mobilevit_stage,
    _mobilevit_stage) and keeps the rest.
    """

    backbone_prefix = "mobilevit"  # a head model's backbone parameters are params[backbone_prefix]
    encoder_stages = staticmethod(encoder_stages)

    def __init__(self, config: MobileViTConfig, params: dict, head: str, expand_output: bool = True) -> None:
        self.config, self.head, self.expand_output = config, head, expand_output
        backbone = params if head == "base" else params[self.backbone_prefix]
        self.activation = get_activation(config.hidden_act)
        # The stem reads the image channels last (layout.stem_input): its input channels are not blocked.
        self.stem = pack_conv_layer(backbone["conv_stem"], stride=2, in_index=np.arange(config.num_channels))
        self.stages = [
            self._pack_stage(s, p)
            for s, p in zip(self.encoder_stages(config), backbone["encoder"]["layer"], strict=True)
        ]
        # v1 expands with a 1x1 conv before pooling (not without expand_output); v2 pools its last stage.
        self.pools = head != "base" or expand_output
        self.expand = pack_conv_layer(backbone["conv_1x1_exp"]) if self.pools and "conv_1x1_exp" in backbone else None
        self.classifier = None
        if head == "classification" and params.get("classifier") is not None:
            width = params["classifier"]["weight"].shape[1]
            self.classifier = pack_linear(params["classifier"], pack.channel_index(width))
        if head == "segmentation":
            self._pack_segmentation_head(params["segmentation_head"])
        self._plans = threading.local()

    # ------------------------------------------------------------------ packing

    def _pack_residual(self, p: dict, stride: int = 1, dilation: int = 1) -> list[Conv]:
        return [
            pack_conv_layer(p["expand_1x1"]),
            pack_conv_layer(p["conv_3x3"], stride=stride, dilation=dilation, depthwise=True),
            pack_conv_layer(p["reduce_1x1"]),
        ]

    def _pack_stage(self, stage, p: dict) -> dict:
        if stage.kind == "mobilenet":
            blocks = [self._pack_residual(b, stage.stride if i == 0 else 1) for i, b in enumerate(p["layer"])]
            return {"kind": "mobilenet", "blocks": blocks, "out": stage.out_channels}
        return self._pack_mobilevit_stage(stage, p)

    def _pack_mobilevit_stage(self, stage, p: dict) -> dict:
        stride, dilation = stage.downsample  # output stride 8/16: stride 1 and dilation, as model.mobilevit_block
        width, heads, c = stage.hidden_size, self.config.num_attention_heads, stage.out_channels
        layers = []
        for layer in p["transformer"]["layer"]:
            attention = layer["attention"]
            layers.append(
                {
                    "before": self._pack_norm(layer["layernorm_before"], width),
                    "qkv": pack_qkv(attention["attention"], width, heads),
                    "out": pack_linear(attention["output"]["dense"], pack.heads_index(width, heads)),
                    "after": self._pack_norm(layer["layernorm_after"], width),
                    "fc1": pack_linear(layer["intermediate"]["dense"], pack.channel_index(width)),
                    "fc2": pack_linear(
                        layer["output"]["dense"], pack.channel_index(int(width * self.config.mlp_ratio))
                    ),
                }
            )
        return {
            "kind": "mobilevit",
            "down": self._pack_residual(p["downsampling_layer"], stride, dilation),
            "conv_kxk": pack_conv_layer(p["conv_kxk"]),
            "conv_1x1": pack_conv_layer(p["conv_1x1"]),
            "layers": layers,
            "norm": self._pack_norm(p["layernorm"], width),
            "projection": pack_conv_layer(p["conv_projection"]),
            "fusion": pack_conv_layer(p["fusion"], in_index=pack.concat_index(c, c)),
            "width": width,
            "out": c,
        }

    def _pack_norm(self, p: dict, width: int) -> tuple:
        mask = pack.pack_vector(np.ones(width, np.float32), width, np.float32)
        weight = pack.pack_vector(p["weight"], width, np.float32)
        bias = pack.pack_vector(p["bias"], width, np.float32)
        return mask, weight, bias, np.float32(self.config.layer_norm_eps), np.float32(1 / width)

    def _pack_segmentation_head(self, p: dict) -> None:
        aspp, width = p["aspp"], self.config.aspp_out_channels
        self.aspp_convs = [pack_conv_layer(aspp["convs"][0])]
        for conv, rate in zip(aspp["convs"][1:4], self.config.atrous_rates, strict=True):
            self.aspp_convs.append(pack_conv_layer(conv, dilation=rate))
        self.aspp_pool = pack_conv_layer(aspp["convs"][4]["conv_1x1"])
        # project(concat(b0..b4)) = W[:, :4A] @ concat(b0..b3) + (W[:, 4A:] @ b4 + bias): the pooled branch
        # b4 is constant over the map, so its part is a per-image bias (computed on the pooled map).
        self.aspp_project = pack_conv_layer(
            aspp["project"], in_index=pack.concat_index(*[width] * 4), weight_slice=slice(0, 4 * width)
        )
        self.aspp_pooled_part = pack_conv_layer(aspp["project"], weight_slice=slice(4 * width, 5 * width))
        self.seg_classifier = pack_conv_layer(p["classifier"])

    # ------------------------------------------------------------------ running

    def __call__(
        self,
        pixel_values: np.ndarray,
        hidden_states: bool = False,
        attentions: bool = False,
        spent: dict[str, float] | None = None,
    ) -> dict:
        """pixel_values (B, 3, H, W) float32 -> {"hidden_states": [...], "attentions": [...], "last_hidden_state",
        "pooler_output", "logits"} (NCHW arrays, fresh each call; only what the head computes).
        With `spent`, seconds per kind of step are added to it (Plan.run)."""
        key = (pixel_values.shape, hidden_states, attentions)
        plans = self._thread_plans()
        plan = plans.pop(key, None) or self._build(pixel_values.shape, hidden_states, attentions)
        plans[key] = plan
        while len(plans) > MAX_PLANS_PER_THREAD:
            plans.popitem(last=False)
        stem_input(pixel_values, plan.input)
        made = plan.run(spent)
        singles = {name: arrays[0] for name, arrays in made.items() if name not in ("hidden_states", "attentions")}
        return {"hidden_states": made.get("hidden_states", []), "attentions": made.get("attentions", []), **singles}

    def _thread_plans(self) -> OrderedDict:
        if not hasattr(self._plans, "cache"):
            self._plans.cache = OrderedDict()
        return self._plans.cache

    # ------------------------------------------------------------------ building a plan

    def _build(self, shape: tuple[int, ...], want_hidden: bool, want_attentions: bool) -> Plan:
        """The plan for one input shape, built twice: a rehearsal records when each map is alive, then the
        plan takes its maps from one arena laid out for those lifetimes (Buffers). A build takes ~2 ms."""
        rehearsal = self._plan(Plan(shape, want_attentions, Buffers()), want_hidden)
        return self._plan(Plan(shape, want_attentions, Buffers(rehearsal.buffers.spans)), want_hidden)

    def _plan(self, plan: Plan, want_hidden: bool) -> Plan:
        batch, _, height, width = plan.shape
        stages = self.stages
        x = self._stem(plan, height, width, pad=0)
        for n, stage in enumerate(stages):
            last = n == len(stages) - 1
            out_pad = max(self.config.atrous_rates) if last and self.head == "segmentation" else 0
            if stage["kind"] == "mobilenet":
                x = self._mobilenet_stage(plan, x, stage, out_pad)
            else:
                x = self._mobilevit_stage(plan, x, stage, out_pad)
            if want_hidden:
                plan.add(
                    _copy_out, x.interior(), x.channels, Output("hidden_states", (batch, x.channels, x.height, x.width))
                )
        if self.head == "segmentation":
            self._segmentation_head(plan, x)
        else:
            self._expand_and_classify(plan, x)
        return plan

    def _conv(
        self,
        plan: Plan,
        x: Map,
        conv: Conv,
        out: Map | None = None,
        residual: Map | None = None,
        activation: Callable | None = None,
        pad: int = 0,
        image_bias: np.ndarray | None = None,
    ) -> Map:
        """out = activation(conv(x) + bias) (+ residual); a new map unless `out` is given.

        image_bias (B, OB*16) replaces the layer's bias with one per image.
        """
        assert x.pad >= conv.reach, "the input's zero border must cover the kernel's reach"
        out_h = conv_output_size(x.height, conv.size, conv.stride, conv.reach, conv.dilation)
        out_w = conv_output_size(x.width, conv.size, conv.stride, conv.reach, conv.dilation)
        batch = x.buffer.shape[0]  # images, sequences (tokens) or 1 (a pooled map, whose pixels are the images)
        if out is None:
            out = plan.buffers.new_map(batch, conv.out_channels, out_h, out_w, pad)
        code, after = activation_code(activation) if activation is not None else (NONE, None)
        x_off, x_sb, x_scb, x_sy = x.strides()
        o_off, o_sb, o_scb, o_sy = out.strides()
        if conv.depthwise:
            plan.add(
                depthwise_tiles,
                x.buffer,
                x_off,
                x_sb,
                x_scb,
                x_sy,
                conv.stride,
                conv.taps,
                conv.weight,
                conv.bias,
                out.buffer,
                o_off,
                o_sb,
                o_scb,
                o_sy,
                batch,
                out.blocks,
                out_h,
                out_w,
                code,
                work=batch * out.blocks * LANES * out_h * out_w * len(conv.taps),
                label=f"conv depthwise {conv.size}x{conv.size}",
            )
        else:
            flags, r_buffer, r_strides = _bias_and_residual(out, residual)
            k = conv.weight.shape[2]
            # image_bias flat, so that the kernel sees one bias type (one build)
            bias, bias_sb = (conv.bias, 0) if image_bias is None else (image_bias.reshape(-1), image_bias.shape[1])
            plan.add(
                conv2d_tiles,
                x.buffer,
                x_off,
                x_sb,
                x_scb,
                x_sy,
                LANES,
                x.height,
                x.width,
                conv.stride,
                conv.taps,
                k,
                conv.weight,
                conv.weight.shape[1] * k * LANES,
                bias,
                bias_sb,
                out.buffer,
                o_off,
                o_sb,
                o_scb,
                o_sy,
                batch,
                out_h,
                out_w,
                out.blocks,
                r_buffer,
                *r_strides,
                flags,
                code,
                work=batch * out_h * out_w * out.blocks * LANES * k * len(conv.taps),
                label="linear" if x.height == 1 and x is not out else f"conv {conv.size}x{conv.size}",
            )
        if after is not None:
            plan.add(_apply, after, out.interior())
        return out

    def _stem(self, plan: Plan, height: int, width: int, pad: int) -> Map:
        conv = self.stem
        out_h = conv_output_size(height, 3, 2, 1, 1)
        out_w = conv_output_size(width, 3, 2, 1, 1)
        out = plan.buffers.new_map(plan.batch, conv.out_channels, out_h, out_w, pad)
        code, after = activation_code(self.activation)
        channels = plan.input.shape[3]
        sy = (width + 2) * channels
        o_off, o_sb, o_scb, o_sy = out.strides()
        plan.add(
            conv2d_tiles,
            plan.input[:, None],  # (B, 1, H+2, W+2, 3): 5-D as every other map, so conv2d_tiles has one build
            sy + channels,
            (height + 2) * sy,
            0,
            sy,
            channels,
            height,
            width,
            2,
            conv.taps,
            channels,
            conv.weight,
            conv.weight.shape[1] * channels * LANES,
            conv.bias,
            0,
            out.buffer,
            o_off,
            o_sb,
            o_scb,
            o_sy,
            plan.batch,
            out_h,
            out_w,
            out.blocks,
            out.buffer,
            0,
            0,
            0,
            0,
            ADD_BIAS,
            code,
            work=plan.batch * out_h * out_w * out.blocks * LANES * channels * 9,
        )
        if after is not None:
            plan.add(_apply, after, out.interior())
        return out

    def _inverted_residual(self, plan: Plan, x: Map, convs: list[Conv], out: Map | None = None, pad: int = 0) -> Map:
        expand, depthwise, reduce = convs
        residual = x if depthwise.stride == 1 and x.channels == reduce.out_channels else None
        if activation_code(self.activation)[1] is None:  # the activation runs in the tiles: one kernel
            return self._inverted_residual_rows(plan, x, convs, out, residual, pad)
        h = self._conv(plan, x, expand, activation=self.activation, pad=depthwise.reach)
        d = self._conv(plan, h, depthwise, activation=self.activation)
        plan.buffers.give(h)
        y = self._conv(plan, d, reduce, out=out, residual=residual, pad=pad)
        plan.buffers.give(d)
        return y

    def _inverted_residual_rows(
        self, plan: Plan, x: Map, convs: list[Conv], out: Map | None, residual: Map | None, pad: int
    ) -> Map:
        """The whole block as fused.inverted_residual_rows: its two wide maps are never written."""
        expand, depthwise, reduce = convs
        out_h = conv_output_size(x.height, depthwise.size, depthwise.stride, depthwise.reach, depthwise.dilation)
        out_w = conv_output_size(x.width, depthwise.size, depthwise.stride, depthwise.reach, depthwise.dilation)
        batch = x.buffer.shape[0]
        if out is None:
            out = plan.buffers.new_map(batch, reduce.out_channels, out_h, out_w, pad)
        flags, r_buffer, r_strides = _bias_and_residual(out, residual)
        mid_blocks = pack.num_blocks(expand.out_channels)
        in_channels, taps = expand.weight.shape[2], len(depthwise.taps)  # multiply-adds per wide value: see work=
        plan.add(
            inverted_residual_rows,
            x.buffer,
            *x.strides(),
            x.height,
            x.width,
            expand.weight,
            expand.bias,
            depthwise.stride,
            depthwise.taps,
            depthwise.reach,
            depthwise.weight,
            depthwise.bias,
            mid_blocks,
            activation_code(self.activation)[0],
            reduce.weight,
            reduce.bias,
            out.buffer,
            *out.strides(),
            out.blocks,
            r_buffer,
            *r_strides,
            flags,
            batch,
            out_h,
            out_w,
            work=batch
            * mid_blocks
            * LANES
            * (x.height * x.width * in_channels + out_h * out_w * (taps + out.blocks * LANES)),
            label="inverted residual",
        )
        return out

    def _mobilenet_stage(self, plan: Plan, x: Map, stage: dict, out_pad: int) -> Map:
        blocks = stage["blocks"]
        for i, convs in enumerate(blocks):
            y = self._inverted_residual(plan, x, convs, pad=out_pad if i == len(blocks) - 1 else 0)
            plan.buffers.give(x)
            x = y
        return x

    def _mobilevit_stage(self, plan: Plan, x: Map, stage: dict, out_pad: int) -> Map:
        c, width = stage["out"], stage["width"]
        kxk, fusion = stage["conv_kxk"], stage["fusion"]
        down = stage["down"]
        # The downsampling block writes into the first half of the fusion conv's input
        # [residual | global], which also is conv_kxk's input: no concatenation copy.
        height = conv_output_size(x.height, 3, down[1].stride, down[1].reach, down[1].dilation)
        width_px = conv_output_size(x.width, 3, down[1].stride, down[1].reach, down[1].dilation)
        both = plan.buffers.new_map(plan.batch, 2 * pack.num_blocks(c) * LANES, height, width_px, fusion.reach)
        residual = Map(both.buffer, c, height, width_px, fusion.reach, 0)
        self._inverted_residual(plan, x, down, out=residual)
        plan.buffers.give(x)
        local = self._conv(plan, residual, kxk, activation=self.activation)
        projected = self._conv(plan, local, stage["conv_1x1"])  # (B, D, h, w)
        plan.buffers.give(local)
        tokens, grid = self._unfold(plan, projected)
        plan.buffers.give(projected)
        for layer in stage["layers"]:
            tokens = self._transformer_layer(plan, tokens, layer, width)
        normed = self._token_norm(plan, tokens, stage["norm"])
        plan.buffers.give(tokens)
        folded = self._fold(plan, normed, grid, width)
        plan.buffers.give(normed)
        global_half = Map(both.buffer, c, height, width_px, fusion.reach, pack.num_blocks(c))
        self._conv(plan, folded, stage["projection"], out=global_half, activation=self.activation)
        plan.buffers.give(folded)
        concat = Map(both.buffer, 2 * pack.num_blocks(c) * LANES, height, width_px, fusion.reach)
        out = self._conv(plan, concat, fusion, activation=self.activation, pad=out_pad)
        plan.buffers.give(both)
        return out

    def _unfold(self, plan: Plan, x: Map) -> tuple[Map, tuple]:
        p = self.config.patch_size
        nh, nw = -(-x.height // p), -(-x.width // p)
        source = x
        if (nh * p, nw * p) != (x.height, x.width):
            source = self._resize(plan, x, nh * p, nw * p)
        tokens = plan.buffers.new_map(plan.batch * p * p, x.channels, 1, nh * nw)
        off, sb, scb, sy = source.strides()
        plan.add(unfold_tokens, source.buffer, off, sb, scb, sy, p, nh, nw, tokens.buffer)
        if source is not x:
            plan.buffers.give(source)
        return tokens, (x.height, x.width, nh, nw)

    def _fold(self, plan: Plan, tokens: Map, grid: tuple, channels: int) -> Map:
        p = self.config.patch_size
        height, width, nh, nw = grid
        folded = plan.buffers.new_map(plan.batch, channels, nh * p, nw * p)
        off, sb, scb, sy = folded.strides()
        plan.add(fold_tokens, tokens.buffer, p, nh, nw, folded.buffer, off, sb, scb, sy, nh * p, nw * p)
        if (nh * p, nw * p) == (height, width):
            return folded
        resized = self._resize(plan, folded, height, width)
        plan.buffers.give(folded)
        return resized

    def _resize(self, plan: Plan, x: Map, height: int, width: int) -> Map:
        out = plan.buffers.new_map(plan.batch, x.channels, height, width)
        y0, y1, wy = _linear_source_index(height, x.height, np.dtype(np.float32))
        x0, x1, wx = _linear_source_index(width, x.width, np.dtype(np.float32))
        x_off, x_sb, x_scb, x_sy = x.strides()
        o_off, o_sb, o_scb, o_sy = out.strides()
        plan.add(
            resize_bilinear,
            x.buffer,
            x_off,
            x_sb,
            x_scb,
            x_sy,
            out.buffer,
            o_off,
            o_sb,
            o_scb,
            o_sy,
            y0,
            y1,
            wy,
            x0,
            x1,
            wx,
        )
        return out

    def _token_norm(self, plan: Plan, tokens: Map, norm: tuple) -> Map:
        """The transformer's norm: layer norm per token (EngineV2: group norm per image)."""
        out = plan.buffers.new_map(tokens.buffer.shape[0], tokens.channels, 1, tokens.width)
        plan.add(layer_norm_tokens, tokens.buffer, *norm, out.buffer, work=tokens.buffer.size)
        return out

    def _transformer_layer(self, plan: Plan, x: Map, layer: dict, width: int) -> Map:
        heads = self.config.num_attention_heads
        normed = self._token_norm(plan, x, layer["before"])
        qkv = self._conv(plan, normed, layer["qkv"])
        plan.buffers.give(normed)
        n, length = x.buffer.shape[0], x.width
        head_dim = width // heads
        context = plan.buffers.new_map(n, heads * pack.num_blocks(head_dim) * LANES, 1, length)
        probs = (
            Output("attentions", (n, heads, length, length))
            if plan.want_attentions
            else np.zeros((1, 1, 1, 1), np.float32)
        )
        plan.add(
            attention_heads,
            qkv.buffer,
            heads,
            head_dim,
            pack.num_blocks(width),
            context.buffer,
            probs,
            plan.want_attentions,
            work=n * heads * length * length * head_dim * 2,
        )
        plan.buffers.give(qkv)
        return self._output_and_ffn(plan, x, context, layer)

    def _output_and_ffn(self, plan: Plan, x: Map, mixed: Map, layer: dict) -> Map:
        """The rest of a pre-norm transformer layer after attention mixed the tokens of x:
        x1 = x + out(mixed), then x1 + fc2(activation(fc1(norm(x1)))). mixed and x are dead after."""
        x1 = self._conv(plan, mixed, layer["out"], residual=x)
        plan.buffers.give(mixed)
        normed = self._token_norm(plan, x1, layer["after"])
        hidden = self._conv(plan, normed, layer["fc1"], activation=self.activation)
        plan.buffers.give(normed)
        x2 = self._conv(plan, hidden, layer["fc2"], residual=x1)
        plan.buffers.give(hidden, x1, x)
        return x2

    def _pool(self, plan: Plan, x: Map) -> Map:
        pooled = plan.buffers.new_map(1, x.channels, 1, plan.batch)
        off, sb, scb, sy = x.strides()
        plan.add(global_average_pool, x.buffer, off, sb, scb, sy, x.height, x.width, pooled.buffer)
        return pooled

    def _expand_and_classify(self, plan: Plan, x: Map) -> None:
        last = x if self.expand is None else self._conv(plan, x, self.expand, activation=self.activation)
        if self.head == "base":
            shape = (plan.batch, last.channels, last.height, last.width)
            plan.add(_copy_out, last.interior(), last.channels, Output("last_hidden_state", shape))
        if not self.pools:
            return
        pooled = self._pool(plan, last)
        features = pooled
        if self.classifier is not None:
            features = self._conv(plan, pooled, self.classifier)
        name = "pooler_output" if self.head == "base" else "logits"
        plan.add(_pixels_out, features.interior(), features.channels, Output(name, (plan.batch, features.channels)))

    def _segmentation_head(self, plan: Plan, x: Map) -> None:
        width = self.config.aspp_out_channels
        branches = Map(
            plan.buffers.take((plan.batch, 4 * pack.num_blocks(width), x.height, x.width, LANES)),
            4 * pack.num_blocks(width) * LANES,
            x.height,
            x.width,
        )
        for i, conv in enumerate(self.aspp_convs):
            part = Map(branches.buffer, width, x.height, x.width, 0, i * pack.num_blocks(width))
            self._conv(plan, x, conv, out=part, activation=relu)
        pooled = self._pool(plan, x)
        branch = self._conv(plan, pooled, self.aspp_pool, activation=relu)
        image_bias = self._conv(plan, branch, self.aspp_pooled_part)  # (1, AB, 1, B, 16): W[:, 4A:] b4 + bias
        bias = pack.aligned_zeros((plan.batch, pack.num_blocks(width) * LANES))
        plan.add(_image_bias, image_bias.interior(), bias)
        projected = self._conv(plan, branches, self.aspp_project, activation=relu, image_bias=bias)
        plan.buffers.give(branches, pooled, branch, image_bias)
        logits = self._conv(plan, projected, self.seg_classifier)
        shape = (plan.batch, logits.channels, logits.height, logits.width)
        plan.add(_copy_out, logits.interior(), logits.channels, Output("logits", shape))


def _bias_and_residual(out: Map, residual: Map | None) -> tuple[int, np.ndarray, tuple[int, int, int, int]]:
    """The gemm tiles' (flags, residual buffer, its strides) for writing `out`: add the bias, and start from
    `residual` when given (a map of out's shape, maybe with another border: its own strides)."""
    if residual is None:
        return ADD_BIAS, out.buffer, (0, 0, 0, 0)
    return ADD_BIAS | LOAD_INIT, residual.buffer, residual.strides()


def _pixels_out(interior: np.ndarray, channels: int, out: np.ndarray) -> None:
    """A pooled map's interior (1, CB, 1, B, 16) -> (B, channels)."""
    out[...] = interior[0, :, 0].transpose(1, 0, 2).reshape(out.shape[0], -1)[:, :channels]


def _image_bias(interior: np.ndarray, bias: np.ndarray) -> None:
    """(1, OB, 1, B, 16) -> bias (B, OB*16): one bias vector per image."""
    bias[...] = interior[0, :, 0].transpose(1, 0, 2).reshape(bias.shape)
