"""Activation codes of the kernels, and the scalar exp the attention softmax uses.

NumPy's exp is vectorized (SIMD); a numba loop calling np.exp is not (it calls libm once
per element, ~3 ns; llvmlite has no vector math library). `fast_exp` is the classic Cephes
expf for float32: split x = k ln2 + r with |r| <= ln2/2, a degree-6 polynomial for e^r,
and 2^k built directly from its IEEE-754 bits. Every step is plain arithmetic, so LLVM
vectorizes whole loops. float64 uses np.exp.

The input is first clamped to [-87.33654, 88] so that 2^k stays a normal float32. Inside
that range the relative error against float64 exp is below 1e-7 (8.3e-8 at most, measured
on 25M points); NaN stays NaN. Outside it fast_exp returns the value at the clamp, where
np.exp gives 0, a denormal or inf. So SiLU (x / (1 + e^-x)) matches the NumPy reference to
2e-7 relative for |x| <= 87 and at +inf and NaN, but below about -88.7 it returns
x * 1.2e-38 where the reference returns -0.0, and SiLU(-inf) is -inf where the reference
gives NaN.

The convolution tiles apply SiLU (MobileViT's activation) and ReLU (ASPP's) in registers,
with the same polynomial as vector code (simd._Vectors.exp). Compiled for AVX-512, that
vector exp makes 2^k with vscalefps instead of from its bits and clamps only below -104:
it gives 0, denormals and inf where np.exp does, so there SiLU also matches the reference
below -88.7 (-0.0) and at -inf (NaN). The engine applies any other
activation of activations.py (GELU, Mish, ...) as the reference function itself, in place
on the kernel's output (engine.py).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from mobilevit_np.activations import relu, silu

# Activation codes the kernels take (an int, so one compiled kernel serves all).
NONE, SILU, RELU = 0, 1, 2
FUSED = {silu: SILU, relu: RELU}  # reference function -> code


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (C's memcpy trick, one instruction)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, context.get_value_type(types.float32))

    return types.float32(bits), codegen


def fast_exp(v):
    """e^v; in Python (NUMBA_DISABLE_JIT=1) simply np.exp."""
    return np.exp(v)


@overload(fast_exp, inline="always")
def _fast_exp_jit(v):
    if v != types.float32:
        return lambda v: np.exp(v)

    def expf(v):
        v = min(max(v, np.float32(-87.33654)), np.float32(88.0))  # e^v stays a finite, normal float32
        k = np.floor(v * np.float32(1.4426950408889634) + np.float32(0.5))  # round(v / ln 2)
        r = v - k * np.float32(0.693359375) + k * np.float32(2.12194440e-4)  # v - k ln2, in two parts
        p = np.float32(1.9875691500e-4)
        p = p * r + np.float32(1.3981999507e-3)
        p = p * r + np.float32(8.3334519073e-3)
        p = p * r + np.float32(4.1665795894e-2)
        p = p * r + np.float32(1.6666665459e-1)
        p = p * r + np.float32(5.0000001201e-1)
        p = p * r * r + r + np.float32(1)  # e^r
        return p * _float32_from_bits((np.int32(k) + np.int32(127)) << 23)  # * 2^k

    return expf
