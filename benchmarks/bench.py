"""Latency of mobilevit_np (NumPy and Numba paths) beside PyTorch eager and ONNX Runtime.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench.py          # full table
    python benchmarks/bench.py --quick                          # smoke run
    python benchmarks/bench.py --profile [--model small]        # time per layer type (ORT: per operator)
    python benchmarks/bench.py --startup                        # first call cold vs warm cache; peak RSS

All backends run the same random weights (speed does not depend on values), written once
with random_state_dict + save_checkpoint into a temporary folder that transformers also
loads. Each backend runs in its own worker process (spawned, so no two runtimes' thread
pools share a process), loads the checkpoint once and warms up; the parent then asks the
workers in turn for blocks of --block calls (A A A A A, B B B B B, ..., repeated) so that
noise from the rest of the machine hits all backends alike: read the ratios. Each runtime
keeps its own default wait policy (see thread_env; ONNX Runtime spins, add the backend
"onnxruntime-nospin" to compare). Results can be saved with --json for benchmarks/plot.py.
See docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

import numpy as np

from mobilevit_np import MobileViTConfig, MobileViTV2Config
from mobilevit_np.checkpoints.state_dict import save_checkpoint
from mobilevit_np.random_weights import random_state_dict

SIZES = {  # /work/shared/data/REFERENCE.md
    "small": dict(hidden_sizes=[144, 192, 240], neck_hidden_sizes=[16, 32, 64, 96, 128, 160, 640], expand_ratio=4.0),
    "x-small": dict(hidden_sizes=[96, 120, 144], neck_hidden_sizes=[16, 32, 48, 64, 80, 96, 384], expand_ratio=4.0),
    "xx-small": dict(hidden_sizes=[64, 80, 96], neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], expand_ratio=2.0),
}
V2_SIZES = {"v2-1.0": dict(width_multiplier=1.0)}  # MobileViTV2 (apple/mobilevitv2-1.0-*)


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

    @property
    def tag(self) -> str:
        return f"{self.name}-b{self.batch}"

    @property
    def v2(self) -> bool:
        return self.size in V2_SIZES

    def config(self) -> MobileViTConfig | MobileViTV2Config:
        cls, fields = (MobileViTV2Config, V2_SIZES[self.size]) if self.v2 else (MobileViTConfig, SIZES[self.size])
        if self.head == "segmentation":
            return cls(**fields, num_labels=21, output_stride=16, image_size=self.image)
        return cls(**fields, num_labels=1000, image_size=self.image)

    def input(self) -> np.ndarray:
        shape = (self.batch, 3, self.image, self.image)
        return np.random.RandomState(0).uniform(0, 1, shape).astype(np.float32)


CASES = [
    Case("mobilevit-small", "small", "classification", 1, 256),
    Case("mobilevit-small", "small", "classification", 8, 256),
    Case("mobilevit-x-small", "x-small", "classification", 1, 256),
    Case("mobilevit-xx-small", "xx-small", "classification", 1, 256),
    Case("deeplabv3-mobilevit-small", "small", "segmentation", 1, 512),
    Case("mobilevitv2-1.0", "v2-1.0", "classification", 1, 256),
    Case("mobilevitv2-1.0-deeplabv3", "v2-1.0", "segmentation", 1, 512),
]
# "onnxruntime-nospin" (not in the default list) is ONNX Runtime with session.intra_op.allow_spinning=0,
# slower than its spinning default here (docs/performance.md), so the table keeps ORT's default.
BACKENDS = ("numpy", "numba", "torch", "onnxruntime") + (("openvino",) if importlib.util.find_spec("openvino") else ())
OURS = ("numpy", "numba")


def write_checkpoint(case: Case, root: str) -> str:
    folder = os.path.join(root, f"{case.name}")
    if not os.path.isdir(folder):
        config = case.config()
        save_checkpoint(folder, config, random_state_dict(config, case.head, seed=0))
    return folder


# ------------------------------------------------------------------ the runners (in workers)


def ours(case: Case, folder: str, backend: str):
    from mobilevit_np.modeling_v2 import model_class

    return model_class(case.config(), case.head).from_pretrained(folder, backend=backend)


def torch_model(case: Case, folder: str, threads: int):
    import torch
    import transformers

    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()  # not the missing num_batches_tracked buffers, once per worker
    transformers.logging.disable_progress_bar()
    generation = "MobileViTV2" if case.v2 else "MobileViT"
    head = "SemanticSegmentation" if case.head == "segmentation" else "ImageClassification"
    return getattr(transformers, f"{generation}For{head}").from_pretrained(folder).eval()


def onnx_session(onnx_path: str, threads: int, spinning: bool = True, profile_prefix: str | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:  # idle pool threads block at once instead of spin-waiting
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])


def runner(backend: str, case: Case, folder: str, onnx_path: str, threads: int):
    """A function pixel_values -> logits for one backend (imports that backend's runtime)."""
    if backend in OURS:
        model = ours(case, folder, backend)

        def run(x: np.ndarray) -> np.ndarray:
            return model(x).logits

        run.model = model  # for the profile
        return run
    if backend == "torch":
        import torch

        model = torch_model(case, folder, threads)

        def run(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(x)).logits.numpy()

        return run
    if backend == "openvino":
        return openvino_runner(onnx_path, threads)
    session = onnx_session(onnx_path, threads, spinning=backend != "onnxruntime-nospin")

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"pixel_values": x})[0]

    run.model = None  # profiled through ORT's own profiler (profile_onnx)
    run.onnx = (onnx_path, threads)
    return run


