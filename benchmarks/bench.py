"""Latency of mobilevit_np (NumPy and Numba paths) beside PyTorch eager and ONNX Runtime.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py          # full table
    python benchmarks/bench.py --quick                          # smoke run
    python benchmarks/bench.py --profile [--model small]        # time per layer type
    python benchmarks/bench.py --startup                        # first call cold vs warm cache; peak RSS

All backends run the same random weights (speed does not depend on values), written once
with random_state_dict + save_checkpoint into a temporary folder that transformers also
loads. Runs are interleaved (one call of each backend in turn, after warm-up) so a busy
machine slows all of them alike: read the ratios. Results can be saved with --json for
benchmarks/plot.py. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from mobilevit_np import MobileViTConfig, MobileViTForImageClassification, MobileViTForSemanticSegmentation
from mobilevit_np.random_weights import random_state_dict
from mobilevit_np.weights import save_checkpoint

SIZES = {  # /work/shared/data/REFERENCE.md
    "small": dict(hidden_sizes=[144, 192, 240], neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640], expand_ratio=4.0),
    "x-small": dict(hidden_sizes=[96, 120, 144], neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384], expand_ratio=4.0),
    "xx-small": dict(hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0),
}


@dataclass(frozen=True)
class Case:
    name: str  # checkpoint name, as Apple's
    size: str
    head: str
    batch: int
    image: int

    @property
    def label(self) -> str:
        return f"{self.name}, {self.batch}x3x{self.image}x{self.image}"

    def config(self) -> MobileViTConfig:
        if self.head == "segmentation":
            return MobileViTConfig(**SIZES[self.size], num_labels=21, output_stride=16, image_size=self.image)
        return MobileViTConfig(**SIZES[self.size], num_labels=1000, image_size=self.image)


CASES = [
    Case("mobilevit-small", "small", "classification", 1, 256),
    Case("mobilevit-small", "small", "classification", 8, 256),
    Case("mobilevit-x-small", "x-small", "classification", 1, 256),
    Case("mobilevit-xx-small", "xx-small", "classification", 1, 256),
    Case("deeplabv3-mobilevit-small", "small", "segmentation", 1, 512),
]
BACKENDS = ("numpy", "numba", "torch", "onnxruntime")


def write_checkpoint(case: Case, root: str) -> str:
    folder = os.path.join(root, f"{case.name}")
    if not os.path.isdir(folder):
        config = case.config()
        save_checkpoint(folder, config, random_state_dict(config, case.head, seed=0))
    return folder


def ours(folder: str, head: str, backend: str) -> Callable[[np.ndarray], np.ndarray]:
    cls = MobileViTForSemanticSegmentation if head == "segmentation" else MobileViTForImageClassification
    model = cls.from_pretrained(folder, backend=backend)
    return lambda x: model(x).logits


def torch_eager(folder: str, head: str):
    import torch
    import transformers

    cls = (
        transformers.MobileViTForSemanticSegmentation
        if head == "segmentation"
        else (transformers.MobileViTForImageClassification)
    )
    model = cls.from_pretrained(folder).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).logits.numpy()

    return run, model


def onnx_runtime(torch_model, x: np.ndarray, root: str, tag: str):
    import onnxruntime
    import torch

    path = os.path.join(root, f"{tag}.onnx")
    if not os.path.exists(path):
        wrapper = _LogitsOnly(torch_model)
        with torch.inference_mode():
            torch.onnx.export(wrapper, (torch.from_numpy(x),), path, input_names=["pixel_values"], dynamo=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"pixel_values": x})[0]


def _LogitsOnly(model):  # noqa: N802 (a factory named like the class it makes)
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values).logits

    return LogitsOnly().eval()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(case: Case, root: str, backends: tuple[str, ...], repeats: int, warmup: int) -> dict:
    """Interleaved timings (ms) of each backend on one case, and their outputs' agreement."""
    folder = write_checkpoint(case, root)
    x = np.random.RandomState(0).uniform(0, 1, (case.batch, 3, case.image, case.image)).astype(np.float32)
    runners: dict[str, Callable] = {}
    for backend in backends:
        if backend in ("numpy", "numba"):
            runners[backend] = ours(folder, case.head, backend)
        elif backend == "torch":
            runners["torch"], torch_model = torch_eager(folder, case.head)
        elif backend == "onnxruntime":
            if "torch" not in runners:
                _, torch_model = torch_eager(folder, case.head)
            runners["onnxruntime"] = onnx_runtime(torch_model, x, root, f"{case.name}-b{case.batch}")
    outputs = {name: run(x) for name, run in runners.items()}
    for _ in range(warmup - 1):
        for run in runners.values():
            run(x)
    times = collections.defaultdict(list)
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[name].append((time.perf_counter() - start) * 1e3)
    reference = outputs.get("numpy", next(iter(outputs.values())))
    agreement = {n: float(np.abs(o - reference).max() / np.abs(reference).max()) for n, o in outputs.items()}
    return {"case": case.label, "times_ms": dict(times), "max_rel_diff_vs_numpy": agreement}


