"""The `mobilevit-np` command (also `python -m mobilevit_np`).

    mobilevit-np classify cats.png --model apple/mobilevit-small --top-k 5
    mobilevit-np segment street.jpg --model ./deeplabv3-mobilevit-small --output mask.png --overlay overlay.png
    mobilevit-np summary --model small --image-size 256
    mobilevit-np convert pytorch_model.bin model.safetensors

--model takes a local checkpoint folder or a Hub id (owner/name; needs the `hub` extra).
Errors print one line and exit with status 1 (2 for bad arguments); --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

import numpy as np

from mobilevit_np.backends import BACKENDS

if TYPE_CHECKING:  # imported lazily below, so that `mobilevit-np --help` starts fast
    from mobilevit_np.image_processing import MobileViTImageProcessor
    from mobilevit_np.modeling import _Model

PROG = "mobilevit-np"
BACKEND_HELP = "numpy (the reference, default), numba (the fast path, the `fast` extra) or auto (numba when installed)"


# ---------------------------------------------------------------- progress


class Progress:
    """A one-line bar on stderr, drawn only when stderr is a terminal and there is more than one item."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.done, self.width = total, 0, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = total > 1 and self.stream.isatty()
        self.start = time.perf_counter()

    def advance(self) -> None:
        self.done += 1
        if self.enabled:
            filled = self.width * self.done // self.total
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} images, {rate:.1f}/s")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def with_progress(items: list, stream: TextIO | None = None) -> Iterable:
    progress = Progress(len(items), stream)
    for item in items:
        yield item
        progress.advance()


# ---------------------------------------------------------------- loading


class CLIError(Exception):
    """A problem the user can fix; printed as one line."""


def load_model(cls: type[_Model], model: str, backend: str = "numpy") -> tuple[_Model, str]:
    """Resolve --model (folder or Hub id), check the checkpoint's head, and load it."""
    from mobilevit_np.auto import checkpoint_head
    from mobilevit_np.checkpoints.hub import resolve_checkpoint
    from mobilevit_np.config import MobileViTConfig

    folder = resolve_checkpoint(model)
    config = MobileViTConfig.from_pretrained(folder)
    head = checkpoint_head(folder, config)
    if head is not None and head != cls.head:
        command = "segment" if head == "segmentation" else "classify"
        raise CLIError(f"{model} is a {head} checkpoint; use `{PROG} {command}` for it")
    if config.num_labels == 0:  # transformers then puts an identity where the classifier would be
        raise CLIError(f"{folder}/config.json has no labels (num_labels 0): the model outputs features, not classes")
    return cls.from_pretrained(folder, backend=backend, config=config), folder


def load_processor(folder: str) -> MobileViTImageProcessor:
    """The checkpoint's preprocessor_config.json, or the documented defaults (with a note) if it has none."""
    from mobilevit_np.image_processing import PREPROCESSOR_CONFIG, MobileViTImageProcessor

    if os.path.isfile(os.path.join(folder, PREPROCESSOR_CONFIG)):
        return MobileViTImageProcessor.from_pretrained(folder)
    processor = MobileViTImageProcessor()
    crop = processor.crop_size
    defaults = f"shortest edge {processor.size['shortest_edge']}, crop {crop['height']}x{crop['width']}, bilinear"
    print(f"{PROG}: note: no {PREPROCESSOR_CONFIG} in {folder}; using the defaults ({defaults})", file=sys.stderr)
    return processor


def _check_images(paths: list[str]) -> None:
    from mobilevit_np.image_processing import check_image_file
    from mobilevit_np.image_sources import is_url

    for path in paths:
        if not is_url(path):
            check_image_file(path)


def _image_format(path: str, option: str, formats: tuple[str, ...] | None = None) -> str:
    """The Pillow format an output path's extension names, checked before anything is computed."""
    from PIL import Image

    if os.path.isdir(path):
        raise CLIError(f"{option} {path} is a folder; give a file name, such as {os.path.join(path, 'mask.png')}")
    extension = os.path.splitext(path)[1].lower()
    found = Image.registered_extensions().get(extension)
    if formats is not None and found not in formats:
        raise CLIError(f"{option} {path}: the mask keeps one class index per pixel, so it is a PNG; name it .png")
    if found is None or found not in Image.SAVE:
        raise CLIError(f"{option} {path}: {extension or 'no extension'} is not an image format Pillow writes")
    return found


