"""One row per image: what a bulk run computes, on one machine or on a Dask worker.

A row is a JSON-ready dict naming the image as given:

    classify  {"image": p, "predictions": [{"rank": 1, "index": 281, "label": "tabby", "probability": 0.93}, ...]}
    segment   {"image": p, "mask": "masks/00000007-street.png", "width": 640, "height": 480,
               "classes": [{"index": 0, "label": "background", "fraction": 0.71}, ...]}
    failed    {"image": p, "error": "p: truncated or corrupt image file (...)"}

`JobSpec` is the picklable recipe (it travels to Dask workers); `Predictor` is the loaded
model and processor, built once per process from it.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np
from PIL import Image

from mobilevit_np.bulk.inputs import open_image

TASKS = ("classify", "segment")
Item = tuple[int, str]  # (position in the input list, the path as given)
Row = dict[str, Any]


@dataclass
class Prepared:
    """One decoded image: its processor output (3, H, W) float32 and its own size (height, width)."""

    index: int
    path: str
    pixel_values: np.ndarray
    size: tuple[int, int]


def one_line(error: BaseException) -> str:
    """An exception as the one line an error row holds; unexpected types keep their name."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, (ValueError, OSError)) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def error_row(path: str, error: BaseException) -> Row:
    return {"image": path, "error": one_line(error)}


@dataclass(frozen=True)
class JobSpec:
    """Everything a process needs to build the same Predictor: the checkpoint and the task's options."""

    model: str  # checkpoint folder or Hub id
    task: str = "classify"
    backend: str = "numpy"
    top_k: int = 5
    masks_dir: str | None = None  # segment: where the masks go (created if missing)
    load: Callable[[str], Image.Image] = open_image  # path -> RGB image; a hook for other storage

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.task == "segment" and not self.masks_dir:
            raise ValueError("a bulk segment run needs masks_dir (--masks-dir): the folder the masks go to")

    def model_class(self) -> type:
        from mobilevit_np.modeling import MobileViTForImageClassification, MobileViTForSemanticSegmentation

        return MobileViTForImageClassification if self.task == "classify" else MobileViTForSemanticSegmentation

    def check(self) -> None:
        """Fail now if the checkpoint is missing or has the other head (config.json only: before a cluster starts)."""
        from mobilevit_np.loading import check_checkpoint

        check_checkpoint(self.model_class(), self.model)

    def build(self) -> Predictor:
        from mobilevit_np.loading import load_model, load_processor

        model, folder = load_model(self.model_class(), self.model, self.backend)
        if self.masks_dir:
            os.makedirs(self.masks_dir, exist_ok=True)
        return Predictor(self, model, load_processor(folder))


