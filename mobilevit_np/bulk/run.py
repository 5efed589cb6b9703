"""A bulk run from start to end: expand the inputs, skip finished shards, compute the rest, write the summary."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from typing import Any

from PIL import Image

from mobilevit_np.bulk.inputs import expand_inputs, open_image
from mobilevit_np.bulk.predictor import JobSpec, Predictor, Row, predict_stream
from mobilevit_np.bulk.store import Shard, ShardStore, plan_shards
from mobilevit_np.progress import progress_bar

DEFAULT_BATCH_SIZE = 8
DEFAULT_SHARD_SIZE = 256  # rows per shard file: what an interrupted run can lose, and Dask's unit of work
DEFAULT_READERS = 2  # decoding threads (Pillow releases the GIL while it decodes and resizes)


def _check_sizes(batch_size: int, readers: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if readers < 0:
        raise ValueError(f"readers must be 0 or more, got {readers}")


def iter_predictions(
    paths: list[str],
    model: str,
    task: str = "classify",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    readers: int = DEFAULT_READERS,
    top_k: int = 5,
    masks_dir: str | None = None,
    backend: str = "numpy",
    load: Callable[[str], Image.Image] = open_image,
) -> Iterator[Row]:
    """One row per path (a list from expand_inputs), in order; nothing is written but the masks.

    This is what `mobilevit-np classify IMAGE...` prints. The model loads at the first next().
    """
    _check_sizes(batch_size, readers)
    spec = JobSpec(model, task, backend, top_k, masks_dir, load)
    predictor = spec.build()
    for _, row in predict_stream(predictor, ((0, item) for item in enumerate(paths)), batch_size, readers):
        yield row


def weights_sha256(folder: str) -> str | None:
    """sha256 of the checkpoint's weight files (model*.safetensors, in name order); None if there are none."""
    names = sorted(n for n in os.listdir(folder) if n.startswith("model") and n.endswith(".safetensors"))
    if not names:
        return None
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _manifest(spec: JobSpec, paths: list[str], shard_size: int) -> dict[str, Any]:
    listed = hashlib.sha256()
    for path in paths:  # one path at a time: no second copy of a long list in memory
        listed.update(path.encode("utf-8", "surrogateescape") + b"\n")
    return {
        "task": spec.task,
        "model": spec.model,
        "top_k": spec.top_k if spec.task == "classify" else None,
        "masks_dir": os.path.abspath(spec.masks_dir) if spec.masks_dir else None,
        "inputs": len(paths),
        "inputs_sha256": listed.hexdigest(),
        "shard_size": shard_size,
    }


def local_shard_rows(
    spec: JobSpec, paths: list[str], shards: list[Shard], batch_size: int, readers: int, advance: Callable[[int], Any]
) -> Iterator[tuple[Shard, list[Row]]]:
    """Each shard's rows, computed here: the model loaded once, `readers` threads decoding ahead."""
    predictor: Predictor = spec.build()
    keyed = ((shard, item) for shard in shards for item in shard.items(paths))
    for shard, group in groupby(predict_stream(predictor, keyed, batch_size, readers), key=lambda kr: kr[0]):
        rows = []
        for _, row in group:
            rows.append(row)
            advance(1)
        yield shard, rows


def predict_files(
    inputs: Iterable[str],
    model: str,
    output: str,
    task: str = "classify",
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    readers: int = DEFAULT_READERS,
    shard_size: int = DEFAULT_SHARD_SIZE,
    top_k: int = 5,
    masks_dir: str | None = None,
    backend: str = "numpy",
    output_format: str | None = None,
    quiet: bool = False,
    load: Callable[[str], Image.Image] = open_image,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
) -> dict[str, Any]:
    """Classify or segment every image of `inputs` into `output`; resumable; returns the run's summary.

    inputs: files, folders (recursive), globs, "@list.txt" files, fsspec URLs (see bulk.inputs).
    output: a .jsonl or .parquet file, or a folder of shard files; every input gets exactly one
        row there (its result, or an "error" saying why it failed). Running the same call again
        after an interruption computes only the missing shards; after a finished run it does nothing.
    scheduler / scheduler_file: run the shards on a Dask cluster ("local:N" starts a LocalCluster
        of N worker processes, "tcp://host:port" joins one): the `dask` extra.
    Summary keys: total, done, failed, skipped (rows kept from an earlier run), seconds,
    images_per_second, model, weights_sha256, output.
    """
    _check_sizes(batch_size, readers)
    start = time.perf_counter()
    spec = JobSpec(model, task, backend, top_k, masks_dir, load)
    paths = expand_inputs(inputs)
    shards = plan_shards(len(paths), shard_size)
    store = ShardStore(output, _manifest(spec, paths, shard_size), output_format)
    finished = store.finished_summary()
    if finished is not None:
        return {
            **finished,
            "done": 0,
            "failed": 0,
            "skipped": finished["total"],
            "seconds": 0.0,
            "images_per_second": None,
        }
    written = store.open()
    todo = [shard for shard in shards if shard.id not in written]
    skipped = sum(shard.stop - shard.start for shard in shards if shard.id in written)
    done = failed = 0
    with progress_bar(len(paths) - skipped, quiet) as bar:
        if scheduler or scheduler_file:
            try:  # the `dask` extra, imported only when asked for
                from mobilevit_np.distributed import cluster_shard_rows
            except ImportError as e:
                raise ImportError(
                    f"a Dask scheduler needs the dask extra: pip install 'mobilevit-np[dask]' ({e})"
                ) from None

            produced = cluster_shard_rows(spec, paths, todo, batch_size, scheduler, scheduler_file, bar.update)
        else:
            produced = local_shard_rows(spec, paths, todo, batch_size, readers, bar.update)
        for shard, rows in produced:
            store.write(shard.id, rows)
            errors = sum("error" in row for row in rows)
            done, failed = done + len(rows) - errors, failed + errors
    seconds = time.perf_counter() - start
    from mobilevit_np.checkpoints.hub import resolve_checkpoint

    summary = {
        "total": len(paths),
        "done": done,
        "failed": failed,
        "skipped": skipped,
        "seconds": round(seconds, 3),
        "images_per_second": round((done + failed) / seconds, 2) if seconds > 0 else None,
        "model": model,
        "weights_sha256": weights_sha256(resolve_checkpoint(model)),
        "output": store.output,
    }
    store.finish([shard.id for shard in shards], summary)
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The one line the CLI prints at the end of a run."""
    rate = summary["images_per_second"]
    speed = f", {rate:.1f} images/s" if rate else ""
    return (
        f"{summary['done']} done, {summary['failed']} failed, {summary['skipped']} skipped "
        f"of {summary['total']} in {summary['seconds']:.1f} s{speed}; rows in {summary['output']}"
    )


def print_summary(summary: dict[str, Any]) -> None:
    print(f"mobilevit-np: {format_summary(summary)}", file=sys.stderr)