def openvino_runner(onnx_path: str, threads: int):
    """OpenVINO on the same ONNX file, in float32: on CPUs with AVX512_BF16 it otherwise computes in
    bfloat16 (9e-3 relative error measured), which is not the comparison this table makes."""
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(core.read_model(onnx_path), "CPU", config)
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return request.infer([x])[0].copy()

    run.model = None
    return run


def export_onnx(case: Case, folder: str, path: str) -> None:
    """Export transformers' model to ONNX (run in its own short-lived process).

    MobileViTV2's fold (torch's F.fold) exports as Col2Im, an operator of opset 18 and later: the
    dynamo exporter writes opset 20, which onnxruntime 1.32 runs (checked: 9e-7 relative to torch)."""
    import torch

    model = torch_model(case, folder, 1)

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            return self.model(pixel_values).logits

    with torch.inference_mode():
        x = torch.from_numpy(case.input())
        torch.onnx.export(LogitsOnly().eval(), (x,), path, input_names=["pixel_values"], dynamo=True)


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def serve(conn, backend: str, case: Case, folder: str, onnx_path: str, threads: int, warmup: int) -> None:
    """Worker main loop: load, warm up, then answer ("time", n) / ("profile", n) / ("stop", None)."""
    try:
        run = runner(backend, case, folder, onnx_path, threads)
        x = case.input()
        output = run(x)
        for _ in range(warmup - 1):
            run(x)
        conn.send(("ok", output))
        while True:
            command, n = conn.recv()
            if command == "time":
                run(x)  # untimed: wakes this runtime's threads after the pause between blocks (measure)
                times = []
                for _ in range(n):
                    start = time.perf_counter()
                    run(x)
                    times.append((time.perf_counter() - start) * 1e3)
                conn.send(("ok", times))
            elif command == "profile":
                profiled = profile_model(run.model, x, n) if run.model is not None else profile_onnx(*run.onnx, x, n)
                conn.send(("ok", profiled))
            else:
                conn.send(("ok", peak_rss_mb()))
                return
    except BaseException:  # noqa: BLE001 (report anything to the parent, which raises it)
        conn.send(("error", traceback.format_exc()))


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """os.environ with `values` set, for a child process started inside; restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def thread_env(threads: int) -> dict[str, str]:
    """Every runtime's thread count. Each keeps its default wait policy: GNU OpenMP (torch, and numba's
    threading layer) spins briefly before sleeping, ONNX Runtime's pool spins (docs/performance.md)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    return dict.fromkeys(names, str(threads))


