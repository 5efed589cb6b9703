"""Choosing how the forward pass runs: the NumPy reference or the Numba fast engine.

    model = MobileViTForImageClassification.from_pretrained(folder, backend="auto")

"numpy" runs model.py / model_v2.py (the reference, always available). "numba" runs the fast
engine (mobilevit_np.kernels.engine, engine_v2 for MobileViTV2; install with
`pip install "mobilevit-np[fast]"`), a separate program built from the same parameters at load
time, whose outputs match the reference to float32 rounding (~1e-6 relative; tests/test_backend.py).
"auto" picks numba when it can be imported and NumPy otherwise, silently. The engine computes in
float32: a model loaded with dtype=np.float64 runs the reference whatever the backend (exact to
~1e-15 there).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

BACKENDS = ("numpy", "numba", "auto")
FAST_EXTRA_HINT = 'pip install "mobilevit-np[fast]"'


def numba_available() -> bool:
    """True when numba can be imported (the `fast` extra is installed)."""
    try:
        importlib.import_module("numba")
    except ImportError:
        return False
    return True


def resolve_backend(backend: str) -> str:
    """ "numpy", "numba" or "auto" -> the backend that will run ("numpy" or "numba")."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if backend == "auto":
        return "numba" if numba_available() else "numpy"
    if backend == "numba" and not numba_available():
        raise ImportError(
            f'backend="numba" needs numba, which is not installed; install the fast extra: {FAST_EXTRA_HINT} '
            '(or use backend="auto" to fall back to NumPy)'
        )
    return backend


def make_engine(model: Any) -> Any:
    """The fast engine for a model (modeling._PreTrained), or False when it runs the reference
    (backend "numpy", or float64 weights)."""
    if model.backend != "numba" or model.dtype != np.float32:
        return False
    if model.config.model_type == "mobilevitv2":
        from mobilevit_np.kernels.engine_v2 import EngineV2 as Engine
    else:
        from mobilevit_np.kernels.engine import Engine

    return Engine(model.config, model.params, model.head, getattr(model, "expand_output", True))
