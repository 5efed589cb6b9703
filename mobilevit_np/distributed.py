"""The bulk job on a Dask cluster (the `dask` extra): shards of the input list as tasks, one model per worker.

    predict_files(["photos/"], "mobilevit-small", "labels.jsonl", scheduler="local:2")   # a LocalCluster
    predict_files(..., scheduler="tcp://10.0.0.5:8786")      # an existing cluster
    predict_files(..., scheduler_file="scheduler.json")     # `dask scheduler --scheduler-file ...`

Imported by mobilevit_np.bulk only when a scheduler is asked for. What runs where:
- the client (this process) expands the inputs, skips the shards already written, and
  writes every shard file, the single-file output and _SUCCESS, exactly as a one-machine
  run does (mobilevit_np.bulk.store), so resume rules and outputs are the same;
- each worker loads the model once, in a worker plugin (`ModelPlugin.setup`), and runs one
  shard per task: the same batches as on one machine, so the rows are the same;
- one thread per worker for NumPy's BLAS, OpenMP and numba: the nanny caps OMP/OpenBLAS/MKL
  before the worker starts; the plugin sets NUMBA_NUM_THREADS (numba reads it once, at import)
  and limits BLAS with threadpoolctl (workers started without a nanny too);
- a task that raises is retried (`RETRIES`); a worker that dies has its tasks moved to
  another (Dask's `distributed.scheduler.allowed-failures`). A shard whose task keeps killing
  workers is split: each image runs alone, and an image that still kills its worker when
  run by itself gets an error row, so one poisonous file cannot fail the job.
Workers must reach the images (a shared folder, or fsspec URLs) and, for segment, --masks-dir.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import KilledWorker

from mobilevit_np.bulk.predictor import Item, JobSpec, Row, predict_stream
from mobilevit_np.bulk.store import Shard

PLUGIN = "mobilevit-np"
RETRIES = 2  # a task that raised (not a lost worker: that is allowed-failures) runs again this often
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


class ClusterError(RuntimeError):
    """A scheduler that cannot be reached or a --scheduler value that names none."""


def limit_threads() -> None:
    """One thread for every library this process computes with (call in the worker, before the model runs)."""
    os.environ.update(ONE_THREAD)  # numba sizes its pool from NUMBA_NUM_THREADS when first imported
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # then the nanny's OMP/OPENBLAS/MKL caps are what holds BLAS to one thread
        pass
    else:
        threadpool_limits(limits=1)
    _numba_one_thread()


def _numba_one_thread() -> None:
    """numba's thread count is per thread (tasks run in the worker's executor): set it where the work runs."""
    if "numba" in sys.modules:  # imported before NUMBA_NUM_THREADS was set, or by the model just now
        import numba

        numba.set_num_threads(1)


class ModelPlugin(WorkerPlugin):
    """Loads the job's model once when a worker joins (and again only if that worker process restarts)."""

    name = PLUGIN

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.predictor = None
        self.loads = 0  # how often this worker process built the model: 1 (a probe for the tests)

    def setup(self, worker: Any) -> None:
        limit_threads()
        self.predictor = self.spec.build()
        self.loads += 1

    def teardown(self, worker: Any) -> None:
        self.predictor = None  # the job is over: give the model's memory back to the cluster


def run_items(items: list[Item], batch_size: int) -> list[Row]:
    """The task: one shard's rows on this worker, read inline (one thread), in the one-machine batches."""
    plugin: ModelPlugin = get_worker().plugins[PLUGIN]
    _numba_one_thread()
    return [row for _, row in predict_stream(plugin.predictor, ((0, item) for item in items), batch_size, 0)]


def _worker_count(scheduler: str) -> int:
    count = scheduler.partition(":")[2] or str(os.cpu_count() or 1)
    if not count.isdigit() or int(count) < 1:
        raise ClusterError(f"--scheduler {scheduler}: local:N needs a worker count N >= 1 (e.g. local:2)")
    return int(count)


@contextmanager
def connect(scheduler: str | None, scheduler_file: str | None) -> Iterator[Client]:
    """A client for "local:N" (a LocalCluster of N one-thread worker processes, closed afterwards),
    a scheduler address, or a scheduler file."""
    if scheduler and scheduler.split(":")[0] == "local":
        cluster = LocalCluster(
            n_workers=_worker_count(scheduler),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,  # a restarted worker is reported in its rows, not as log lines
            env=ONE_THREAD,  # set before each worker process starts, so numba and BLAS see it at import
        )
        with cluster, Client(cluster) as client:
            yield client
        return
    if scheduler_file and not os.path.isfile(scheduler_file):  # Client would wait for it to appear, forever
        raise ClusterError(f"scheduler file not found: {scheduler_file} (written by `dask scheduler --scheduler-file`)")
    where = scheduler or f"the scheduler file {scheduler_file}"
    try:
        client = Client(scheduler, scheduler_file=scheduler_file, timeout="20s")
    except (OSError, ValueError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the Dask scheduler at {where}: {e}") from None
    with client:
        client.wait_for_workers(1, timeout=60)
        yield client


def _error_of_a_killer(path: str) -> Row:
    return {"image": path, "error": f"{path}: the Dask worker processing this file died each time it was tried"}


def _alone(client: Client, item: Item) -> Row:
    """Run one image by itself; if its worker dies even so, the image gets an error row."""
    try:
        return client.submit(run_items, [item], 1, pure=False).result()[0]
    except KilledWorker:
        return _error_of_a_killer(item[1])


def _isolate(client: Client, items: list[Item]) -> list[Row]:
    """A shard whose task kept killing workers: each image as its own task, the suspects then one at a time."""
    futures = [client.submit(run_items, [item], 1, pure=False, retries=RETRIES) for item in items]
    rows = []
    for item, future in zip(items, futures, strict=True):
        try:
            rows += future.result()
        except KilledWorker:  # this image, or a neighbour on the same worker, killed it: try it alone
            rows.append(_alone(client, item))
    return rows


def cluster_shard_rows(
    spec: JobSpec,
    paths: list[str],
    shards: list[Shard],
    batch_size: int,
    scheduler: str | None,
    scheduler_file: str | None,
    advance: Callable[[int], Any],
) -> Iterator[tuple[Shard, list[Row]]]:
    """Each shard's rows as its task finishes (any order); the client writes them."""
    if not shards:
        return
    spec.check()  # a wrong --model is one line here, not a traceback from every worker
    with connect(scheduler, scheduler_file) as client:
        client.register_plugin(ModelPlugin(spec), name=PLUGIN)  # waits until every worker has loaded the model
        try:
            tasks = {
                client.submit(run_items, shard.items(paths), batch_size, pure=False, retries=RETRIES): shard
                for shard in shards
            }
            for future in as_completed(tasks):
                shard = tasks.pop(future)
                try:
                    rows = future.result()
                except KilledWorker:
                    rows = _isolate(client, shard.items(paths))
                future.release()
                advance(len(rows))
                yield shard, rows
        finally:
            client.unregister_worker_plugin(PLUGIN)
