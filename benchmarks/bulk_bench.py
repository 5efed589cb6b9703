"""Throughput of bulk runs (mobilevit_np.bulk) against the model alone, and their memory, on this machine.

    python benchmarks/bulk_bench.py                  # 2,000 generated 640x480 JPEGs, mobilevit-small
    python benchmarks/bulk_bench.py --count 200      # fewer images (a quicker, noisier run)
    python benchmarks/bulk_bench.py --memory-only    # only the 1,000 vs 100,000 paths peak-memory check

Issue 12's targets, printed beside each measurement:
1. the model alone at batch 8 (pixel values already in memory) -> images/s;
2. one machine, `predict_files` on the JPEGs (decode + preprocess + model + rows): >= 80% of (1);
3. a Dask LocalCluster of 2 one-thread workers on the same machine: >= 90% of (2), with the
   workers' start-up time (cluster up + model loaded on every worker);
4. peak RSS of a 100,000-path run minus that of a 1,000-path run (the same mix of small
   JPEGs and missing files, xx-small at 64x64) against the size of the extra path strings:
   memory grows with the path list only.
Weights are random (speed does not depend on them): mobilevit-small's config, saved once with
the Apple checkpoint's preprocessor settings (shortest edge 288, crop 256). Other programs on the
machine make the numbers indicative: see docs/bulk.md for the measured table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
from PIL import Image

from mobilevit_np import MobileViTForImageClassification, MobileViTImageProcessor
from mobilevit_np.bulk import predict_files
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.presets import preset_config
from mobilevit_np.random_weights import random_pixel_values, random_state_dict


def write_checkpoint(folder: str, name: str = "small") -> str:
    config = preset_config(name, "classification")
    save_checkpoint(folder, config, random_state_dict(config, "classification"))
    MobileViTImageProcessor(size=288, crop_size=256).save_pretrained(folder)
    return folder


def write_jpegs(folder: str, count: int, size: tuple[int, int] = (640, 480)) -> list[str]:
    """`count` photo-like JPEGs (smooth gradients plus noise, so they compress like photos)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    paths = []
    for i in range(count):
        base = np.stack([x * (i % 5 + 1) / 8, y * (i % 3 + 1) / 6, (x + y) / 5], axis=-1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"photo{i:05d}.jpg")
        Image.fromarray(pixels).save(path, quality=85)
        paths.append(path)
    return paths


def model_alone(checkpoint: str, backend: str, batch: int = 8, seconds: float = 20.0) -> float:
    """images/s of the model by itself at `batch`, after a warm-up call."""
    model = MobileViTForImageClassification.from_pretrained(checkpoint, backend=backend)
    pixel_values = random_pixel_values((batch, 3, 256, 256))
    model(pixel_values)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or calls < 3:
        model(pixel_values)
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def bulk_run(paths: list[str], checkpoint: str, out: str, backend: str, **options) -> dict:
    return predict_files(paths, checkpoint, out, batch_size=8, backend=backend, quiet=True, **options)


def dask_startup(checkpoint: str, backend: str) -> float:
    """Seconds from nothing to a LocalCluster of 2 workers with the model loaded on each."""
    from distributed import Client, LocalCluster

    from mobilevit_np.bulk.predictor import JobSpec
    from mobilevit_np.distributed import ONE_THREAD, PLUGIN, ModelPlugin

    start = time.perf_counter()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None, env=ONE_THREAD
    ) as cluster:
        with Client(cluster) as client:
            client.register_plugin(ModelPlugin(JobSpec(checkpoint, backend=backend)), name=PLUGIN)
            return time.perf_counter() - start


