"""Regenerate the figures in docs/figures/ and the generated tables in docs/*.md.

    python tools/make_figures.py            # write every PNG and refresh the tables
    python tools/make_figures.py --check    # only check that the tables in the docs are current

Every picture is an output of the package's own code. Where the point is shapes and bookkeeping, it
runs mobilevit-small's architecture on the cats test image with seeded random weights (no Apple
checkpoint can be downloaded here). Where the point is what a network has learned (the shapes_*
figures: attention, feature maps, top 5, segmentation), it runs the two small models trained on drawn
shapes (examples/models/shapes-*, docs/shapes_models.md) on a test image of that data set.
attention_cost.png is a timing, measured on the machine that runs this: the committed one ran with
OPENBLAS_NUM_THREADS=1 (one thread, so that other processes' load does not swamp small matrices). Tables sit between
`<!-- generated:NAME -->` and `<!-- end:NAME -->` lines and are rewritten in place.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import numpy as np
import shapes  # tools/shapes.py: the shapes data set's generator (the true mask)

from mobilevit_np import (
    MobileViTConfig,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTV2Config,
    MobileViTV2ForImageClassification,
    viz,
)
from mobilevit_np.activations import get_activation
from mobilevit_np.architecture import BATCH_NORM_EPS, parameter_shapes
from mobilevit_np.image_processing import MobileViTImageProcessor, load_image
from mobilevit_np.layers import (
    batch_norm,
    conv2d,
    fold_batch_norm,
    im2col,
    multi_head_attention,
    separable_self_attention,
)
from mobilevit_np.model import conv_layer
from mobilevit_np.palette import PASCAL_VOC_LABELS
from mobilevit_np.random_weights import random_state_dict

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures"
CATS = ROOT / "examples" / "images" / "cats.png"  # the cats of transformers' MobileViT tests

# The Apple checkpoints' preprocessing: classifiers 288 -> 256, DeepLabV3 segmenters 544 -> 512.
CLASSIFIER_PROCESSOR = dict(size={"shortest_edge": 288}, crop_size={"height": 256, "width": 256})
SEGMENTER_PROCESSOR = dict(size={"shortest_edge": 544}, crop_size={"height": 512, "width": 512})
CAT_HEAD = (70, 70)  # (y, x) in the 256x256 crop: the left cat's head, where attention queries start
SHAPES_MODELS = ROOT / "examples" / "models"
SHAPES_TEST_INDEX = 28  # a cross, which both shapes models get right
SHAPES_IMAGE = ROOT / "examples" / "images" / "shapes" / f"{SHAPES_TEST_INDEX:02d}_cross.png"
TRAINED_ON = "trained on tools/shapes.py's drawn shapes"


# ------------------------------------------------------------------ models and inputs


def classifier() -> MobileViTForImageClassification:
    """mobilevit-small's architecture with seeded random weights (1000 generic labels)."""
    config = MobileViTConfig(num_labels=1000)
    return MobileViTForImageClassification.from_config(config, random_state_dict(config, "classification", seed=0))


def segmenter(output_stride: int = 16) -> MobileViTForSemanticSegmentation:
    """deeplabv3-mobilevit-small's architecture (21 VOC classes) with seeded random weights."""
    config = MobileViTConfig(id2label=dict(enumerate(PASCAL_VOC_LABELS)), output_stride=output_stride)
    return MobileViTForSemanticSegmentation.from_config(config, random_state_dict(config, "segmentation", seed=0))


def shapes_model(cls, name: str):
    """A shapes model and its processor's pixel values of SHAPES_IMAGE: (model, (1, 3, 128, 128))."""
    folder = SHAPES_MODELS / name
    pixel_values = MobileViTImageProcessor.from_pretrained(folder)(load_image(SHAPES_IMAGE))["pixel_values"]
    return cls.from_pretrained(folder), pixel_values


def cats_pixel_values(settings: dict) -> np.ndarray:
    return MobileViTImageProcessor(**settings)(load_image(CATS))["pixel_values"]  # (1, 3, S, S), BGR in [0, 1]


# ------------------------------------------------------------------ generated tables


def architecture_table(pixel_values: np.ndarray) -> str:
    """The shape of every step of mobilevit-small on one (1, 3, 256, 256) image."""
    return classifier().trace(pixel_values).table()