class Predictor:
    """A loaded model: items in, rows out, in input order."""

    def __init__(self, spec: JobSpec, model: Any, processor: Any) -> None:
        self.spec, self.model, self.processor = spec, model, processor

    def prepare(self, item: Item) -> Prepared | Row:
        """Read and preprocess one image (runs in a reader thread); a failure is its error row."""
        index, path = item
        try:
            image = self.spec.load(path)
            pixel_values = self.processor(image)["pixel_values"][0]  # (3, H, W)
        except Exception as error:  # any per-file failure becomes that file's row; the run goes on
            return error_row(path, error)
        return Prepared(index, path, pixel_values, (image.height, image.width))

    def predict(self, batch: list[Prepared | Row]) -> list[Row]:
        """Rows for a batch, in order; error rows pass through, the rest run as one model call."""
        ready = [p for p in batch if isinstance(p, Prepared)]
        computed = iter(self._rows(ready) if ready else [])
        return [next(computed) if isinstance(p, Prepared) else p for p in batch]

    def _rows(self, ready: list[Prepared]) -> list[Row]:
        shapes = {p.pixel_values.shape for p in ready}
        if len(shapes) > 1:  # do_center_crop=False: images differ in size, so run them one by one
            return [row for p in ready for row in self._rows([p])]
        try:
            logits = self.model(np.stack([p.pixel_values for p in ready])).logits
        except Exception as error:
            if len(ready) == 1:
                return [error_row(ready[0].path, error)]
            return [row for p in ready for row in self._rows([p])]  # find which image the model refuses
        rows = []
        for p, one in zip(ready, logits, strict=True):
            try:
                rows.append(self._classify_row(p, one) if self.spec.task == "classify" else self._segment_row(p, one))
            except Exception as error:  # e.g. a mask that cannot be written
                rows.append(error_row(p.path, error))
        return rows

    def _classify_row(self, p: Prepared, logits: np.ndarray) -> Row:
        from mobilevit_np.postprocess import top_k_classes

        labels = self.model.config.id2label
        top, probs = top_k_classes(logits, self.spec.top_k)
        predictions = [
            {"rank": r + 1, "index": int(i), "label": labels[int(i)], "probability": float(q)}
            for r, (i, q) in enumerate(zip(top, probs, strict=True))
        ]
        return {"image": p.path, "predictions": predictions}

    def _segment_row(self, p: Prepared, logits: np.ndarray) -> Row:
        from mobilevit_np.palette import colorize
        from mobilevit_np.postprocess import OUTSIDE, mask_at_image_size

        mask = mask_at_image_size(logits, p.size, self.processor)  # (H, W) class ids at the image's size
        out = os.path.join(self.spec.masks_dir, mask_name(p.index, p.path))
        tmp = f"{out}.tmp-{os.getpid()}"
        colorize(mask).save(tmp, format="PNG")
        os.replace(tmp, out)  # a mask is there whole or not at all
        labels = {**self.model.config.id2label, OUTSIDE: "(outside the center crop: not predicted)"}
        classes, counts = np.unique(mask, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        found = [
            {"index": int(classes[i]), "label": labels.get(int(classes[i]), "?"), "fraction": counts[i] / mask.size}
            for i in order
        ]
        return {"image": p.path, "mask": out, "width": p.size[1], "height": p.size[0], "classes": found}


def mask_name(index: int, path: str) -> str:
    """`00000007-street.png`: the input's position keeps names unique when folders repeat a file name."""
    stem = os.path.splitext(os.path.basename(path.rstrip("/")))[0]
    return f"{index:08d}-{re.sub(r'[^A-Za-z0-9._-]', '_', stem)[:80]}.png"


def batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def prefetched(items: Iterable, prepare: Callable, pool: Executor | None, depth: int) -> Iterator[tuple[Any, Any]]:
    """(item, prepare(item)) in order, with up to `depth` items being read ahead in `pool` (inline if None).

    Bounded: at most depth + 1 decoded images exist at a time, whatever the number of items.
    """
    if pool is None:
        yield from ((item, prepare(item)) for item in items)
        return
    pending: deque = deque()
    for item in items:
        pending.append((item, pool.submit(prepare, item)))
        if len(pending) > depth:
            done, future = pending.popleft()
            yield done, future.result()
    while pending:
        done, future = pending.popleft()
        yield done, future.result()


def predict_stream(
    predictor: Predictor, keyed_items: Iterable[tuple[Any, Item]], batch_size: int, readers: int
) -> Iterator[tuple[Any, Row]]:
    """(key, row) for each (key, item), in order.

    `readers` threads decode and preprocess ahead while the model runs (0: inline, one thread
    in all). A batch never spans two keys (shards), so a shard's rows do not depend on its
    neighbours: one machine and a cluster compute the same batches.
    """
    pool = ThreadPoolExecutor(readers, thread_name_prefix="mobilevit-np-reader") if readers else None
    try:
        stream = prefetched(keyed_items, lambda keyed: predictor.prepare(keyed[1]), pool, 2 * batch_size + readers)
        for key, group in groupby(stream, key=lambda done: done[0][0]):
            for batch in batched((prepared for _, prepared in group), batch_size):
                for row in predictor.predict(batch):
                    yield key, row
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
