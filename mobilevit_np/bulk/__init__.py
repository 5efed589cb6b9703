"""Bulk inference: many images in, one row per image out, resumable; on one machine or a Dask cluster.

    from mobilevit_np.bulk import predict_files
    summary = predict_files(["photos/"], "path/to/mobilevit-small", "labels.jsonl", batch_size=8)

Modules: inputs (folders, globs, @lists, URLs -> a path list), predictor (the model and one row
per image), store (shard files, resume, _SUCCESS), run (the whole job). The Dask version is
mobilevit_np.distributed, used through predict_files(..., scheduler=...).
"""

from mobilevit_np.bulk.inputs import InputError, expand_inputs
from mobilevit_np.bulk.run import iter_predictions, predict_files
from mobilevit_np.bulk.store import OutputError, read_rows

__all__ = ["InputError", "OutputError", "expand_inputs", "iter_predictions", "predict_files", "read_rows"]