class Worker:
    """One backend in its own spawned process, driven over a pipe."""

    def __init__(self, backend: str, case: Case, folder: str, onnx_path: str, threads: int, warmup: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.backend = backend
        self.conn, child = context.Pipe()
        args = (child, backend, case, folder, onnx_path, threads, warmup)
        with environment(thread_env(threads)):
            self.process = context.Process(target=serve, args=args, daemon=True)
            self.process.start()
        child.close()
        self.output = self.reply()

    def reply(self):
        status, value = self.conn.recv()
        if status == "error":
            self.process.join()
            raise RuntimeError(f"{self.backend} worker failed:\n{value}")
        return value

    def ask(self, command: str, n: int | None = None):
        self.conn.send((command, n))
        return self.reply()

    def stop(self) -> float:
        """Ends the worker; returns its peak RSS in MB."""
        rss = self.ask("stop")
        self.process.join()
        return rss


def start_onnx(case: Case, folder: str, root: str) -> str:
    path = os.path.join(root, f"{case.tag}.onnx")
    if not os.path.exists(path):
        process = multiprocessing.get_context("spawn").Process(target=export_onnx, args=(case, folder, path))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"ONNX export of {case.label} failed (exit code {process.exitcode})")
    return path


# After its last call a runtime's pool keeps spinning on the cores for a while: measured ~50 ms for ONNX
# Runtime's, under 10 ms for GNU OpenMP's (a process's CPU time in 10 ms windows after its last call). Back to
# back, the next backend's block ran beside those spinning threads: numba on mobilevit-xx-small measured
# 5.8 ms alone and 14.1 ms right after ORT's blocks. Every block starts on a machine at rest instead.
SETTLE_S = 0.2


def measure(case: Case, root: str, backends: tuple[str, ...], repeats: int, block: int, threads: int, warmup: int):
    """Timings (ms) of each backend on one case, in round-robin blocks, and their outputs' agreement."""
    folder = write_checkpoint(case, root)
    onnx_path = (
        start_onnx(case, folder, root) if any(b.startswith(("onnxruntime", "openvino")) for b in backends) else ""
    )
    workers = []
    try:
        for backend in backends:  # one at a time: loading and warming up is not timed
            workers.append(Worker(backend, case, folder, onnx_path, threads, warmup))
        times: dict[str, list[float]] = {backend: [] for backend in backends}
        while len(times[backends[-1]]) < repeats:
            n = min(block, repeats - len(times[backends[-1]]))
            for worker in workers:
                times[worker.backend] += worker.ask("time", n)
                time.sleep(SETTLE_S)  # its threads stop spinning before the next backend's block starts
    finally:
        rss = {w.backend: w.stop() for w in workers if w.process.is_alive()}
    outputs = {w.backend: w.output for w in workers}
    reference = outputs.get("numpy", next(iter(outputs.values())))
    agreement = {n: float(np.abs(o - reference).max() / np.abs(reference).max()) for n, o in outputs.items()}
    return {
        "case": case.label,
        "times_ms": dict(times),
        "max_rel_diff_vs_numpy": agreement,
        "peak_rss_mb": rss,
        "macs": case_macs(case),
    }


def case_macs(case: Case) -> int:
    """Multiply-adds of one forward pass of the case (summary.py's count, equal to torch's FlopCounter)."""
    from mobilevit_np.summary import architecture_summary

    return case.batch * sum(row.macs for row in architecture_summary(case.config(), case.head, case.image))