MEMORY_RUN = """
import resource, sys
from mobilevit_np.bulk import predict_files
paths = [line.strip() for line in open(sys.argv[1])]
predict_files(paths, sys.argv[2], sys.argv[3], batch_size=8, quiet=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_mb(paths: list[str], checkpoint: str, scratch: str, tag: str) -> float:
    listing = os.path.join(scratch, f"{tag}.txt")
    with open(listing, "w") as f:
        f.write("\n".join(paths) + "\n")
    out = os.path.join(scratch, f"{tag}-rows")
    code = textwrap.dedent(MEMORY_RUN)
    result = subprocess.run(
        [sys.executable, "-c", code, listing, checkpoint, out], capture_output=True, text=True, check=True
    )
    return int(result.stdout.strip()) / 1024  # ru_maxrss is in KiB on Linux


def memory_check(scratch: str) -> None:
    """Peak RSS of 1,000 vs 100,000 inputs of the same mix: 1 in 50 a small JPEG (decoded and run
    through xx-small at 64x64), the rest missing files (an error row each: the rows and shards
    machinery without the decoding time), so the 100,000-path run takes a minute, not an hour."""
    checkpoint = os.path.join(scratch, "xx-small")
    config = preset_config("xx-small", "classification")
    save_checkpoint(checkpoint, config, random_state_dict(config, "classification"))
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(checkpoint)
    images = write_jpegs(os.path.join(scratch, "small-images"), 20, size=(96, 72))

    def mix(count: int) -> list[str]:
        missing = os.path.join(scratch, "missing")
        return [images[i % 20] if i % 50 == 0 else f"{missing}/{i:07d}.jpg" for i in range(count)]

    t0 = time.perf_counter()
    base = peak_rss_mb(mix(1_000), checkpoint, scratch, "1k")
    t1 = time.perf_counter()
    large = mix(100_000)
    big = peak_rss_mb(large, checkpoint, scratch, "100k")
    t2 = time.perf_counter()
    list_mb = sum(sys.getsizeof(p) + 8 for p in large[1_000:]) / 2**20
    print(f"peak RSS, 1,000 paths:   {base:7.1f} MB  ({t1 - t0:.0f} s)")
    print(f"peak RSS, 100,000 paths: {big:7.1f} MB  ({t2 - t1:.0f} s)")
    print(f"  difference {big - base:.1f} MB; the 99,000 extra path strings alone hold ~{list_mb:.1f} MB")


def throughput_table(count: int, backend: str, scratch: str) -> list[tuple[str, str, str]]:
    """(what, measured, target) rows for targets 1-3."""
    checkpoint = write_checkpoint(os.path.join(scratch, "small"))
    paths = write_jpegs(os.path.join(scratch, "jpegs"), count)
    alone = model_alone(checkpoint, backend)
    rows = [(f"model alone, batch 8 (backend {backend})", f"{alone:.1f} images/s", "")]
    one = bulk_run(paths, checkpoint, os.path.join(scratch, "one.jsonl"), backend)["images_per_second"]
    rows.append(
        (f"one machine, {count} JPEGs 640x480, decode included", f"{one:.1f} images/s = {one / alone:.0%}", ">= 80%")
    )
    startup = dask_startup(checkpoint, backend)
    rows.append(("Dask LocalCluster start-up: 2 workers, model loaded on each", f"{startup:.1f} s", ""))
    summary = bulk_run(paths, checkpoint, os.path.join(scratch, "dask.jsonl"), backend, scheduler="local:2")
    with_startup = summary["images_per_second"]
    without = count / max(summary["seconds"] - startup, 1e-9)
    rows.append(
        (
            "Dask LocalCluster, 2 workers, start-up included",
            f"{with_startup:.1f} images/s = {with_startup / one:.0%}",
            ">= 90%",
        )
    )
    rows.append(
        ("Dask LocalCluster, 2 workers, start-up excluded", f"{without:.1f} images/s = {without / one:.0%}", ">= 90%")
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="JPEGs to generate and run (default 2000)")
    parser.add_argument("--backend", default="auto", help="numpy, numba or auto (default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 100,000-path memory check")
    parser.add_argument("--memory-only", action="store_true", help="only the memory check")
    args = parser.parse_args()
    start = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        if not args.memory_only:
            rows = throughput_table(args.count, args.backend, scratch)
            print("| what | measured | target |\n|---|---|---|")
            print("\n".join(f"| {what} | {value} | {target} |" for what, value, target in rows))
        if not args.no_memory:
            memory_check(scratch)
    end = os.getloadavg()
    print(f"{os.cpu_count()} cores; load average (1 min) {start[0]:.1f} at the start, {end[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
