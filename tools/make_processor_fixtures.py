"""Regenerate tests/fixtures/processor/: test images and what transformers' processor makes of them.

    python tools/make_processor_fixtures.py        # needs transformers (and Pillow, NumPy)

Writes
  images/*.png     small generated images (odd sizes, tall, wide, 10x10, grey, RGBA, palette)
                   and a label map, drawn from a fixed seed
  expected.npz     transformers' MobileViTImageProcessorPil output for each image and setting:
                   full pixel_values for the small settings; for the Apple setting (288 -> 256,
                   786 KB per image) a sha256 of the float32 bytes, mean/std/min/max and a
                   sample every 16th pixel
  (plus the versions of transformers, Pillow and NumPy that made them)

The tests (tests/test_image_processing.py) compare mobilevit_np's processor with these
without torch; tests/test_image_processing_parity.py compares against transformers live.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "processor")
CATS = os.path.join(HERE, "..", "examples", "images", "cats.png")

# name -> processor settings (transformers' current config form)
SETTINGS = {
    "apple": {"size": {"shortest_edge": 288}, "crop_size": {"height": 256, "width": 256}, "resample": 2},
    "small": {"size": {"shortest_edge": 40}, "crop_size": {"height": 32, "width": 48}, "resample": 2},
    "fixed-bicubic": {"size": {"height": 30, "width": 30}, "crop_size": {"height": 32, "width": 32}, "resample": 3},
}
FULL = ("small", "fixed-bicubic")  # settings whose whole output is stored
SAMPLE_STRIDE = 16


def _smooth_noise(rng: np.random.RandomState, height: int, width: int, channels: int) -> np.ndarray:
    """Gradients plus noise, uint8: edges for the filters to work on, but not only noise."""
    y, x = np.mgrid[0:height, 0:width]
    base = [(x * 255 / max(width - 1, 1)), (y * 255 / max(height - 1, 1)), ((x + y) % 64) * 4]
    planes = [base[c % 3] * 0.6 + rng.uniform(0, 100, (height, width)) for c in range(channels)]
    return np.clip(np.stack(planes, axis=-1), 0, 255).astype(np.uint8)


def make_images(folder: str) -> dict[str, str]:
    """Write the generated test images; returns {case name: path}."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(2024)
    images = {
        "odd": Image.fromarray(_smooth_noise(rng, 37, 53, 3)),
        "tall": Image.fromarray(_smooth_noise(rng, 203, 67, 3)),
        "wide": Image.fromarray(_smooth_noise(rng, 45, 170, 3)),
        "tiny": Image.fromarray(_smooth_noise(rng, 10, 10, 3)),
        "grey": Image.fromarray(_smooth_noise(rng, 45, 33, 1)[:, :, 0]),
        "rgba": Image.fromarray(_smooth_noise(rng, 40, 70, 4)),
        "palette": Image.fromarray(_smooth_noise(rng, 50, 41, 3)).quantize(colors=32),
    }
    labels = rng.randint(0, 21, (37, 53)).astype(np.uint8)
    labels[:5] = 0  # background, which do_reduce_labels turns into 255
    labels[-3:, :7] = 255
    images["labels"] = Image.fromarray(labels)
    paths = {}
    for name, image in images.items():
        paths[name] = os.path.join(folder, f"{name}.png")
        image.save(paths[name])
    return paths


def describe(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """What is kept of a large output: exact hash, statistics, and a strided sample."""
    pixels = np.ascontiguousarray(pixels, dtype="<f4")
    return {
        "sha256": np.array(hashlib.sha256(pixels.tobytes()).hexdigest()),
        "shape": np.array(pixels.shape),
        "stats": np.array([pixels.mean(dtype=np.float64), pixels.std(dtype=np.float64), pixels.min(), pixels.max()]),
        "sample": pixels[..., ::SAMPLE_STRIDE, ::SAMPLE_STRIDE].copy(),
    }


def main() -> None:
    import transformers
    from transformers import MobileViTImageProcessorPil

    paths = make_images(os.path.join(OUT, "images"))
    cases = {name: path for name, path in paths.items() if name != "labels"}
    cases["cats"] = CATS
    arrays: dict[str, np.ndarray] = {}
    for setting, kwargs in SETTINGS.items():
        processor = MobileViTImageProcessorPil(**kwargs)
        for case, path in cases.items():
            pixels = processor(path, return_tensors="np")["pixel_values"]  # a path: load_image, as users do
            if setting in FULL:
                arrays[f"{setting}/{case}/pixel_values"] = pixels
            else:
                arrays.update({f"{setting}/{case}/{k}": v for k, v in describe(pixels).items()})
    processor = MobileViTImageProcessorPil(**SETTINGS["small"], do_reduce_labels=True)
    out = processor(Image.open(paths["odd"]), segmentation_maps=Image.open(paths["labels"]), return_tensors="np")
    arrays["small/odd/labels"] = out["labels"]
    versions = {"transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__}
    arrays["meta"] = np.array(json.dumps({"settings": SETTINGS, "versions": versions, "sample_stride": SAMPLE_STRIDE}))
    np.savez_compressed(os.path.join(OUT, "expected.npz"), **arrays)
    size = os.path.getsize(os.path.join(OUT, "expected.npz"))
    print(f"wrote {len(arrays)} arrays ({size / 1024:.0f} KB) to {OUT} with {versions}", file=sys.stderr)


if __name__ == "__main__":
    main()
