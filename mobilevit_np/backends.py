"""Choosing how the forward pass runs: the NumPy reference or the Numba fast path.

    model = MobileViTForImageClassification.from_pretrained(folder, backend="auto")

"numpy" runs model.py on the functions of layers.py (the reference, always available).
"numba" runs the same model.py on mobilevit_np.kernels (install with
`pip install "mobilevit-np[fast]"`), with batch norm folded into the preceding
convolution's weights once, at load time. "auto" picks numba when it can be imported
and NumPy otherwise, silently. Both compute in the model's dtype; the numba outputs match
the reference to float32 rounding (~1e-6 relative), which tests/test_backend.py checks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mobilevit_np.architecture import BATCH_NORM_EPS

if TYPE_CHECKING:
    from mobilevit_np.model import Ops

BACKENDS = ("numpy", "numba", "auto")
# A parameter tree (weights.build_tree) or any node inside it, which the tree rewrites below recurse into.
ParamTree = dict | list | np.ndarray
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


def get_ops(backend: str) -> Ops:
    """The primitive set (model.Ops) for a resolved backend."""
    from mobilevit_np.model import REFERENCE_OPS, Ops

    if backend == "numpy":
        return REFERENCE_OPS
    from mobilevit_np.kernels import ops as fast
    from mobilevit_np.kernels.transformer import layer_norm

    return Ops(
        conv_layer=fast.conv_layer,
        linear=fast.linear,
        layer_norm=layer_norm,
        multi_head_attention=fast.multi_head_attention,
        unfold=REFERENCE_OPS.unfold,  # one strided copy each: the profile shows them below 1% of the time
        fold=REFERENCE_OPS.fold,
        get_activation=fast.get_activation,
    )


# ------------------------------------------------------------ batch-norm folding


def fold_batch_norm(
    weight: np.ndarray, bias: np.ndarray | None, normalization: dict[str, np.ndarray], eps: float = BATCH_NORM_EPS
) -> tuple[np.ndarray, np.ndarray]:
    """Fold an inference batch norm into the convolution before it.

    conv weight (O, C/g, k, k), conv bias (O,) or None, and the norm's {weight, bias,
    running_mean, running_var} (each (O,)) -> (weight', bias') such that
        batch_norm(conv(x, weight, bias)) == conv(x, weight', bias')
    with scale = norm.weight / sqrt(running_var + eps):
        weight' = weight * scale[:, None, None, None],  bias' = (bias - running_mean) * scale + norm.bias
    """
    mean, var = normalization["running_mean"], normalization["running_var"]
    scale = normalization["weight"] / np.sqrt(var + weight.dtype.type(eps))  # (O,)
    conv_bias = np.zeros_like(mean) if bias is None else bias
    folded_weight = np.ascontiguousarray(weight * scale[:, None, None, None])
    return folded_weight, (conv_bias - mean) * scale + normalization["bias"]


def rewrite_tree(params: ParamTree, rewrite: Callable[[dict], dict | None]) -> ParamTree:
    """A copy of a parameter tree in which each dict node is rewrite(node), or, where that is None,
    the node with its children rewritten the same way. Arrays are shared, never copied."""
    if isinstance(params, list):
        return [rewrite_tree(p, rewrite) for p in params]
    if not isinstance(params, dict):
        return params
    replaced = rewrite(params)
    return replaced if replaced is not None else {k: rewrite_tree(v, rewrite) for k, v in params.items()}


def fold_batch_norms(params: ParamTree) -> ParamTree:
    """A copy of a parameter tree with every {convolution, normalization} pair folded into one conv.

    Applied once at load time for the numba backend: conv_layer then receives no
    normalization and a convolution with a bias. Arrays that are not folded are shared.
    """

    def fold(node: dict) -> dict | None:
        if "convolution" not in node or node.get("normalization") is None:
            return None
        conv = node["convolution"]
        weight, bias = fold_batch_norm(conv["weight"], conv.get("bias"), node["normalization"])
        rest = {k: fold_batch_norms(v) for k, v in node.items() if k not in ("convolution", "normalization")}
        return {"convolution": {"weight": weight, "bias": bias}, **rest}

    return rewrite_tree(params, fold)


def fuse_attention_projections(params: ParamTree) -> ParamTree:
    """A copy of a parameter tree where each attention's {query, key, value} also has "qkv".

    qkv = {"weight": [Wq; Wk; Wv] (3D, D), "bias": (3D,)}: the numba attention projects with
    one matmul instead of three. query/key/value become views into it (no second copy).
    """

    def fuse(node: dict) -> dict | None:
        if not {"query", "key", "value"} <= node.keys():
            return None
        from mobilevit_np.kernels.ops import fuse_qkv

        qkv = fuse_qkv(node["query"], node["key"], node["value"])
        width = node["query"]["weight"].shape[0]
        views = {}
        for i, name in enumerate(("query", "key", "value")):
            rows = slice(i * width, (i + 1) * width)
            views[name] = {"weight": qkv["weight"][rows], "bias": qkv["bias"][rows]}
        return {**node, **views, "qkv": qkv}

    return rewrite_tree(params, fuse)


def add_conv_taps(params: ParamTree) -> ParamTree:
    """A copy of a parameter tree where each dense kxk convolution (k > 1) also has "taps".

    taps = the weight (O, C, k, k) as (k*k*O, C), tap-major (kernels.conv.tap_major): the
    layout the numba dense convolution multiplies by, made once instead of per call.
    """

    def add_taps(node: dict) -> dict | None:
        weight = node.get("weight")
        if not (isinstance(weight, np.ndarray) and weight.ndim == 4 and weight.shape[1] > 1 and weight.shape[-1] > 1):
            return None
        from mobilevit_np.kernels.conv import tap_major

        return {**node, "taps": tap_major(weight)}

    return rewrite_tree(params, add_taps)


def prepare_params(params: dict, backend: str) -> dict:
    """The parameter tree a resolved backend runs on: as loaded for numpy; for numba, batch
    norms folded into the convolutions, each attention's q/k/v projections fused and each
    dense kxk convolution's weights also kept tap-major."""
    if backend != "numba":
        return params
    return add_conv_taps(fuse_attention_projections(fold_batch_norms(params)))
