"""The bulk job on real Dask clusters on 127.0.0.1 (mobilevit_np.distributed): a LocalCluster of 2 worker
processes, and separate `dask scheduler` / `dask worker` processes that the test starts and stops.

Test hooks are `load` functions (path -> image) defined inside the tests, so Dask ships them to the
workers by value: they record what each worker process saw, or kill it with os._exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from photos import write_photos

from mobilevit_np.bulk import predict_files, read_rows

dask = pytest.importorskip("dask")
pytest.importorskip("distributed")

BROKEN = (5,)


@pytest.fixture
def photos(tmp_path):
    return write_photos(tmp_path / "photos", 12, broken=BROKEN)


def one_machine(photos, tiny_classifier, out, **options) -> list[dict]:
    predict_files(photos, tiny_classifier, str(out), shard_size=4, batch_size=2, quiet=True, **options)
    return list(read_rows(out))


def recording(folder: str):
    """A load hook that writes, per worker process, the model loads and the thread counts it ran with."""

    def load(path):
        import json
        import os

        import numba
        from distributed import get_worker
        from threadpoolctl import threadpool_info

        from mobilevit_np.image_processing import load_image

        worker = get_worker()
        seen = {
            "worker": worker.address,
            "loads": worker.plugins["mobilevit-np"].loads,
            "numba_threads": numba.get_num_threads(),
            "blas_threads": sorted({pool["num_threads"] for pool in threadpool_info()}),
            "NUMBA_NUM_THREADS": os.environ.get("NUMBA_NUM_THREADS"),
            "executor_threads": worker.state.nthreads,
        }
        with open(os.path.join(folder, f"{os.getpid()}-{os.path.basename(path)}.json"), "w") as f:
            json.dump(seen, f)
        return load_image(path)

    return load


def probes(folder) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.iterdir())]


def assert_one_model_and_one_thread_per_worker(seen: list[dict], workers: int) -> None:
    assert {s["worker"] for s in seen} and len({s["worker"] for s in seen}) <= workers
    for s in seen:
        assert s["loads"] == 1, s  # the plugin built the model once in this worker process
        assert s["numba_threads"] == 1 and s["blas_threads"] == [1] and s["NUMBA_NUM_THREADS"] == "1", s
        assert s["executor_threads"] == 1, s


def test_local_cluster_rows_equal_the_one_machine_run(photos, tiny_classifier, tmp_path):
    expected = one_machine(photos, tiny_classifier, tmp_path / "one.jsonl")
    seen = tmp_path / "seen"
    seen.mkdir()
    summary = predict_files(
        photos, tiny_classifier, str(tmp_path / "dask.jsonl"), shard_size=4, batch_size=2, quiet=True,
        scheduler="local:2", load=recording(str(seen)),
    )  # fmt: skip
    rows = list(read_rows(tmp_path / "dask.jsonl"))
    assert rows == expected  # same batches, so the same numbers, not just close ones
    assert summary["done"] == 11 and summary["failed"] == 1 and "error" in rows[BROKEN[0]]
    assert_one_model_and_one_thread_per_worker(probes(seen), workers=2)
    assert len(probes(seen)) == 12  # every image read once (none twice: nothing was retried)


def test_a_worker_killed_mid_run_loses_nothing(photos, tiny_classifier, tmp_path):
    expected = one_machine(photos, tiny_classifier, tmp_path / "one.jsonl")
    marker = str(tmp_path / "killed-once")
    victim = photos[6]

    def kill_once(path):
        import os

        from mobilevit_np.image_processing import load_image

        if path == victim and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies mid-shard; the nanny starts a new one
        return load_image(path)

    predict_files(
        photos, tiny_classifier, str(tmp_path / "dask.jsonl"), shard_size=4, batch_size=2, quiet=True,
        scheduler="local:2", load=kill_once,
    )  # fmt: skip
    assert os.path.exists(marker)
    assert list(read_rows(tmp_path / "dask.jsonl")) == expected


@pytest.mark.slow
def test_a_file_that_keeps_killing_workers_becomes_an_error_row(photos, tiny_classifier, tmp_path):
    expected = one_machine(photos, tiny_classifier, tmp_path / "one.jsonl")
    poison = photos[2]

    def deadly(path):
        import os

        from mobilevit_np.image_processing import load_image

        if path == poison:
            os._exit(1)
        return load_image(path)

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # KilledWorker at the first death
        summary = predict_files(
            photos, tiny_classifier, str(tmp_path / "dask.jsonl"), shard_size=4, batch_size=2, quiet=True,
            scheduler="local:2", load=deadly,
        )  # fmt: skip
    rows = list(read_rows(tmp_path / "dask.jsonl"))
    assert rows[2] == {
        "image": poison,
        "error": f"{poison}: the Dask worker processing this file died each time it was tried",
    }
    assert summary["failed"] == 2 and summary["done"] == 10
    for got, want in zip(rows, expected, strict=True):  # the poisoned shard's neighbours ran one by one
        if "predictions" in want and got is not rows[2]:
            assert [p["index"] for p in got["predictions"]] == [p["index"] for p in want["predictions"]]
            np.testing.assert_allclose(
                [p["probability"] for p in got["predictions"]],
                [p["probability"] for p in want["predictions"]],
                rtol=2e-5,
            )


# ---------------------------------------------------------------- separate scheduler and worker processes


@pytest.fixture
def dask_processes(tmp_path):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, stopped (and waited for) after the test."""
    scheduler_file = tmp_path / "scheduler.json"
    python, quiet = [sys.executable, "-m", "dask"], dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = ["--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
    scheduler = subprocess.Popen([*python, "scheduler", *address, "--scheduler-file", str(scheduler_file)], **quiet)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scheduler_file.exists(), "dask scheduler did not start"
        worker = [*python, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1", "--no-dashboard"]
        workers = [subprocess.Popen([*worker, "--host", "127.0.0.1"], **quiet) for _ in range(2)]
        yield str(scheduler_file)
    finally:
        for process in [*workers, scheduler]:
            process.terminate()
        for process in [*workers, scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_separate_scheduler_and_worker_processes_give_the_same_rows_and_resume(
    photos, tiny_classifier, tmp_path, dask_processes
):
    expected = one_machine(photos, tiny_classifier, tmp_path / "one", backend="auto")  # numba, if installed
    out, seen = tmp_path / "dask", tmp_path / "seen"
    seen.mkdir()
    options = dict(shard_size=4, batch_size=2, quiet=True, scheduler_file=dask_processes, backend="auto")
    predict_files(photos, tiny_classifier, str(out), load=recording(str(seen)), **options)
    assert list(read_rows(out)) == expected
    assert_one_model_and_one_thread_per_worker(probes(seen), workers=2)

    os.remove(out / "_SUCCESS")  # as if the run had stopped before shard 1 was written
    os.remove(out / "part-000001.jsonl")
    for probe in seen.iterdir():
        probe.unlink()
    summary = predict_files(photos, tiny_classifier, str(out), load=recording(str(seen)), **options)
    assert summary["skipped"] == 8 and summary["done"] + summary["failed"] == 4
    loaded = sorted(p.name.split("-", 1)[1][: -len(".json")] for p in seen.iterdir())
    assert loaded == sorted(os.path.basename(p) for p in photos[4:8])  # shard 1 only
    assert list(read_rows(out)) == expected


# ---------------------------------------------------------------- command line


def mobilevit_np(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mobilevit_np", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--scheduler", "local:x"], "--scheduler local:x: local:N needs a worker count N >= 1"),
        (["--scheduler-file", "/nonexistent/scheduler.json"], "scheduler file not found: /nonexistent/scheduler.json"),
        (
            ["--scheduler", "local:2", "--model", "/nonexistent/model"],
            "checkpoint folder not found: /nonexistent/model",
        ),
    ],
)
def test_cli_cluster_problems_are_one_line_before_any_work(options, message, photos, tiny_classifier, tmp_path):
    args = ["classify", str(tmp_path / "photos"), "--model", tiny_classifier, "-o", str(tmp_path / "rows"), *options]
    result = mobilevit_np(*args)
    assert result.returncode == 1 and result.stderr.startswith(f"mobilevit-np: error: {message}"), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "rows" / "_SUCCESS").exists()


@pytest.mark.slow
def test_cli_scheduler_local_writes_the_rows_of_a_one_machine_run(photos, tiny_classifier, tmp_path):
    folder = str(tmp_path / "photos")
    for out, options in (("one.jsonl", []), ("dask.jsonl", ["--scheduler", "local:2"])):
        result = mobilevit_np("classify", folder, "--model", tiny_classifier, "-o", str(tmp_path / out), *options)
        assert result.returncode == 0 and "11 done, 1 failed, 0 skipped of 12" in result.stderr, result.stderr
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "dask.jsonl").read_bytes()
