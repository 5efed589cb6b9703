"""Train the two shapes models with torch + transformers' own MobileViT classes, and save them.

    nice -n 19 python tools/train_shapes.py            # both models, ~TIME on one busy CPU core
    python tools/train_shapes.py --steps 3 --out /tmp/x   # a smoke run (what the tests do)

Writes examples/models/shapes-classifier and examples/models/shapes-segmenter (save_pretrained:
config.json with id2label, model.safetensors, preprocessor_config.json, plus training_log.json with the
curve) and the figure docs/figures/shapes_training.png. Every step's batch is freshly drawn by
tools/shapes.py from (split "train", index), torch is seeded and single-threaded, so a rerun repeats the
run up to float noise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import shapes  # tools/shapes.py, beside this script
import torch
from transformers import (
    MobileViTConfig,
    MobileViTForImageClassification,
    MobileViTForSemanticSegmentation,
    MobileViTImageProcessor,
)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
FIGURE = ROOT / "docs" / "figures" / "shapes_training.png"

# Narrower than mobilevit-xx-small (neck 16..320, transformer 64/80/96) and 128x128 inputs.
ARCHITECTURE = dict(
    image_size=shapes.SIZE,
    neck_hidden_sizes=[16, 16, 24, 32, 48, 64, 160],
    hidden_sizes=[48, 64, 80],
    expand_ratio=2.0,
    aspp_out_channels=64,
)
# Per task: optimisation steps, batch size, peak learning rate, validation images, evaluation interval.
RECIPES = {
    "classification": dict(steps=5000, batch=24, lr=2e-3),
    "segmentation": dict(steps=3000, batch=12, lr=2e-3),
}
VALIDATION = 128
EVAL_EVERY = 100
TEST = 2000  # images of the test split scored at the end (the docs' numbers)


def config(task: str) -> MobileViTConfig:
    if task == "classification":
        return MobileViTConfig(**ARCHITECTURE, id2label=dict(enumerate(shapes.LABELS)))
    return MobileViTConfig(**ARCHITECTURE, id2label=dict(enumerate(shapes.CLASSES)), output_stride=8)


def processor() -> MobileViTImageProcessor:
    """Identity resize and crop at 128x128: the processor's output is shapes.to_pixel_values of the image."""
    size = shapes.SIZE
    return MobileViTImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})


