"""Which dtype a model keeps its weights in, and which dtype it computes in.

    from_pretrained(folder, dtype=np.float32)    # the default: weights and computation in float32
    from_pretrained(folder, dtype=np.float64)    # both in float64 (~1e-15 from transformers' float64 run)
    from_pretrained(folder, dtype="float16")     # weights kept in float16, computation in float32
    from_pretrained(folder, dtype="bfloat16")    # weights rounded to bfloat16, held and computed in float32
    from_pretrained(folder, dtype="auto")        # whatever the checkpoint says (config.json "dtype", else its tensors)

NumPy has no fast half-precision arithmetic (float16 math is emulated, and there is no
bfloat16 type at all), so half precision here means *storage*: a float16 model holds its
weights at half the size and every operation promotes them to float32, so the outputs are
float32 and match transformers' float32 run of the same weights to float32 rounding. The
Numba fast path's kernels take float32 weights, so with backend="numba" float16 weights are
widened to float32 at load. A bfloat16 model rounds its weights to bfloat16 (as transformers'
dtype=torch.bfloat16 does) and keeps those values in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mobilevit_np.checkpoints.safetensors_io import round_to_bfloat16


@dataclass(frozen=True)
class Precision:
    name: str  # "float32", "float64", "float16" or "bfloat16"
    storage: np.dtype  # the weights' dtype in memory
    compute: np.dtype  # the dtype of inputs, activations and outputs


PRECISIONS = {
    "float32": Precision("float32", np.dtype(np.float32), np.dtype(np.float32)),
    "float64": Precision("float64", np.dtype(np.float64), np.dtype(np.float64)),
    "float16": Precision("float16", np.dtype(np.float16), np.dtype(np.float32)),
    "bfloat16": Precision("bfloat16", np.dtype(np.float32), np.dtype(np.float32)),
}
ALIASES = {"float": "float32", "double": "float64", "half": "float16", "fp32": "float32", "fp16": "float16"}
AUTO = "auto"


def precision_name(dtype: Any) -> str:
    """A dtype as NumPy, a string ("float16", "torch.bfloat16", "auto") or a torch dtype -> its name here."""
    if isinstance(dtype, str) or type(dtype).__module__ == "torch":
        name = str(dtype).removeprefix("torch.")
        name = ALIASES.get(name, name)
        if name in PRECISIONS or name == AUTO:
            return name
    else:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            name = None
        if name in PRECISIONS:
            return name
    raise ValueError(f"dtype must be float32, float64, float16, bfloat16 or 'auto', got {dtype!r}")


def checkpoint_precision(config_extra: dict[str, Any], tensors: dict[str, np.ndarray]) -> Precision:
    """dtype="auto": config.json's "dtype" (transformers 5) or "torch_dtype" (4.x), else the tensors' float dtype.

    bfloat16 files are read as float32 (exactly), so without a config entry they load as float32.
    """
    declared = config_extra.get("dtype", config_extra.get("torch_dtype"))
    if isinstance(declared, str) and declared.removeprefix("torch.") in PRECISIONS:
        return PRECISIONS[declared.removeprefix("torch.")]
    float_dtypes = {a.dtype.name for a in tensors.values() if np.issubdtype(a.dtype, np.floating)}
    for name in ("float64", "float32", "float16"):  # the widest one present, so nothing is rounded
        if name in float_dtypes:
            return PRECISIONS[name]
    return PRECISIONS["float32"]


def resolve_precision(
    dtype: Any, config_extra: dict[str, Any] | None = None, tensors: dict[str, np.ndarray] | None = None
) -> Precision:
    """The Precision for a `dtype=` argument; "auto" looks at the checkpoint (config.json keys, tensors)."""
    name = precision_name(dtype)
    if name == AUTO:
        return checkpoint_precision(config_extra or {}, tensors or {})
    return PRECISIONS[name]


def store(weights: dict[str, np.ndarray], precision: Precision, backend: str) -> dict[str, np.ndarray]:
    """Weights already cast to precision.storage -> what the model keeps (bfloat16 rounded; float32 for numba)."""
    if precision.name == "bfloat16":
        return {name: round_to_bfloat16(w) for name, w in weights.items()}
    if backend == "numba" and precision.storage != precision.compute:
        return {name: w.astype(precision.compute) for name, w in weights.items()}  # the kernels take float32
    return weights