def peak_gflops(threads: int) -> float:
    """The machine's float32 peak as this benchmark measures it: the best of a few 2048^3 NumPy matmuls
    (OpenBLAS with its kernels for this CPU), in a spawned process with `threads` BLAS threads."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    with environment(thread_env(threads)):
        process = context.Process(target=_matmul_peak, args=(child,), daemon=True)
        process.start()
    peak = parent.recv()
    process.join()
    return peak


def _matmul_peak(conn) -> None:
    a = np.random.RandomState(0).uniform(-1, 1, (2048, 2048)).astype(np.float32)
    out = np.empty_like(a)
    np.matmul(a, a, out=out)
    best = float("inf")
    for _ in range(8):
        start = time.perf_counter()
        np.matmul(a, a, out=out)
        best = min(best, time.perf_counter() - start)
    conn.send(2 * 2048**3 / best / 1e9)


def summarize(result: dict) -> list[str]:
    times = result["times_ms"]
    median = {n: float(np.median(t)) for n, t in times.items()}
    floor = result["floor_ms"]
    lines = []
    for name, t in times.items():
        ratios = []
        for base in ("torch", "onnxruntime", "openvino"):
            if base in median and name in OURS:
                ratios.append(f"{median[name] / median[base]:5.2f}")
            else:
                ratios.append("    -")
        lines.append(
            f"| {result['case']} | {name} | {median[name]:8.1f} | {min(t):8.1f} | {max(t):8.1f} | "
            f"{' | '.join(ratios)} | {median[name] / floor:5.1f} | {result['max_rel_diff_vs_numpy'][name]:.1e} | "
            f"{result['peak_rss_mb'].get(name, float('nan')):.0f} |"
        )
    return lines


def machine_info(threads: int) -> dict:
    """CPU, versions (read from package metadata: this process imports no runtime but NumPy), load."""
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    info = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": f"{cpu}, {os.cpu_count()} cores"}
    info["python"] = platform.python_version()
    for package in ("numpy", "numba", "tbb", "torch", "transformers", "onnxruntime"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "(not installed)"
    info["threads"] = threads
    info["load_avg"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    # numba runs TBB when tbb is installed (kernels/runtime/threads.py), unless this says otherwise
    info["NUMBA_THREADING_LAYER"] = os.environ.get("NUMBA_THREADING_LAYER", "(unset)")
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = ", ".join(f"{p['internal_api']} {p.get('architecture', '')}" for p in threadpool_info())
    except ImportError:
        info["blas"] = "(install threadpoolctl to see which BLAS kernel runs)"
    return info


# ----------------------------------------------------------------------- profile


def profile(case: Case, root: str, repeats: int, threads: int) -> None:
    """Time per primitive type (conv 1x1, depthwise, dense kxk, linear, attention, ...) for both paths,
    and ONNX Runtime's time per operator type (its own profiler) when it is installed, to compare."""
    folder = write_checkpoint(case, root)
    backends = list(OURS)
    if importlib.util.find_spec("onnxruntime") is not None:
        backends.append("onnxruntime")
    onnx_path = start_onnx(case, folder, root) if "onnxruntime" in backends else ""
    for backend in backends:
        worker = Worker(backend, case, folder, onnx_path, threads, warmup=2)
        try:
            total, spent = worker.ask("profile", repeats)
        finally:
            worker.stop()
        print(f"\n{case.label}, backend={backend}, {threads} thread(s): {total:.1f} ms per call")
        for name, ms in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"  {name:28s} {ms:8.2f} ms  {100 * ms / total:5.1f} %")
        other = total - sum(spent.values())
        rest = "other (glue between steps)" if backend in OURS else "outside operators (session)"
        print(f"  {rest:28s} {other:8.2f} ms  {100 * other / total:5.1f} %")


def profile_onnx(onnx_path: str, threads: int, x: np.ndarray, repeats: int) -> tuple[float, dict[str, float]]:
    """(ms per call, {ONNX operator type: ms per call}) from ONNX Runtime's profiler (Conv, Gemm, Softmax, ...)."""
    with tempfile.TemporaryDirectory(prefix="ort-profile-") as folder:
        session = onnx_session(onnx_path, threads, profile_prefix=os.path.join(folder, "ort"))
        for _ in range(2):
            session.run(None, {"pixel_values": x})
        start = time.perf_counter()
        for _ in range(repeats):
            session.run(None, {"pixel_values": x})
        total = (time.perf_counter() - start) * 1e3 / repeats
        with open(session.end_profiling()) as f:
            events = json.load(f)
    # One "model_run" event per call; count operators only from the first timed call on (ts, dur: microseconds).
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    spent: dict[str, float] = collections.defaultdict(float)
    for event in events:  # one "<node>_kernel_time" event per operator run
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= runs[2]:
            spent[event["args"]["op_name"]] += event["dur"] / 1e3 / repeats
    return total, dict(spent)


def profile_model(model, x: np.ndarray, repeats: int) -> tuple[float, dict[str, float]]:
    """(ms per call, {step type: ms per call}): the engine's steps by label, or the reference's primitives."""
    spent: dict[str, float] = collections.defaultdict(float)
    if model.backend == "numba":
        model(x)  # builds the plan
        engine = model._engine
        run = lambda: engine(x, spent=spent)  # noqa: E731
    else:
        timed_reference(spent)
        run = lambda: model(x)  # noqa: E731
    run()
    spent.clear()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    total = (time.perf_counter() - start) * 1e3 / repeats
    return total, {name: seconds * 1e3 / repeats for name, seconds in spent.items()}