def batch(split: str, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels, masks = shapes.make_batch(split, range(start, start + count))
    return torch.from_numpy(shapes.to_pixel_values(images)), torch.from_numpy(labels), torch.from_numpy(masks).long()


def scores(task: str, model: torch.nn.Module, split: str, count: int, chunk: int = 50) -> float:
    """Top-1 accuracy (classification) or mean IoU over the 11 classes (segmentation, at 128x128)."""
    model.eval()
    hits, intersection, union = 0, np.zeros(len(shapes.CLASSES)), np.zeros(len(shapes.CLASSES))
    with torch.no_grad():
        for start in range(0, count, chunk):
            pixels, labels, masks = batch(split, start, min(chunk, count - start))
            logits = model(pixel_values=pixels).logits
            if task == "classification":
                hits += int((logits.argmax(1) == labels).sum())
            else:
                predicted = torch.nn.functional.interpolate(logits, size=masks.shape[1:], mode="bilinear").argmax(1)
                i, u = confusion_iou(predicted.numpy(), masks.numpy())
                intersection, union = intersection + i, union + u
    model.train()
    return hits / count if task == "classification" else float(np.mean(intersection / np.maximum(union, 1)))


def confusion_iou(predicted: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class intersection and union pixel counts, (classes,) each."""
    classes = np.arange(len(shapes.CLASSES))[:, None, None, None]
    p, m = predicted[None] == classes, masks[None] == classes
    return (p & m).sum(axis=(1, 2, 3)), (p | m).sum(axis=(1, 2, 3))


def train(
    task: str, steps: int, batch_size: int, lr: float, backbone: torch.nn.Module | None = None
) -> tuple[torch.nn.Module, list]:
    """Train one model; returns it and its curve [(step, training loss, validation score, seconds)].

    backbone: a trained MobileViTModel whose weights start this model's (the segmenter starts from the classifier's,
    as DeepLabV3 starts from an ImageNet classifier); None trains from scratch.
    """
    torch.manual_seed(0)
    cls = MobileViTForImageClassification if task == "classification" else MobileViTForSemanticSegmentation
    model = cls(config(task))
    # transformers initialises every batch norm's scale from N(0, 0.02), right for fine-tuning but it leaves
    # a net trained from scratch with near-zero activations that do not learn: torch's defaults instead.
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    if backbone is not None:
        # The segmenter's backbone has no conv_1x1_exp (expand_output=False): the classifier's is left out.
        missing, unexpected = model.mobilevit.load_state_dict(backbone.state_dict(), strict=False)
        assert not missing and all(name.startswith("conv_1x1_exp.") for name in unexpected), (missing, unexpected)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    curve, losses, began = [], [], time.time()
    offset = 0 if task == "classification" else 10**7  # the two tasks see different training images
    for step in range(1, steps + 1):
        pixels, labels, masks = batch("train", offset + (step - 1) * batch_size, batch_size)
        loss = model(pixel_values=pixels, labels=labels if task == "classification" else masks).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % EVAL_EVERY == 0 or step == steps:
            score = scores(task, model, "validation", min(VALIDATION, 4 * batch_size) if steps < 10 else VALIDATION)
            curve.append((step, float(np.mean(losses)), score, time.time() - began))
            losses = []
            mean_loss, seconds = curve[-1][1], curve[-1][3]
            print(
                f"{task} step {step}/{steps}: loss {mean_loss:.4f}, validation {score:.4f}, {seconds:.0f} s", flush=True
            )
    return model.eval(), curve


def save(task: str, model: torch.nn.Module, curve: list, folder: Path, test_score: float, recipe: dict) -> None:
    model.save_pretrained(folder)
    processor().save_pretrained(folder)
    log = dict(task=task, recipe=recipe, test_images=TEST, test_score=test_score, torch=torch.__version__, curve=curve)
    (folder / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")


def plot(folders: dict[str, Path], figure: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folders = {task: folder for task, folder in folders.items() if (folder / "training_log.json").exists()}
    fig, axes = plt.subplots(1, len(folders), figsize=(4.5 * len(folders), 3.2), squeeze=False)
    for ax, (task, folder) in zip(axes[0], folders.items(), strict=True):
        log = json.loads((folder / "training_log.json").read_text())
        step, loss, score, _ = np.array(log["curve"]).T
        ax.plot(step, loss, color="tab:blue", label="training loss")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss", color="tab:blue")
        twin = ax.twinx()
        name = "accuracy" if task == "classification" else "mIoU"
        twin.plot(step, score, color="tab:orange", label=f"validation {name}")
        twin.set_ylim(0, 1)
        twin.set_ylabel(f"validation {name}", color="tab:orange")
        ax.set_title(f"{folder.name}: test {name} {log['test_score']:.3f}")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=100, metadata={"Software": None})  # no version stamp in the PNG


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="override both recipes' step counts (a smoke run)")
    parser.add_argument("--out", type=Path, default=MODELS, help="folder for the two checkpoints")
    parser.add_argument("--figure", type=Path, default=FIGURE)
    parser.add_argument("--only", choices=list(RECIPES), help="train one of the two models")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folders = {"classification": args.out / "shapes-classifier", "segmentation": args.out / "shapes-segmenter"}
    smoke = args.steps is not None
    classifier = None
    for task, recipe in RECIPES.items():
        recipe = dict(recipe, steps=args.steps or recipe["steps"])
        if args.only and task != args.only:
            continue
        if task == "segmentation" and classifier is None:  # --only segmentation: the classifier on disk
            classifier = MobileViTForImageClassification.from_pretrained(folders["classification"])
        backbone = None if task == "classification" else classifier.mobilevit
        model, curve = train(task, recipe["steps"], recipe["batch"], recipe["lr"], backbone)
        if task == "classification":
            classifier = model
        test_score = scores(task, model, "test", 2 * recipe["batch"] if smoke else TEST)
        print(f"{task}: test {'accuracy' if task == 'classification' else 'mIoU'} {test_score:.4f}", flush=True)
        save(task, model, curve, folders[task], test_score, recipe)
    plot(folders, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
