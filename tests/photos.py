"""Shared by the bulk and Dask tests: a folder of real JPEGs (and one broken file) and a tiny classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mobilevit_np import MobileViTImageProcessor
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

LABELS = {0: "tabby cat", 1: "remote control", 2: "blanket", 3: "sofa", 4: "dog"}


def write_photos(folder: Path, count: int, broken: tuple[int, ...] = ()) -> list[str]:
    """`count` JPEGs of varied sizes in folder/ and folder/sub/, in the order a folder input lists them;
    the positions in `broken` (of that list) hold a text file named .jpg instead."""
    names = [folder / ("sub" if i % 3 == 2 else "") / f"img{i:03d}.jpg" for i in range(count)]
    paths = sorted(names, key=lambda p: (str(p.parent), p.name))  # top folder first, as os.walk goes
    rng = np.random.RandomState(7)
    for position, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        if position in broken:
            path.write_text("this is not a JPEG")
        else:
            pixels = rng.randint(0, 256, (40 + position % 7 * 5, 56 + position % 5 * 6, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
    return [str(p) for p in paths]


def write_classifier(folder: Path) -> str:
    config = tiny_config(id2label=LABELS)
    save_checkpoint(folder, config, random_state_dict(config, "classification"))
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    return str(folder)


def write_segmenter(folder: Path) -> str:
    config = tiny_config(num_labels=3, output_stride=16, extra={"architectures": ["MobileViTForSemanticSegmentation"]})
    save_checkpoint(folder, config, random_state_dict(config, "segmentation", seed=1))
    MobileViTImageProcessor(size=80, crop_size=64).save_pretrained(folder)
    return str(folder)