def _save_image(image, path: str, image_format: str, args: argparse.Namespace) -> None:
    from mobilevit_np.files import write_atomically

    write_atomically(path, lambda tmp: image.save(tmp, format=image_format), args.force, sources=[args.image])


# ---------------------------------------------------------------- commands


def cmd_classify(args: argparse.Namespace) -> None:
    from mobilevit_np.image_processing import load_image
    from mobilevit_np.modeling import MobileViTForImageClassification
    from mobilevit_np.postprocess import top_k_classes

    if args.top_k < 1:
        raise CLIError(f"--top-k must be at least 1, got {args.top_k}")
    _check_images(args.images)
    model, folder = load_model(MobileViTForImageClassification, args.model, args.backend)
    processor = load_processor(folder)
    labels = model.config.id2label
    results = []
    for path in with_progress(args.images):
        logits = model(processor(load_image(path))["pixel_values"]).logits[0]  # (num_labels,)
        top, probs = top_k_classes(logits, args.top_k)
        predictions = [
            {"rank": r + 1, "index": int(i), "label": labels[int(i)], "probability": float(p)}
            for r, (i, p) in enumerate(zip(top, probs, strict=True))
        ]
        results.append({"image": path, "predictions": predictions})
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for result in results:
        print(result["image"])
        for p in result["predictions"]:
            print(f"  {p['rank']:>2}. {p['probability']:.4f}  {p['label']}")


def cmd_segment(args: argparse.Namespace) -> None:
    from mobilevit_np.files import check_destination
    from mobilevit_np.image_processing import load_image
    from mobilevit_np.modeling import MobileViTForSemanticSegmentation
    from mobilevit_np.palette import colorize, overlay
    from mobilevit_np.postprocess import outside_label, segment_image

    _check_images([args.image])
    # Every output is checked before the model runs: its folder, its format, what it would replace.
    if args.output and args.overlay and os.path.abspath(args.output) == os.path.abspath(args.overlay):
        raise CLIError(f"--output and --overlay are both {args.output}")
    formats = {}
    for option, path, allowed in (("--output", args.output, ("PNG",)), ("--overlay", args.overlay, None)):
        if path:
            formats[option] = _image_format(path, option, allowed)
            check_destination(path, args.force, sources=[args.image])
    model, folder = load_model(MobileViTForSemanticSegmentation, args.model, args.backend)
    processor = load_processor(folder)
    image = load_image(args.image)
    try:
        mask = segment_image(model, processor, image)  # (H, W) at the image's size
    except ValueError as e:
        raise CLIError(f"{args.image}: {e}") from None
    outside = outside_label(model.config.num_labels)
    if args.output:  # palette PNG (16-bit grey from 256 classes on): pixel values are the class indices
        _save_image(colorize(mask), args.output, formats["--output"], args)
    if args.overlay:
        _save_image(overlay(image, mask, outside=outside), args.overlay, formats["--overlay"], args)
    labels = {**model.config.id2label, outside: "(outside the center crop: not predicted)"}
    classes, counts = np.unique(mask, return_counts=True)
    print(f"{args.image}: {mask.shape[1]}x{mask.shape[0]} pixels")
    for i in np.argsort(-counts, kind="stable"):
        print(f"  {counts[i] / mask.size:7.2%}  {classes[i]:>3}  {labels.get(int(classes[i]), '?')}")
    for name, path in (("mask", args.output), ("overlay", args.overlay)):
        if path:
            print(f"wrote {name}: {path}")