def summarize(result: dict) -> list[str]:
    times = result["times_ms"]
    median = {n: float(np.median(t)) for n, t in times.items()}
    lines = []
    for name, t in times.items():
        ratios = []
        for base in ("torch", "onnxruntime"):
            if base in median and name in ("numpy", "numba"):
                ratios.append(f"{median[name] / median[base]:5.2f}")
            else:
                ratios.append("    -")
        lines.append(
            f"| {result['case']} | {name} | {median[name]:8.1f} | {min(t):8.1f} | {max(t):8.1f} | "
            f"{ratios[0]} | {ratios[1]} | {result['max_rel_diff_vs_numpy'][name]:.1e} |"
        )
    return lines


def set_threads(n: int) -> None:
    """The same thread count for every backend: one process-wide setting each."""
    import mobilevit_np.kernels.config  # noqa: F401  (sets OMP_WAIT_POLICY before numba's threads start)
    import torch  # first: its OpenMP runtime loads with the default wait policy
    from threadpoolctl import threadpool_limits

    global THREADS
    THREADS = n
    torch.set_num_threads(n)
    numba.set_num_threads(n)
    threadpool_limits(n)  # OpenBLAS under NumPy


THREADS = os.cpu_count() or 1


def machine_info() -> dict:
    import numba
    import onnxruntime
    import torch
    import transformers

    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
    }
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = ", ".join(
            f"{p['internal_api']} {p.get('architecture', '')} x{p['num_threads']}" for p in threadpool_info()
        )
    except ImportError:
        info["blas"] = "(install threadpoolctl to see which BLAS kernel runs)"
    return info


# ----------------------------------------------------------------------- profile


def profile(case: Case, root: str, repeats: int) -> None:
    """Time per primitive type (conv 1x1, depthwise, dense kxk, linear, attention, ...) for both paths."""
    import mobilevit_np.model as model_module

    folder = write_checkpoint(case, root)
    x = np.random.RandomState(0).uniform(0, 1, (case.batch, 3, case.image, case.image)).astype(np.float32)
    for backend in ("numpy", "numba"):
        cls = MobileViTForSemanticSegmentation if case.head == "segmentation" else MobileViTForImageClassification
        model = cls.from_pretrained(folder, backend=backend)
        spent: dict[str, float] = collections.defaultdict(float)
        model.ops = timed_ops(model.ops, spent, model_module)
        model(x)
        spent.clear()
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        total = (time.perf_counter() - start) * 1e3 / repeats
        print(f"\n{case.label}, backend={backend}: {total:.1f} ms per call")
        for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
            ms = seconds * 1e3 / repeats
            print(f"  {name:28s} {ms:8.2f} ms  {100 * ms / total:5.1f} %")
        other = total - sum(spent.values()) * 1e3 / repeats
        print(f"  {'other (adds, MLP act, glue)':28s} {other:8.2f} ms  {100 * other / total:5.1f} %")


def timed_ops(ops, spent: dict[str, float], model_module):
    """A copy of `ops` whose primitives add their time to spent[type]."""

    def conv_kind(x, convolution, **kwargs) -> str:
        weight = convolution["weight"]
        if weight.shape[1] == 1 and x.shape[1] > 1:
            return "conv depthwise kxk"
        return "conv 1x1" if weight.shape[-1] == 1 else "conv dense kxk"

    def wrap(name: str, func, kind=None):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            out = func(*args, **kwargs)
            spent[kind(*args, **kwargs) if kind else name] += time.perf_counter() - start
            return out

        return timed

    return model_module.Ops(
        conv_layer=wrap("conv", ops.conv_layer, conv_kind),
        linear=wrap("linear (transformer)", ops.linear),
        layer_norm=wrap("layer norm", ops.layer_norm),
        multi_head_attention=wrap("attention (incl. q/k/v)", ops.multi_head_attention),
        unfold=wrap("unfold", ops.unfold),
        fold=wrap("fold", ops.fold),
        get_activation=ops.get_activation,  # unwrapped, so conv_layer can still fuse it; timed within convs
    )


