"""Draw docs/performance.png from the JSON that `bench.py --json FILE` writes.

    python benchmarks/bench.py --json results.json && python benchmarks/plot.py results.json

One group of bars per model and input, one bar per backend: the median latency in ms
(log scale, since a batch-8 run and an xx-small run differ 30x), with the min-max range.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

COLORS = {"numpy": "#8c8c8c", "numba": "#d95f02", "torch": "#1b9e77", "onnxruntime": "#7570b3", "openvino": "#e7298a"}
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "..", "docs", "performance.png")


def plot(report: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    backends = [b for b in COLORS if any(b in r["times_ms"] for r in results)]
    width = 0.8 / len(backends)
    fig, ax = plt.subplots(figsize=(10, 4.8))
    for k, backend in enumerate(backends):
        xs, medians, lows, highs = [], [], [], []
        for i, result in enumerate(results):
            times = result["times_ms"].get(backend)
            if times:
                xs.append(i + (k - (len(backends) - 1) / 2) * width)
                medians.append(np.median(times))
                lows.append(np.median(times) - min(times))
                highs.append(max(times) - np.median(times))
        ax.bar(xs, medians, width, yerr=[lows, highs], color=COLORS[backend], label=backend, capsize=2)
    ax.set_yscale("log")
    ax.set_ylabel("latency per call, ms (median; bars: min-max)")
    ax.set_xticks(range(len(results)), [r["case"].replace(", ", "\n") for r in results], fontsize=8)
    info = report["machine"]
    ax.set_title(
        f"mobilevit_np vs PyTorch eager vs ONNX Runtime, float32, {info['threads']} thread(s) per backend,"
        f" each in its own process\n{info['cpu']}, {info['date']}, load {info['load_avg'].split()[0]}",
        fontsize=9,
    )
    ax.legend()
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="JSON written by bench.py --json")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    with open(args.results) as f:
        plot(json.load(f), args.out)


if __name__ == "__main__":
    main()
