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
import warnings

import numpy as np

from mobilevit_np.backends import BACKENDS
from mobilevit_np.loading import load_model, load_processor

PROG = "mobilevit-np"
BACKEND_HELP = "numpy (the reference, default), numba (the fast path, the `fast` extra) or auto (numba when installed)"


# ---------------------------------------------------------------- loading


class CLIError(Exception):
    """A problem the user can fix; printed as one line."""


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


def cmd_classify(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise CLIError(f"--top-k must be at least 1, got {args.top_k}")
    if args.output or args.scheduler or args.scheduler_file:
        return run_bulk(args, "classify")
    failed = 0
    results = []
    for row in predicted_rows(args, "classify"):
        failed += "error" in row
        if args.json:
            results.append(row)  # printed at the end as one JSON document
        elif "error" in row:
            print(f"{PROG}: error: {row['error']}", file=sys.stderr)
        else:
            print(row["image"])
            for p in row["predictions"]:
                print(f"  {p['rank']:>2}. {p['probability']:.4f}  {p['label']}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failed else 0  # 1: at least one image has an error entry instead of a result


def predicted_rows(args: argparse.Namespace, task: str):
    """One row per input, streamed (results printed as they come), with a progress bar on a terminal."""
    from mobilevit_np.bulk import expand_inputs, iter_predictions
    from mobilevit_np.progress import progress_bar

    paths = expand_inputs(args.images)
    options = dict(batch_size=args.batch_size, top_k=getattr(args, "top_k", 5), backend=args.backend)
    with progress_bar(len(paths), args.quiet) as bar:
        for row in iter_predictions(paths, args.model, task, masks_dir=getattr(args, "masks_dir", None), **options):
            bar.update(1)
            yield row


def run_bulk(args: argparse.Namespace, task: str) -> int:
    """--output (and --scheduler): a resumable run into a rows file or folder; 0 once every input has a row."""
    from mobilevit_np.bulk import predict_files
    from mobilevit_np.bulk.run import print_summary

    if not args.output:
        raise CLIError("--scheduler needs --output: a .jsonl/.parquet file or a folder for the rows")
    summary = predict_files(
        args.images,
        args.model,
        args.output,
        task,
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        top_k=getattr(args, "top_k", 5),
        masks_dir=getattr(args, "masks_dir", None),
        backend=args.backend,
        output_format=args.format,
        quiet=args.quiet,
        scheduler=args.scheduler,
        scheduler_file=args.scheduler_file,
    )
    if not args.quiet:
        print_summary(summary)
    return 0


def print_rows(rows) -> int:
    """Rows as JSON lines on stdout; 1 if any image failed."""
    failed = 0
    for row in rows:
        failed += "error" in row
        print(json.dumps(row), flush=True)
    return 1 if failed else 0


def cmd_segment(args: argparse.Namespace) -> int | None:
    from mobilevit_np.files import check_destination
    from mobilevit_np.image_processing import load_image
    from mobilevit_np.modeling import MobileViTForSemanticSegmentation
    from mobilevit_np.palette import colorize, overlay
    from mobilevit_np.postprocess import outside_label, segment_image

    if (args.scheduler or args.scheduler_file) and not args.masks_dir:
        raise CLIError("a segment run on Dask needs --masks-dir (the masks) and --output (the rows)")
    if args.masks_dir:
        return run_bulk(args, "segment") if args.output else print_rows(predicted_rows(args, "segment"))
    if len(args.images) > 1:
        raise CLIError("several images need --masks-dir DIR (the masks) and --output rows.jsonl (the rows)")
    args.image = args.images[0]
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
    from mobilevit_np.config_v2 import load_config
    from mobilevit_np.presets import PRESET_NAMES, V2_WIDTHS, preset_config
    from mobilevit_np.summary import architecture_summary, format_summary

    if args.model in PRESET_NAMES:
        head = args.head or "classification"
        config = preset_config(args.model, head)
        name = f"MobileViTV2-{V2_WIDTHS[args.model]}" if args.model in V2_WIDTHS else f"MobileViT-{args.model}"
        source = f"{name} ({head}, built-in config, no weights)"
    else:
        if not os.path.isdir(args.model) and not is_hub_id(args.model):
            raise CLIError(f"unknown model {args.model!r}: not a folder, a Hub id, or one of {', '.join(PRESET_NAMES)}")
        folder = resolve_checkpoint(args.model, weights=False)  # a Hub id: config.json alone
        config = load_config(folder)
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


INPUTS_HELP = "image files, http(s) URLs, folders (recursive), globs, @list.txt files or fsspec URLs"


def bulk_arguments() -> argparse.ArgumentParser:
    """Options of classify and segment for many images (mobilevit_np.bulk)."""
    bulk = argparse.ArgumentParser(add_help=False)
    bulk.add_argument("--batch-size", type=int, default=8, help="images per model call (default 8)")
    bulk.add_argument("--shard-size", type=int, default=256, help="rows per shard file: the unit of resume and of Dask")
    bulk.add_argument("--format", choices=["jsonl", "parquet"], help="rows format of a folder --output")
    bulk.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    bulk.add_argument("--scheduler", help="run on Dask: local:N (a local cluster of N workers) or tcp://host:port")
    bulk.add_argument("--scheduler-file", help="run on the Dask cluster this scheduler file describes")
    return bulk


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="MobileViT in plain NumPy: classify, segment, summarise, convert."
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    # --debug is accepted after the command too; SUPPRESS keeps the subcommand from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bulk = bulk_arguments()

    p = sub.add_parser("classify", parents=[common, bulk], help="top-k ImageNet labels for images")
    p.add_argument("images", nargs="+", metavar="INPUT", help=INPUTS_HELP)
    p.add_argument("--model", required=True, help="checkpoint folder or Hub id (e.g. apple/mobilevit-small)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help=BACKEND_HELP)
    p.add_argument("--json", action="store_true", help="print the predictions as JSON")
    p.add_argument("--output", "-o", help="write rows here (.jsonl, .parquet or a folder): a resumable bulk run")
    p.set_defaults(run=cmd_classify)

    p = sub.add_parser("segment", parents=[common, bulk], help="class mask and colour overlay for an image")
    p.add_argument("images", nargs="+", metavar="INPUT", help=f"{INPUTS_HELP} (several need --masks-dir)")
    p.add_argument("--model", required=True, help="segmentation checkpoint folder or Hub id")
    p.add_argument("--output", "--out", "-o", help="write the class mask here (palette PNG, value = class index)")
    p.add_argument("--overlay", help="write the image with the mask's colours blended in")
    p.add_argument("--masks-dir", help="bulk run: one mask PNG per image here; --output then names the rows file")
    p.add_argument("--force", action="store_true", help="overwrite existing output files (never the input image)")
    p.add_argument("--backend", choices=BACKENDS, default="numpy", help=BACKEND_HELP)
    p.set_defaults(run=cmd_segment)

    p = sub.add_parser("summary", parents=[common], help="architecture table: shapes, parameters, MACs")
    p.add_argument(
        "--model", required=True, help="small, x-small, xx-small, v2-0.5 .. v2-2.0, a checkpoint folder or a Hub id"
    )
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
            return args.run(args) or 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mobilevit-np classify ... | head -1`: the reader has gone, as for any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush is silent too
        return 128 + signal.SIGPIPE
    except Exception as error:
        if args.debug:
            raise
        if getattr(args, "json", False):  # stdout stays one JSON document, even when the run fails
            print(json.dumps({"error": _error_lines(error)}))
        print(f"{PROG}: error: {_error_lines(error)}", file=sys.stderr)
        return 1