# ----------------------------------------------------------------------- startup

_CLASSIFY = r"""
import os, sys, time
start = time.perf_counter()
import numpy as np
from PIL import Image
folder, who = sys.argv[1], sys.argv[2]
image = Image.open(sys.argv[3]).convert("RGB").resize((256, 256), Image.BILINEAR)
x = (np.asarray(image, dtype=np.float32)[:, :, ::-1] / 255).transpose(2, 0, 1)[None].copy()
if who == "torch":
    import torch, transformers
    model = transformers.MobileViTForImageClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(x)).logits.numpy()
else:
    from mobilevit_np import MobileViTForImageClassification
    model = MobileViTForImageClassification.from_pretrained(folder, backend=who)
    logits = model(x).logits
first = time.perf_counter() - start
# VmHWM: this process's peak RSS (ru_maxrss would include the parent's, kept across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(f"{first:.3f} {peak / 1024:.0f} {int(logits.argmax())}")
"""

IMAGE = "/work/shared/data/images/000000039769.png"


def startup(root: str) -> dict:
    """First inference in a fresh process (import + load + one call), cold and warm numba cache; peak RSS."""
    folder = write_checkpoint(CASES[0], root)
    image = IMAGE if os.path.exists(IMAGE) else _write_test_image(root)
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=root)
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}

    def run(who: str) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _CLASSIFY, folder, who, image], env=env, capture_output=True, text=True, check=True
        )
        seconds, rss, _ = out.stdout.split()
        return float(seconds), float(rss)

    results = {
        "numba, cold cache (compiles)": run("numba"),
        "numba, warm cache": run("numba"),
        "numpy": run("numpy"),
        "torch + transformers": run("torch"),
    }
    print("\nfresh process: import + load mobilevit-small + classify one image")
    print("| process | first inference (s) | peak RSS (MB) |\n|---|---|---|")
    for name, (seconds, rss) in results.items():
        print(f"| {name} | {seconds:.2f} | {rss:.0f} |")
    return {name: {"first_s": s, "peak_rss_mb": r} for name, (s, r) in results.items()}


def _write_test_image(root: str) -> str:
    from PIL import Image

    path = os.path.join(root, "image.png")
    Image.fromarray(np.random.RandomState(0).randint(0, 255, (300, 400, 3), dtype=np.uint8)).save(path)
    return path


# -------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short smoke run: two cases, few repeats")
    parser.add_argument("--profile", action="store_true", help="time per layer type for the NumPy and Numba paths")
    parser.add_argument("--startup", action="store_true", help="first-call time cold vs warm cache, and peak RSS")
    parser.add_argument("--model", default=None, help="only the cases whose name contains this")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {BACKENDS}")
    parser.add_argument("--json", default=None, help="write the results to this file (for plot.py)")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads for every backend (BLAS, numba, torch, ORT); default: all"
    )
    args = parser.parse_args()
    if args.threads:
        set_threads(args.threads)

    cases = [c for c in CASES if args.model is None or args.model in c.label]
    if args.quick:
        cases = [c for c in cases if c.batch == 1 and c.head == "classification"][::2]
    repeats = args.repeats or (5 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="mobilevit-bench-") as root:
        if args.profile:
            profile(cases[0], root, repeats)
            return
        info = machine_info()
        print(" | ".join(f"{k}: {v}" for k, v in info.items()))
        if info["OPENBLAS_CORETYPE"] != "(unset)":
            print("note: OPENBLAS_CORETYPE is set, which slows NumPy's BLAS; see docs/performance.md")
        report: dict = {"machine": info, "results": []}
        if args.startup:
            report["startup"] = startup(root)
        else:
            header = "| model, input | backend | median ms | min ms | max ms | ours/torch | ours/ORT | max rel diff |"
            print(header + "\n|" + "---|" * 8)
            for case in cases:
                result = measure(case, root, tuple(args.backends.split(",")), repeats, warmup=2 if args.quick else 3)
                report["results"].append(result)
                print("\n".join(summarize(result)), flush=True)
            print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