def output_stride_table(size: int = 256) -> str:
    """Segmenter map sizes per encoder layer at output stride 32, 16 and 8 (one traced run each)."""
    steps = ["conv_stem"] + [f"encoder.layer.{n}" for n in range(5)] + ["segmentation_head.aspp.project", "logits"]
    strides = (32, 16, 8)
    traces = [segmenter(s).trace(np.zeros((1, 3, size, size), dtype=np.float32)) for s in strides]
    rows = ["| step | " + " | ".join(f"output stride {s}" for s in strides) + " |", "|---" * (len(strides) + 1) + "|"]
    for step in steps:
        cells = []
        for trace in traces:
            # a step's output is the last array recorded under its name (a layer's last block)
            shape = [e.shape for e in trace if e.name == step or e.name.startswith(step + ".")][-1]
            cells.append(f"{shape[2]}x{shape[3]}, {shape[1]} channels")
        rows.append(f"| `{step}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def weights_table() -> str:
    """Tensors and parameters per part of mobilevit-small's classifier checkpoint."""
    shapes = parameter_shapes(MobileViTConfig(num_labels=1000), "classification")
    groups: dict[str, list[tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        parts = name.split(".")
        depth = 4 if parts[:2] == ["mobilevit", "encoder"] else 2  # mobilevit.encoder.layer.N | mobilevit.conv_stem
        groups.setdefault(".".join(parts[: depth if parts[0] == "mobilevit" else 1]), []).append(shape)
    rows = ["| prefix | tensors | parameters |", "|---|---:|---:|"]
    for prefix, group in groups.items():
        rows.append(f"| `{prefix}` | {len(group)} | {sum(math.prod(s) for s in group):,} |")
    rows.append(f"| total | {len(shapes)} | {sum(math.prod(s) for s in shapes.values()):,} |")
    return "\n".join(rows)


def v2_sizes_table() -> str:
    """Parameters and MACs of every MobileViTV2 width beside MobileViT's sizes, classifiers at 256x256."""
    from mobilevit_np.presets import PRESET_NAMES, preset_config
    from mobilevit_np.summary import architecture_summary

    rows = ["| preset | generation | parameters | MACs at 256x256 |", "|---|---|---:|---:|"]
    for name in PRESET_NAMES:
        summary = architecture_summary(preset_config(name), "classification", 256)
        generation = "MobileViTV2" if name.startswith("v2-") else "MobileViT"
        params, macs = sum(r.params for r in summary), sum(r.macs for r in summary)
        rows.append(f"| `{name}` | {generation} | {params / 1e6:.2f} M | {macs / 1e9:.2f} G |")
    return "\n".join(rows)


def generated_tables() -> dict[str, tuple[str, str]]:
    """{name: (docs file, table)} for every table the docs embed."""
    zeros = np.zeros((1, 3, 256, 256), dtype=np.float32)  # shapes do not depend on pixel values
    return {
        "architecture-trace": ("architecture.md", architecture_table(zeros)),
        "output-stride": ("aspp_and_output_stride.md", output_stride_table()),
        "weights-summary": ("weights.md", weights_table()),
        "v2-sizes": ("mobilevitv2.md", v2_sizes_table()),
    }


def replace_block(text: str, name: str, table: str) -> str:
    pattern = re.compile(rf"(<!-- generated:{name} -->\n).*?(<!-- end:{name} -->)", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no <!-- generated:{name} --> ... <!-- end:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)


def update_tables(check: bool) -> list[str]:
    """Rewrite the tables (or, with check, list the stale ones)."""
    stale = []
    for name, (file, table) in generated_tables().items():
        path = ROOT / "docs" / file
        text = path.read_text(encoding="utf-8")
        new = replace_block(text, name, table)
        if new != text:
            stale.append(f"docs/{file}: {name}")
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale


# ------------------------------------------------------------------ figures


def fig_patch_groups():
    return viz.plot_patch_groups(8, 8, 2)


def fig_feature_maps(trace):
    return viz.plot_feature_maps(
        trace["encoder.layer.1.layer.2"], channels=16, ncols=8, title="encoder.layer.1 output: 16 of 64 channels"
    )


def fig_attention(image, attentions):
    return viz.plot_attention(
        image, attentions[0], patch_size=2, query=CAT_HEAD, head=0, title="encoder.layer.2, transformer layer 0"
    )


def fig_segmentation():
    model = segmenter()
    pixel_values = cats_pixel_values(SEGMENTER_PROCESSOR)
    logits = model(pixel_values).logits  # (1, 21, 32, 32)
    mask = logits[0].argmax(axis=0)
    return viz.plot_segmentation(viz.image_from_pixel_values(pixel_values), mask, model.config.id2label)


def fig_top5(logits, id2label):
    return viz.plot_top_k(logits, id2label, k=5, title="top 5 (random weights: the labels are placeholders)")


def fig_stages(image, trace, pixel_values):
    """The image, then the mean |activation| of each encoder layer's output, at its own size."""
    names = ["conv_stem", "encoder.layer.0.layer.0", "encoder.layer.1.layer.2"] + [
        f"encoder.layer.{n}.fusion" for n in (2, 3, 4)
    ]
    fig = figure(14, 2.5)
    axes = fig.subplots(1, len(names) + 1)
    axes[0].imshow(image)
    axes[0].set_title(f"input {tuple(pixel_values.shape)}", fontsize=8)
    for ax, name in zip(axes[1:], names, strict=True):
        ax.imshow(np.abs(trace[name][0]).mean(axis=0), cmap="magma")
        ax.set_title(f"{name}\n{tuple(trace[name].shape)}", fontsize=8)
    for ax in axes:
        ax.set_axis_off()
    return fig


def fig_shapes_classifier() -> dict:
    """The trained shapes classifier on a cross: its top 5, its feature maps, and where attention looks."""
    model, pixel_values = shapes_model(MobileViTForImageClassification, "shapes-classifier")
    image = viz.image_from_pixel_values(pixel_values)
    trace = model.trace(pixel_values, output_attentions=True)
    probs = trace.output.attentions[0]  # encoder.layer.2, transformer layer 0: (4, 4, 64, 64) on a 16x16 map
    query = tuple(np.argwhere(shapes.draw("test", SHAPES_TEST_INDEX)[2] > 0).mean(axis=0))  # the cross's centre
    return {
        "shapes_top5": viz.plot_top_k(
            trace.output.logits, model.config.id2label, k=5, title="shapes-classifier (trained on drawn shapes): top 5"
        ),
        "shapes_feature_maps": viz.plot_feature_maps(
            trace["encoder.layer.1.layer.1"],
            channels=16,
            ncols=8,
            title=f"shapes-classifier ({TRAINED_ON}): encoder.layer.1, 16 of 24 channels",
        ),
        "shapes_attention": viz.plot_attention(
            image, probs, patch_size=2, query=query, head=0, title=f"shapes-classifier ({TRAINED_ON})"
        ),
    }


def fig_shapes_examples():
    """The example images (the first test image of each class) with their true masks beneath."""
    paths = sorted(SHAPES_IMAGE.parent.glob("*.png"))
    fig = figure(len(paths) * 1.3, 2.9)
    axes = fig.subplots(2, len(paths))
    for column, path in enumerate(paths):
        index, name = path.stem.split("_", 1)
        image, _, mask = shapes.draw("test", int(index))
        axes[0, column].imshow(image)
        axes[0, column].set_title(f"test {int(index)}: {name}", fontsize=8)
        axes[1, column].imshow(mask, cmap="tab20", vmin=0, vmax=19, interpolation="nearest")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle("tools/shapes.py: test images and their masks (0 background, 1-10 the shape's class)", fontsize=9)
    return fig


def fig_shapes_segmentation():
    """The trained shapes segmenter's mask over its test image."""
    model, pixel_values = shapes_model(MobileViTForSemanticSegmentation, "shapes-segmenter")
    logits = model(pixel_values).logits  # (1, 11, 16, 16)
    processor = MobileViTImageProcessor.from_pretrained(SHAPES_MODELS / "shapes-segmenter")
    mask = processor.post_process_semantic_segmentation(logits, target_sizes=[pixel_values.shape[2:]])[0]
    return viz.plot_segmentation(
        viz.image_from_pixel_values(pixel_values),
        mask,
        model.config.id2label,
        title=f"shapes-segmenter ({TRAINED_ON})",
    )


def fig_im2col():
    """A 5x5 map, a 3x3 kernel with padding 1: im2col makes one column per output pixel."""
    x = np.arange(1, 26, dtype=np.float64).reshape(1, 1, 5, 5)  # pixel values 1..25; padding reads 0
    cols = im2col(x, kernel=3, stride=1, padding=1, dilation=1)[0, 0].reshape(9, 25)  # (k*k, Ho*Wo)
    padded = np.pad(x[0, 0], 1)
    y0, x0 = 1, 2  # the output pixel highlighted: its window and its column
    fig = figure(12, 4)
    left, right = fig.subplots(1, 2, width_ratios=[7, 25])
    left.imshow(padded > 0, cmap="Greys", vmin=-1, vmax=3)
    for (i, j), v in np.ndenumerate(padded):
        left.text(j, i, str(int(v)) if v else "·", ha="center", va="center", fontsize=8)
    left.add_patch(_rectangle(x0 - 0.5, y0 - 0.5, 3, 3))
    left.set_title("input 5x5 (values 1..25), padding · = 0\nwindow of output pixel (1, 2)", fontsize=9)
    right.imshow(np.zeros_like(cols), cmap="Greys", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cols):
        right.text(j, i, str(int(v)) if v else "·", ha="center", va="center", fontsize=7)
    right.add_patch(_rectangle(y0 * 5 + x0 - 0.5, -0.5, 1, 9))
    right.set_title("im2col: (C*k*k, Ho*Wo) = (9, 25); the conv is weight (O, 9) @ this", fontsize=9)
    right.set_xlabel("output pixel y*Wo + x")
    right.set_ylabel("kernel tap i*k + j")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _rectangle(x, y, width, height):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), width, height, fill=False, edgecolor="tab:red", lw=2.5)


def fig_batch_norm_folding(model, pixel_values):
    stem = model.params["mobilevit"]["conv_stem"]
    reference = batch_norm(
        conv2d(pixel_values, stem["convolution"]["weight"], None, 2, 1), **stem["normalization"], eps=BATCH_NORM_EPS
    )
    weight, bias = fold_batch_norm(stem["convolution"]["weight"], None, stem["normalization"])
    folded = conv2d(pixel_values, weight, bias, 2, 1)
    diff = np.abs(folded - reference).max()
    fig = figure(5, 4.5)
    ax = fig.subplots()
    sample = np.random.RandomState(0).choice(reference.size, 4000, replace=False)
    ax.scatter(reference.reshape(-1)[sample], folded.reshape(-1)[sample], s=2, alpha=0.4)
    ax.set_xlabel("batch_norm(conv2d(x, W))")
    ax.set_ylabel("conv2d(x, W', b')  (folded)")
    ax.set_title(f"conv_stem on the cats image: max |difference| = {diff:.1e}", fontsize=9)
    return fig


def fig_inverted_residual(model, pixel_values):
    """Channel width through encoder.layer.1.layer.1: 64 -> 256 -> 256 -> 64, plus the skip."""
    p = model.params["mobilevit"]
    trace = model.trace(pixel_values)
    x = trace["encoder.layer.1.layer.0"]  # the block's input
    block = p["encoder"]["layer"][1]["layer"][1]
    act = get_activation(model.config.hidden_act)
    h1 = conv_layer(x, **block["expand_1x1"], activation=act)
    h2 = conv_layer(h1, **block["conv_3x3"], activation=act)
    h3 = conv_layer(h2, **block["reduce_1x1"])
    steps = [("input", x), ("expand_1x1\n1x1 conv + SiLU", h1), ("conv_3x3\ndepthwise + SiLU", h2),
             ("reduce_1x1\n1x1 conv, linear", h3), ("+ input", x + h3)]  # fmt: skip
    fig = figure(10, 3.4)
    ax = fig.subplots()
    widths = [s[1].shape[1] for s in steps]
    ax.bar(range(len(steps)), widths, color=["tab:grey", "tab:orange", "tab:orange", "tab:blue", "tab:green"])
    for i, (_, arr) in enumerate(steps):
        ax.text(i, widths[i] + 4, str(tuple(arr.shape)), ha="center", fontsize=8)
    ax.set_xticks(range(len(steps)), [s[0] for s in steps], fontsize=8)
    ax.set_ylabel("channels")
    ax.set_ylim(0, max(widths) * 1.2)
    ax.set_title("encoder.layer.1.layer.1: narrow -> wide -> narrow (expand_ratio 4)", fontsize=9)
    np.testing.assert_array_equal(x + h3, trace["encoder.layer.1.layer.1"])  # the figure shows the real block
    return fig


def fig_attention_heads(attentions):
    """The 4 heads of encoder.layer.4's first transformer layer: (16 patches x 16 patches) each."""
    probs = attentions[6][0]  # layers 0-1 are layer_3, 2-5 layer_4, 6-8 layer_5; sequence 0 = offset (0, 0)
    fig = figure(12, 3.4)
    axes = fig.subplots(1, probs.shape[0])
    for head, ax in enumerate(axes):
        image = ax.imshow(probs[head], cmap="viridis", vmin=0)
        ax.set_title(f"head {head}", fontsize=9)
        ax.set_xticks([0, 5, 10, 15])
        ax.set_yticks([0, 5, 10, 15])
        ax.set_xlabel("key patch")
    axes[0].set_ylabel("query patch")
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    fig.suptitle("softmax(Q K^T / sqrt(d)) of encoder.layer.4, transformer layer 0, sequence 0: each row sums to 1")
    return fig


def fig_dilation():
    """Which pixels of a 32x32 map one 3x3 kernel reads at dilation 1, 6, 12 and 18 (im2col on pixel indices)."""
    size, centre = 32, (16, 16)
    index = np.arange(size * size, dtype=np.float64).reshape(1, 1, size, size) + 1  # +1: padding reads 0
    fig = figure(12, 3.4)
    axes = fig.subplots(1, 4)
    for ax, rate in zip(axes, (1, 6, 12, 18), strict=True):
        cols = im2col(index, kernel=3, stride=1, padding=rate, dilation=rate)[0, 0]  # (9, 32, 32)
        taps = cols[:, centre[0], centre[1]]  # the 9 pixels read for the centre output
        seen = np.zeros(size * size)
        seen[taps[taps > 0].astype(np.int64) - 1] = 1
        ax.imshow(seen.reshape(size, size), cmap="Blues", vmin=0, vmax=1.3)
        ax.plot([centre[1]], [centre[0]], "r+", markersize=10)
        ax.set_title(f"dilation {rate}: {int((taps > 0).sum())} of 9 taps on the map", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("ASPP's 3x3 branches on a 32x32 map (output stride 16 at 512x512)")
    return fig


def fig_preprocessing():
    """The processor's steps on the cats photo, and what a model sees if the channels are not flipped."""
    from mobilevit_np.image_processing import center_crop, flip_channel_order, resize, shortest_edge_size

    original = np.asarray(load_image(CATS)).transpose(2, 0, 1)  # (3, 480, 640) RGB uint8
    resized = resize(original, shortest_edge_size(*original.shape[1:], 288), resample=2)
    cropped = center_crop(resized, (256, 256))
    bgr = flip_channel_order(cropped)
    panels = [
        (original, f"file: {original.shape[2]}x{original.shape[1]} RGB"),
        (resized, f"shortest edge 288: {resized.shape[2]}x{resized.shape[1]}"),
        (cropped, "center crop 256x256"),
        (bgr, "BGR: the array the model reads,\ndisplayed as if RGB"),
    ]
    fig = figure(13, 3.6)
    axes = fig.subplots(1, 4, width_ratios=[p[0].shape[2] / p[0].shape[1] for p in panels])
    for ax, (array, title) in zip(axes, panels, strict=True):
        ax.imshow(array.transpose(1, 2, 0))
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig


def fig_v2_context_scores(pixel_values):
    """Context scores of mobilevitv2-1.0 (random weights) in layer_3, layer_4 and layer_5, offset (0, 0)."""
    config = MobileViTV2Config(num_labels=1000)
    model = MobileViTV2ForImageClassification.from_config(config, random_state_dict(config, "classification", seed=0))
    trace = model.trace(pixel_values)
    scores = {
        f"encoder.layer.{n}, layer 0": trace[f"encoder.layer.{n}.transformer.layer.0.context_scores"] for n in (2, 3, 4)
    }
    title = "MobileViTV2-1.0 context scores, pixel offset (0, 0) (RANDOM weights: the pattern is not learned)"
    return viz.plot_context_scores(viz.image_from_pixel_values(pixel_values), scores, title=title)


def attention_operands(n: int, width: int = 128, seed: int = 0):
    """One sequence of n tokens of width d for both attentions, with random projections (float32).

    v1: x (1, n, d), query/key/value linears, 4 heads. v2: x (1, d, 1, n), qkv and out 1x1 convs.
    """
    rng = np.random.RandomState(seed)
    w = lambda *shape: rng.normal(0, width**-0.5, shape).astype(np.float32)  # noqa: E731
    tokens = rng.normal(size=(1, n, width)).astype(np.float32)
    v1 = {name: {"weight": w(width, width), "bias": w(width)} for name in ("query", "key", "value")}
    v2 = {
        "qkv_proj": {"convolution": {"weight": w(1 + 2 * width, width, 1, 1), "bias": w(1 + 2 * width)}},
        "out_proj": {"convolution": {"weight": w(width, width, 1, 1), "bias": w(width)}},
    }
    return tokens, v1, np.ascontiguousarray(tokens.transpose(0, 2, 1)[:, :, None]), v2


def best_time(function, repeats: int) -> float:
    import time

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


PATCH_COUNTS = [16, 64, 256, 1024, 2048, 4096]  # mobilevit at 256x256: 256, 64, 16 patches per layer


def fig_attention_cost():
    """Measured time of one attention call, v1 (multi-head, 4 heads) vs v2 (separable), d = 128."""
    v1_times, v2_times = [], []
    for n in PATCH_COUNTS:
        x1, p1, x2, p2 = attention_operands(n)
        repeats = 3 if n >= 2048 else 10
        v1_times.append(best_time(lambda x1=x1, p1=p1: multi_head_attention(x1, **p1, num_heads=4), repeats))
        v2_times.append(best_time(lambda x2=x2, p2=p2: separable_self_attention(x2, **p2), repeats))
    fig = figure(7, 4.5)
    ax = fig.subplots()
    ax.loglog(PATCH_COUNTS, np.array(v1_times) * 1e3, "o-", label="v1 multi_head_attention (4 heads): N x N scores")
    ax.loglog(PATCH_COUNTS, np.array(v2_times) * 1e3, "s-", label="v2 separable_self_attention: N scores")
    for times in (v1_times, v2_times):
        ax.annotate(f"{times[-1] * 1e3:.1f} ms", (PATCH_COUNTS[-1], times[-1] * 1e3), textcoords="offset points",
                    xytext=(-10, 8), ha="right", fontsize=8)  # fmt: skip
    ax.set_xlabel("number of patches N (tokens per sequence)")
    ax.set_ylabel("time per call, ms (best of 3-10, float32, NumPy)")
    ax.set_title("attention cost, width d = 128, one sequence (measured)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    print("attention cost (ms): " + ", ".join(
        f"N={n}: v1 {a * 1e3:.2f} v2 {b * 1e3:.2f}" for n, a, b in zip(PATCH_COUNTS, v1_times, v2_times, strict=True)
    ))  # fmt: skip
    return fig


def make_figures() -> list[Path]:
    FIGURES.mkdir(parents=True, exist_ok=True)
    model = classifier()
    pixel_values = cats_pixel_values(CLASSIFIER_PROCESSOR)
    image = viz.image_from_pixel_values(pixel_values)
    trace = model.trace(pixel_values, output_attentions=True)
    attentions = trace.output.attentions
    figures = {
        "patch_groups": fig_patch_groups(),
        "stages": fig_stages(image, trace, pixel_values),
        "feature_maps": fig_feature_maps(trace),
        "attention": fig_attention(image, attentions),
        "attention_heads": fig_attention_heads(attentions),
        "top5": fig_top5(trace.output.logits, model.config.id2label),
        "segmentation": fig_segmentation(),
        "im2col": fig_im2col(),
        "batch_norm_folding": fig_batch_norm_folding(model, pixel_values),
        "inverted_residual": fig_inverted_residual(model, pixel_values),
        "dilation": fig_dilation(),
        "preprocessing": fig_preprocessing(),
        "shapes_examples": fig_shapes_examples(),
        **fig_shapes_classifier(),
        "shapes_segmentation": fig_shapes_segmentation(),
        "v2_context_scores": fig_v2_context_scores(pixel_values),
        "attention_cost": fig_attention_cost(),
    }
    written = []
    for name, fig in figures.items():
        path = FIGURES / f"{name}.png"
        fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: reruns give the same bytes
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the generated tables; write nothing")
    parser.add_argument("--tables-only", action="store_true", help="refresh the tables, skip the figures")
    args = parser.parse_args(argv)
    stale = update_tables(check=args.check)
    if args.check:
        for entry in stale:
            print(f"stale: {entry} (run python tools/make_figures.py)")
        return 1 if stale else 0
    for entry in stale:
        print(f"updated table {entry}")
    if not args.tables_only:
        for path in make_figures():
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