def cmd_summary(args: argparse.Namespace) -> None:
    from mobilevit_np.auto import checkpoint_head
    from mobilevit_np.checkpoints.hub import is_hub_id, resolve_checkpoint
    from mobilevit_np.config import MobileViTConfig
    from mobilevit_np.presets import PRESETS, preset_config
    from mobilevit_np.summary import architecture_summary, format_summary

    if args.model in PRESETS:
        head = args.head or "classification"
        config = preset_config(args.model, head)
        source = f"MobileViT-{args.model} ({head}, built-in config, no weights)"
    else:
        if not os.path.isdir(args.model) and not is_hub_id(args.model):
            raise CLIError(f"unknown model {args.model!r}: not a folder, a Hub id, or one of {', '.join(PRESETS)}")
        folder = resolve_checkpoint(args.model, weights=False)  # a Hub id: config.json alone
        config = MobileViTConfig.from_pretrained(folder)
        head = args.head or checkpoint_head(folder, config) or "classification"
        source = f"{args.model} ({head})"
    size = config.image_size if args.image_size is None else args.image_size
    if size < 1:
        raise CLIError(f"--image-size must be positive, got {size}")
    print(format_summary(architecture_summary(config, head, size), title=f"{source}, input 3x{size}x{size}"))


def cmd_convert(args: argparse.Namespace) -> None:
    from mobilevit_np.checkpoints.torch_pickle import convert

    if not os.path.isfile(args.source):
        raise CLIError(f"file not found: {args.source}")
    out = convert(args.source, args.destination, overwrite=args.force)
    print(f"wrote {out}")


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="MobileViT in plain NumPy: classify, segment, summarise, convert."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    # --debug is accepted after the command too; SUPPRESS keeps the subcommand from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("classify", parents=[common], help="top-k ImageNet labels for images")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or http(s) URLs")
    p.add_argument("--model", required=True, help="checkpoint folder or Hub id (e.g. apple/mobilevit-small)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("segment", parents=[common], help="class mask and colour overlay for an image")
    p.add_argument("image", metavar="IMAGE", help="an image file or http(s) URL")
    p.add_argument("--model", required=True, help="segmentation checkpoint folder or Hub id")
    p.add_argument("--output", "--out", "-o", help="write the class mask here (palette PNG, value = class index)")
    p.add_argument("--overlay", help="write the image with the mask's colours blended in")
    p.add_argument("--force", action="store_true", help="overwrite existing output files (never the input image)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help=BACKEND_HELP)
    p.set_defaults(run=cmd_segment)

    p = sub.add_parser("summary", parents=[common], help="architecture table: shapes, parameters, MACs")
    p.add_argument("--model", required=True, help="small, x-small, xx-small, a checkpoint folder or a Hub id")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the config's)")
    p.add_argument("--head", choices=["classification", "segmentation", "base"], default=None)
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("convert", parents=[common], help="pytorch_model.bin -> model.safetensors, without torch")
    p.add_argument("source", metavar="PYTORCH_MODEL_BIN")
    p.add_argument("destination", metavar="MODEL_SAFETENSORS")
    p.add_argument("--force", action="store_true", help="overwrite the destination")
    p.set_defaults(run=cmd_convert)
    return parser


MAX_ERROR_LINES = 20  # an error that lists problems (e.g. every mismatched tensor) shows this many


def _error_lines(error: BaseException) -> str:
    """The error's message: its first MAX_ERROR_LINES lines (a list of problems is shown, not summarised)."""
    lines = str(error).strip().splitlines() or [type(error).__name__]
    if len(lines) > MAX_ERROR_LINES:
        hidden = len(lines) - MAX_ERROR_LINES
        lines = [*lines[:MAX_ERROR_LINES], f"  ... and {hidden} more line{'s' * (hidden > 1)} (--debug shows all)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.debug:  # huggingface_hub's retry chatter ("Trying to resume download...") would bury the error line
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")  # read when huggingface_hub is first imported

    def note(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: note: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():  # restores the caller's warnings.showwarning when the command ends
            warnings.showwarning = note  # library warnings (e.g. "converted pytorch_model.bin") as one line
            args.run(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mobilevit-np classify ... | head -1`: the reader has gone, as for any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush is silent too
        return 128 + signal.SIGPIPE
    except Exception as error:
        if args.debug:
            raise
        print(f"{PROG}: error: {_error_lines(error)}", file=sys.stderr)
        return 1
    return 0