def timed_reference(spent: dict[str, float]) -> None:
    """Wrap model.py's and model_v2.py's primitives (in this worker process) so that each adds its time to
    spent[type]."""
    from mobilevit_np import model as reference
    from mobilevit_np import model_v2

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

    reference.conv_layer = wrap("conv", reference.conv_layer, conv_kind)
    reference.linear = wrap("linear (transformer)", reference.linear)
    reference.layer_norm = wrap("layer norm", reference.layer_norm)
    reference.multi_head_attention = wrap("attention (incl. q/k/v)", reference.multi_head_attention)
    reference.unfold = wrap("unfold", reference.unfold)
    reference.fold = wrap("fold", reference.fold)
    model_v2.conv_layer = wrap("conv", model_v2.conv_layer, conv_kind)  # v2's own binding of model.conv_layer
    model_v2.group_norm = wrap("group norm", model_v2.group_norm)
    model_v2.separable_self_attention = wrap("separable attention (incl. qkv, out)", model_v2.separable_self_attention)
    model_v2.unfold_v2 = wrap("unfold", model_v2.unfold_v2)
    model_v2.fold_v2 = wrap("fold", model_v2.fold_v2)


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


def startup(root: str, threads: int) -> dict:
    """First inference in a fresh process (import + load + one call), cold and warm numba cache; peak RSS."""
    folder = write_checkpoint(CASES[0], root)
    image = IMAGE if os.path.exists(IMAGE) else _write_test_image(root)
    cache = tempfile.mkdtemp(prefix="numba-cache-", dir=root)

    def run(who: str) -> tuple[float, float]:
        env = {**os.environ, **thread_env(threads), "NUMBA_CACHE_DIR": cache}
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
    parser.add_argument("--profile", action="store_true", help="time per layer type (ours) and per operator (ORT)")
    parser.add_argument("--startup", action="store_true", help="first-call time cold vs warm cache, and peak RSS")
    parser.add_argument("--model", default=None, help="only the cases whose label contains this")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per backend (default 40, quick 5)")
    parser.add_argument("--block", type=int, default=5, help="calls per backend before the next one's turn")
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated subset of {BACKENDS}")
    parser.add_argument("--json", default=None, help="write the results to this file (for plot.py)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="threads for every backend (default: all cores)"
    )
    args = parser.parse_args()

    cases = [c for c in CASES if args.model is None or args.model in c.label]
    if args.quick:
        cases = [c for c in cases if c.batch == 1 and c.head == "classification"][::2]
    repeats = args.repeats or (5 if args.quick else 40)
    with tempfile.TemporaryDirectory(prefix="mobilevit-bench-") as root:
        if args.profile:
            profile(cases[0], root, repeats, args.threads)
            return
        info = machine_info(args.threads)
        print(" | ".join(f"{k}: {v}" for k, v in info.items()))
        if info["OPENBLAS_CORETYPE"] != "(unset)":
            print("note: OPENBLAS_CORETYPE is set, which slows NumPy's BLAS; see docs/performance.md")
        report: dict = {"machine": info, "results": []}
        if args.startup:
            report["startup"] = startup(root, args.threads)
        else:
            peak = peak_gflops(args.threads)
            report["peak_gflops"] = peak
            print(f"peak: {peak:.0f} GFLOP/s (2048^3 float32 NumPy matmul, {args.threads} threads); "
                  "floor = 2 x multiply-adds / peak")  # fmt: skip
            header = "| model, input | backend | median ms | min ms | max ms | ours/torch | ours/ORT | ours/OpenVINO "
            print(header + "| ours/floor | max rel diff | peak RSS MB |\n|" + "---|" * 11)
            for case in cases:
                backends = tuple(args.backends.split(","))
                warmup = 2 if args.quick else 3
                result = measure(case, root, backends, repeats, args.block, args.threads, warmup)
                result["floor_ms"] = 2 * result["macs"] / peak / 1e6
                report["results"].append(result)
                print("\n".join(summarize(result)), flush=True)
        info["load_avg_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average after: {info['load_avg_after']}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
