"""Element-wise activations, by the names transformers' ACT2FN gives them.

MobileViT applies `config.hidden_act` (SiLU in every Apple checkpoint) after most
convolutions and inside the transformer MLP; the ASPP head always uses ReLU.
Each function maps an array to an array of the same shape and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# math.erf is exact to double precision; NumPy has no erf of its own. Vectorizing it is
# slow (about 50 ns per element) but only the non-default "gelu" family needs it.
_erf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """Gauss error function, computed in float64 and returned in x's dtype."""
    return _erf(x).astype(x.dtype, copy=False)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x) overflows e^-x for x << 0; the two-branch form never does.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU / swish: x * sigmoid(x) = x / (1 + e^-x). MobileViT's default activation.

    Written as one division (what torch computes) rather than x * sigmoid(x) above, its
    steps in one reused array (out=) rather than a temporary each: SiLU runs after most
    convolutions, on millions of values per image (what that buys: docs/performance.md).
    """
    e = np.negative(x)
    with np.errstate(over="ignore"):  # e^-x overflows to inf for x << 0: x / inf = -0, the right limit
        np.exp(e, out=e)
    e += 1
    return np.divide(x, e, out=e)  # x / (1 + e^-x)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 6)


def relu2(x: np.ndarray) -> np.ndarray:
    return np.square(relu(x))


def leaky_relu(x: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(x >= 0, x, x * x.dtype.type(slope))


def hardswish(x: np.ndarray) -> np.ndarray:
    return x * np.clip(x + 3, 0, 6) / 6


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))."""
    return x * 0.5 * (1 + erf(x / x.dtype.type(math.sqrt(2.0))))


def gelu_10(x: np.ndarray) -> np.ndarray:
    return np.clip(gelu(x), -10, 10)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """GELU's tanh approximation (gelu_new, gelu_pytorch_tanh, gelu_accurate)."""
    c = x.dtype.type(math.sqrt(2.0 / math.pi))
    return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))


def gelu_fast(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.tanh(x * 0.7978845608 * (1 + 0.044715 * x * x)))


def quick_gelu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x.dtype.type(1.702) * x)


def laplace(x: np.ndarray, mu: float = 0.707107, sigma: float = 0.282095) -> np.ndarray:
    return 0.5 * (1 + erf((x - x.dtype.type(mu)) / x.dtype.type(sigma * math.sqrt(2.0))))


def mish(x: np.ndarray) -> np.ndarray:
    """x * tanh(softplus(x)); softplus as log1p(e^-|x|) + max(x, 0) to avoid overflow."""
    softplus = np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)
    return x * np.tanh(softplus)


def identity(x: np.ndarray) -> np.ndarray:
    return x


# Every parameter-free activation in transformers' ACT2FN ("prelu" has weights and
# "xielu" / "sqrtsoftplus" are not used by vision models: not supported).
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": gelu,
    "gelu_python": gelu,
    "gelu_10": gelu_10,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_python_tanh": gelu_tanh,
    "gelu_accurate": gelu_tanh,
    "gelu_fast": gelu_fast,
    "quick_gelu": quick_gelu,
    "hardswish": hardswish,
    "laplace": laplace,
    "leaky_relu": leaky_relu,
    "linear": identity,
    "mish": mish,
    "relu": relu,
    "relu2": relu2,
    "relu6": relu6,
    "sigmoid": sigmoid,
    "silu": silu,
    "swish": silu,
    "tanh": np.tanh,
}


def get_activation(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The activation called `name` in a transformers config."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}") from None
