"""Register tiles: the two inner loops of the engine, written as explicit LLVM vector code.

Every feature map in the engine is stored in blocks of LANES = 16 channels (the channel
block is the last axis, see layout.py), so one vector register (or two or four, on
narrower machines: LLVM splits a 16-lane vector into what the target has) holds 16
channels of one pixel. Two loops do almost all of the arithmetic:

gemm_tile (matrix products: 1x1 and kxk convolutions, linears, both attention products)
    C[r, n*16 : n*16+16] = init + sum_t sum_k A[r, t, k] * B[t, k, n*16 : n*16+16]  (+ bias)
    for r < ROWS rows and n < BLOCKS column blocks: ROWS x BLOCKS accumulators stay in
    registers while k runs, each step one broadcast of A[r, t, k] and one fused multiply-add
    per accumulator. t runs over the kernel taps of a kxk convolution (one tap otherwise).

depthwise_tile (depthwise convolutions)
    C[r, 0:16] = bias + sum_t W[t, 0:16] * X[r, t, 0:16]  for r < ROWS output pixels.

Written as scalar Python loops, LLVM keeps the accumulators in memory (9-16 GFLOP/s
measured for a 6 x 64 tile); as vector IR they stay in registers (150-270 GFLOP/s on one
AVX-512 core). Addresses are element offsets into flat arrays, computed by the caller:

    A[r, t, k] = a[a_off + a_taps[t] + r * a_rs + ((k + k0) // 16) * a_kbs + (k + k0) % 16]
    B[t, k, n*16 + l] = b[b_off + b_taps[t] + k * b_ks + n * b_bs + l]
    C[r, n*16 + l] = c[c_off + r * c_rs + n * c_bs + l], init from r_arr[r_off + r * c_rs + n * r_bs + l]

flags say what happens to a tile before it is stored: LOAD_INIT, ADD_BIAS, then SILU or RELU
(the activation in registers, with the same polynomial exp as activation.fast_exp).

so one tile serves every layout the engine uses. The NumPy twin of a full product is
`np.matmul`; kernels/conv.py and kernels/attention.py name theirs.

How big a tile is: chosen for the target the code is compiled for (NUMBA_CPU_NAME, or the
host), so that accumulators + operands fit its vector registers: AVX-512 has 32 registers
of 16 floats (6 x 4 accumulators), AVX2 16 of 8 (6 x 1, two registers each), arm64 NEON
32 of 4 (6 x 1, four each). Results do not depend on the tile shape, only speed does.
"""

from __future__ import annotations

import os
import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic

LANES = 16  # channels per block; every layout in the engine uses it, whatever the vector width

# gemm_tile flags
LOAD_INIT = 1  # start from r_arr (a residual, or partial sums) instead of zero
ADD_BIAS = 2  # add bias[bias_off + n*16 + l] at the end
SILU = 4  # then x / (1 + e^-x) in registers (activation.fast_exp's polynomial, as vector code)
RELU = 8  # then max(x, 0), NaN kept

_AVX512_CPUS = ("skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake", "tigerlake", "rocketlake")
_AVX512_CPUS += (
    "sapphirerapids",
    "emeraldrapids",
    "graniterapids",
    "znver4",
    "znver5",
    "x86-64-v4",
    "alderlake-avx512",
)


def _target_has_avx512() -> bool:
    """Whether the code numba compiles may use AVX-512: NUMBA_CPU_NAME / NUMBA_CPU_FEATURES, else the host."""
    features = os.environ.get("NUMBA_CPU_FEATURES") or config.CPU_FEATURES
    if features:
        return "+avx512f" in features
    name = os.environ.get("NUMBA_CPU_NAME") or config.CPU_NAME
    if name and name != "host":
        return name.startswith(_AVX512_CPUS)
    from llvmlite import binding

    return bool(binding.get_host_cpu_features().get("avx512f", False))


def _float32_avx512() -> bool:
    """Whether the vector code may use AVX-512 instructions (a 16-float vector is one zmm register)."""
    return platform.machine().lower() in ("x86_64", "amd64") and _target_has_avx512()


def tile_shape() -> tuple[int, int]:
    """(ROWS, BLOCKS) of gemm_tile for the compile target (see the module docstring)."""
    return (6, 4) if _float32_avx512() else (6, 1)


def depthwise_rows() -> int:
    """ROWS of depthwise_tile: 8 accumulators with AVX-512's 32 registers, 4 where vectors take 2-4 registers."""
    return 8 if tile_shape()[1] > 1 else 4


_AVX512 = _float32_avx512()  # the compile target's, once per process (numba caches code per CPU kind)


# ----------------------------------------------------------------- IR helpers


class _Vectors:
    """Vector loads, stores, broadcasts and FMAs of one codegen call."""

    def __init__(self, context, builder, dtype):
        self.builder = builder
        self.scalar = context.get_value_type(dtype)
        self.vector = ir.VectorType(self.scalar, LANES)
        self.i64 = ir.IntType(64)
        fma_type = ir.FunctionType(self.vector, [self.vector] * 3)
        self._fma = cgutils.get_or_insert_function(
            builder.module, fma_type, f"llvm.fma.v{LANES}{self.scalar.intrinsic_name}"
        )
        self._undef = ir.Constant(self.vector, ir.Undefined)
        self._zero_mask = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

    def const(self, n: int):
        return ir.Constant(self.i64, n)

    def offset(self, *terms):
        """Sum of i64 terms; (value, int) pairs are value * int."""
        b = self.builder
        total = None
        for term in terms:
            if isinstance(term, tuple):
                value, scale = term
                term = (
                    value
                    if scale == 1
                    else b.mul(value, self.const(scale))
                    if isinstance(scale, int)
                    else b.mul(value, scale)
                )
            total = term if total is None else b.add(total, term)
        return total

    def load(self, base, index):
        pointer = self.builder.bitcast(self.builder.gep(base, [index]), self.vector.as_pointer())
        return self.builder.load(pointer, align=4)

    def store(self, value, base, index):
        pointer = self.builder.bitcast(self.builder.gep(base, [index]), self.vector.as_pointer())
        self.builder.store(value, pointer, align=4)

    def broadcast(self, base, index):
        """base[index] in every lane."""
        return self.splat_value(self.builder.load(self.builder.gep(base, [index])))

    def splat_value(self, scalar, vector_type=None):
        """A scalar value in every lane (of this call's vector type, or of vector_type)."""
        undef = ir.Constant(vector_type, ir.Undefined) if vector_type else self._undef
        one = self.builder.insert_element(undef, scalar, ir.Constant(ir.IntType(32), 0))
        return self.builder.shuffle_vector(one, undef, self._zero_mask)

    def fma(self, a, b, c):
        return self.builder.call(self._fma, [a, b, c])

    def splat(self, value: float):
        return ir.Constant(self.vector, [ir.Constant(self.scalar, value)] * LANES)

    def _intrinsic(self, name: str, arity: int):
        fnty = ir.FunctionType(self.vector, [self.vector] * arity)
        return cgutils.get_or_insert_function(
            self.builder.module, fnty, f"llvm.{name}.v{LANES}{self.scalar.intrinsic_name}"
        )

    def at_least(self, x, low: float):
        """x > low ? x : low (NaN -> low): one vmaxps; llvm.maxnum's NaN rule costs a compare and a blend more."""
        return self.builder.select(self.builder.fcmp_ordered(">", x, self.splat(low)), x, self.splat(low))

    def at_most(self, x, high: float):
        """x < high ? x : high (NaN -> high): one vminps."""
        return self.builder.select(self.builder.fcmp_ordered("<", x, self.splat(high)), x, self.splat(high))

    def exp(self, x, keep_nan: bool = True):
        """e^x, lane by lane: activation.fast_exp (Cephes expf) as vector code. Twin: np.exp.

        x = k ln2 + r, e^x = 2^k P(r); written with explicit fused multiply-adds (the IR builder's
        fmul + fadd stay two instructions), as a SiLU costs as much as a cheap layer's arithmetic.
        With AVX-512, vscalefps makes 2^k P(r) in one instruction, overflowing to inf and
        underflowing to 0 as e^x does, so only one clamp is left: 14 operations instead of 20,
        measured 3 ns instead of 6 per 16-value SiLU. Elsewhere 2^k is built from its IEEE-754 bits,
        which needs x clamped to [-87.34, 88] (activation.py says what that changes at the ends).
        keep_nan=False leaves out the NaN select, for callers whose result carries x's NaN anyway.
        """
        b = self.builder
        given = x
        if _AVX512:
            x = self.at_least(x, -104.0)  # e^-104 is 0 in float32
            k = b.call(self._intrinsic("roundeven", 1), [b.fmul(x, self.splat(1.4426950408889634))])
        else:
            x = self.at_most(self.at_least(x, -87.33654), 88.0)
            k = b.call(self._intrinsic("floor", 1), [self.fma(x, self.splat(1.4426950408889634), self.splat(0.5))])
        r = self.fma(k, self.splat(2.12194440e-4), self.fma(k, self.splat(-0.693359375), x))  # x - k ln2, two parts
        p = self.splat(1.9875691500e-4)
        for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1):
            p = self.fma(p, r, self.splat(c))
        p = b.fadd(self.fma(b.fmul(p, r), r, r), self.splat(1.0))  # e^r
        if _AVX512:
            i16, i32 = ir.IntType(16), ir.IntType(32)
            scalef = cgutils.get_or_insert_function(
                b.module,
                ir.FunctionType(self.vector, [self.vector] * 3 + [i16, i32]),
                "llvm.x86.avx512.mask.scalef.ps.512",
            )  # (a, b, passthrough, lane mask, rounding: 4 = current mode)
            result = b.call(scalef, [p, k, self._undef, ir.Constant(i16, -1), ir.Constant(i32, 4)])
        else:
            ints = ir.VectorType(ir.IntType(32), LANES)
            exponent = b.shl(
                b.add(b.fptosi(k, ints), ir.Constant(ints, [127] * LANES)), ir.Constant(ints, [23] * LANES)
            )
            result = b.fmul(p, b.bitcast(exponent, self.vector))  # e^r * 2^k
        if not keep_nan:
            return result
        return b.select(b.fcmp_unordered("uno", given, given), given, result)  # NaN stays NaN

    def activate(self, flags, accumulators) -> None:
        """In place on accumulator slots: SiLU or ReLU as `flags` says (simd.SILU / simd.RELU)."""
        b = self.builder
        with b.if_then(self.flag(flags, SILU)):
            for slot in accumulators:
                x = b.load(slot)
                e = self.exp(b.fsub(self.zero(), x), keep_nan=False)  # a NaN x gives NaN / (1 + e) = NaN
                b.store(b.fdiv(x, b.fadd(self.splat(1.0), e)), slot)
        with b.if_then(self.flag(flags, RELU)):
            for slot in accumulators:
                x = b.load(slot)
                b.store(b.select(b.fcmp_ordered(">", x, self.zero()), x, b.fmul(x, self.zero())), slot)

    def zero(self):
        return ir.Constant(self.vector, None)

    def flag(self, flags, bit: int):
        return self.builder.icmp_signed("!=", self.builder.and_(flags, self.const(bit)), self.const(0))


def _data(context, builder, array_type, value):
    return context.make_array(array_type)(context, builder, value).data


# ------------------------------------------------------------------ gemm tile


def _literal(value) -> int | None:
    """The value of a literal integer argument (the tile shape is fixed at compile time), else None."""
    return value.literal_value if isinstance(value, types.IntegerLiteral) else None


@intrinsic
def _gemm_tile(typingctx, rows, blocks, operands):
    """gemm_tile(ROWS, BLOCKS, ...): a ROWS x BLOCKS register tile (see the module docstring)."""
    nrows, nblocks = _literal(rows), _literal(blocks)
    if nrows is None or nblocks is None or not isinstance(operands, types.BaseTuple) or len(operands) != 23:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args[2].types
        args = [builder.extract_value(args[2], i) for i in range(23)]
        (
            a,
            a_off,
            a_rs,
            a_kbs,
            k0,
            a_taps,
            b,
            b_off,
            b_taps,
            b_ks,
            b_bs,
            ntaps,
            k,
            c,
            c_off,
            c_rs,
            c_bs,
            r_arr,
            r_off,
            r_bs,
            bias,
            bias_off,
            flags,
        ) = args
        v = _Vectors(context, builder, t[0].dtype)
        pa, pat, pb, pbt = (_data(context, builder, t[i], args[i]) for i in (0, 5, 6, 8))
        pc, pr, pbias = (_data(context, builder, t[i], args[i]) for i in (13, 17, 20))
        acc = [[cgutils.alloca_once(builder, v.vector) for _ in range(nblocks)] for _ in range(nrows)]

        def at(off, i, j, bs=c_bs):  # C[row i, block j] relative to off (block stride bs)
            return v.offset(off, (ir.Constant(v.i64, i), c_rs), (ir.Constant(v.i64, j), bs))

        with builder.if_else(v.flag(flags, LOAD_INIT)) as (load_init, zero_init):
            with load_init:
                for i in range(nrows):
                    for j in range(nblocks):
                        builder.store(v.load(pr, at(r_off, i, j, r_bs)), acc[i][j])
            with zero_init:
                for i in range(nrows):
                    for j in range(nblocks):
                        builder.store(v.zero(), acc[i][j])
        row_offsets = [v.offset((ir.Constant(v.i64, i), a_rs)) for i in range(nrows)]
        block_offsets = [v.offset((ir.Constant(v.i64, j), b_bs)) for j in range(nblocks)]
        # Row pointers once per tile (not per step): fewer live integer registers in the loop.
        rows_a = [builder.gep(pa, [row_offsets[i]]) for i in range(nrows)]
        blocks_b = [builder.gep(pb, [block_offsets[j]]) for j in range(nblocks)]

        def step(a_index, b_index):  # one k: a broadcast per row, one FMA per accumulator
            bv = [v.load(blocks_b[j], b_index) for j in range(nblocks)]
            for i in range(nrows):
                av = v.broadcast(rows_a[i], a_index)
                for j in range(nblocks):
                    builder.store(v.fma(av, bv[j], builder.load(acc[i][j])), acc[i][j])

        # With k0 == 0, whole blocks of 16 k run as an outer loop over blocks and an inner one of
        # constant length over the lanes, whose A addresses are consecutive (no index arithmetic);
        # the rest (a partial block, or a head starting inside a block) takes the general index.
        aligned = builder.icmp_signed("==", k0, v.const(0))
        whole = builder.select(aligned, builder.ashr(k, v.const(4)), v.const(0))
        with cgutils.for_range(builder, ntaps) as tap:
            a_tap = builder.add(a_off, builder.load(builder.gep(pat, [tap.index])))
            b_tap = builder.add(b_off, builder.load(builder.gep(pbt, [tap.index])))
            with cgutils.for_range(builder, whole) as block:
                a_block = v.offset(a_tap, (block.index, a_kbs))
                b_block = v.offset(b_tap, (block.index, builder.mul(b_ks, v.const(LANES))))
                with cgutils.for_range(builder, v.const(LANES)) as lane:
                    step(builder.add(a_block, lane.index), v.offset(b_block, (lane.index, b_ks)))
            first = builder.shl(whole, v.const(4))
            with cgutils.for_range(builder, builder.sub(k, first)) as rest:
                index = builder.add(first, rest.index)
                kk = builder.add(index, k0)
                a_k = v.offset(a_tap, (builder.ashr(kk, v.const(4)), a_kbs), builder.and_(kk, v.const(LANES - 1)))
                step(a_k, v.offset(b_tap, (index, b_ks)))
        with builder.if_then(v.flag(flags, ADD_BIAS)):
            for j in range(nblocks):
                bias_vector = v.load(pbias, builder.add(bias_off, v.const(j * LANES)))
                for i in range(nrows):
                    builder.store(builder.fadd(builder.load(acc[i][j]), bias_vector), acc[i][j])
        v.activate(flags, [slot for row in acc for slot in row])
        for i in range(nrows):
            for j in range(nblocks):
                v.store(builder.load(acc[i][j]), pc, at(c_off, i, j))
        return context.get_dummy_value()

    return types.void(rows, blocks, operands), codegen


# ------------------------------------------------------------- depthwise tile


@intrinsic
def _depthwise_tile(typingctx, rows, operands):
    """depthwise_tile(ROWS, ...): ROWS output pixels of one channel block (see the module docstring)."""
    nrows = _literal(rows)
    if nrows is None or not isinstance(operands, types.BaseTuple) or len(operands) != 13:
        return None

    def codegen(context, builder, sig, args):
        t = sig.args[1].types
        args = [builder.extract_value(args[1], i) for i in range(13)]
        x, x_off, x_rs, x_taps, w, w_off, ntaps, bias, bias_off, out, out_off, out_rs, flags = args
        v = _Vectors(context, builder, t[0].dtype)
        px, ptaps, pw, pbias, pout = (_data(context, builder, t[i], args[i]) for i in (0, 3, 4, 7, 9))
        start = v.load(pbias, bias_off)
        acc = [cgutils.alloca_once_value(builder, start) for _ in range(nrows)]
        row_offsets = [v.offset((ir.Constant(v.i64, i), x_rs)) for i in range(nrows)]
        with cgutils.for_range(builder, ntaps) as tap:
            weight = v.load(pw, v.offset(w_off, (tap.index, LANES)))
            base = builder.add(x_off, builder.load(builder.gep(ptaps, [tap.index])))
            for i in range(nrows):
                pixel = v.load(px, builder.add(base, row_offsets[i]))
                builder.store(v.fma(weight, pixel, builder.load(acc[i])), acc[i])
        v.activate(flags, acc)
        for i in range(nrows):
            v.store(builder.load(acc[i]), pout, v.offset(out_off, (ir.Constant(v.i64, i), out_rs)))
        return context.get_dummy_value()

    return types.void(rows, operands), codegen


# ---------------------------------------------------------------- softmax rows


def _reduce(v: _Vectors, name: str, vector, *start, vector_type=None):
    vector_type = vector_type or v.vector
    scalar = vector_type.element
    fnty = ir.FunctionType(scalar, [scalar] * len(start) + [vector_type])
    fn = cgutils.get_or_insert_function(
        v.builder.module, fnty, f"llvm.vector.reduce.{name}.v{LANES}{scalar.intrinsic_name}"
    )
    return v.builder.call(fn, [*start, vector])


@intrinsic
def _row_max(typingctx, array, start, blocks):
    """max of array.flat[start : start + 16 * blocks] (-inf for none), 16 lanes at a time. Twin: np.max.

    A compare and select per vector (vmaxps), not llvm.maxnum (whose NaN rule costs a compare
    and a blend more); a NaN score ends up in the softmax's sum either way, so every
    probability of its row is NaN, as in the reference."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        array, start, blocks = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        base = builder.gep(_data(context, builder, sig.args[0], array), [start])
        best = cgutils.alloca_once_value(builder, v.splat(float("-inf")))
        with cgutils.for_range(builder, blocks) as block:
            value = v.load(base, builder.mul(block.index, v.const(LANES)))
            known = builder.load(best)
            builder.store(builder.select(builder.fcmp_ordered(">", value, known), value, known), best)
        return _reduce(v, "fmax", builder.load(best))

    return array.dtype(array, start, blocks), codegen


@intrinsic
def _row_exp_sum(typingctx, array, start, blocks, shift):
    """In place: array.flat[i] = e^(array.flat[i] - shift) for 16 * blocks values from start; returns their sum."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        array, start, blocks, shift = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        base = builder.gep(_data(context, builder, sig.args[0], array), [start])
        shifts = v.splat_value(shift)
        total = cgutils.alloca_once_value(builder, v.zero())
        with cgutils.for_range(builder, blocks) as block:
            index = builder.mul(block.index, v.const(LANES))
            e = v.exp(builder.fsub(v.load(base, index), shifts))
            v.store(e, base, index)
            builder.store(builder.fadd(builder.load(total), e), total)
        return _reduce(v, "fadd", builder.load(total), ir.Constant(v.scalar, 0.0))

    return array.dtype(array, start, blocks, shift), codegen


# ------------------------------------------------------------ layout moves


@intrinsic
def _copy_vectors(typingctx, src, src_start, src_step, dst, dst_start, dst_step, count):
    """dst.flat[dst_start + i*dst_step : +16] = src.flat[src_start + i*src_step : +16] for i < count: pixels'
    channel blocks between two layouts (unfold / fold). Twin: a slice assignment.

    One vector load and store per pixel. For a 32x32 map of 128 channels, serial build: a slice
    assignment per pixel 170 us, a 16-long loop of flat indices 44-78 us (LLVM added run-time alias
    checks and a scalar fallback), this 12-16 us."""
    if not isinstance(src, types.Array) or not isinstance(dst, types.Array):
        return None

    def codegen(context, builder, sig, args):
        src, src_start, src_step, dst, dst_start, dst_step, count = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        ps = builder.gep(_data(context, builder, sig.args[0], src), [src_start])
        pd = builder.gep(_data(context, builder, sig.args[3], dst), [dst_start])
        with cgutils.for_range(builder, count) as i:
            v.store(v.load(ps, builder.mul(i.index, src_step)), pd, builder.mul(i.index, dst_step))
        return context.get_dummy_value()

    return types.void(src, src_start, src_step, dst, dst_start, dst_step, count), codegen


# ------------------------------------------------ separable attention (v2)
# A sequence's channel block is a run of `vectors` tokens of 16 values each (blocked token maps).


@intrinsic
def _weighted_vectors(typingctx, array, start, weights, vectors, out):
    """out[0:16] = sum_n weights[n] * array.flat[start + n*16 : start + n*16 + 16] for n < vectors. Twin: w @ X.

    Four partial sums in turn (one would wait on each FMA's latency), added at the end."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        array, start, weights, vectors, out = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        base = builder.gep(_data(context, builder, sig.args[0], array), [start])
        pw, po = _data(context, builder, sig.args[2], weights), _data(context, builder, sig.args[4], out)
        sums = [cgutils.alloca_once_value(builder, v.zero()) for _ in range(4)]

        def add(slot, n):
            total = builder.load(slot)
            builder.store(v.fma(v.broadcast(pw, n), v.load(base, builder.mul(n, v.const(LANES))), total), slot)

        with cgutils.for_range(builder, builder.ashr(vectors, v.const(2))) as quad:
            for i, slot in enumerate(sums):
                add(slot, v.offset((quad.index, 4), v.const(i)))
        with cgutils.for_range(builder, builder.and_(vectors, v.const(3))) as rest:
            add(sums[0], v.offset(builder.and_(vectors, v.const(-4)), rest.index))
        loads = [builder.load(slot) for slot in sums]
        v.store(builder.fadd(builder.fadd(loads[0], loads[1]), builder.fadd(loads[2], loads[3])), po, v.const(0))
        return context.get_dummy_value()

    return types.void(array, start, weights, vectors, out), codegen


@intrinsic
def _gate_vectors(typingctx, array, start, vectors, gate, out, out_start):
    """out.flat[out_start + i] = max(array.flat[start + i], 0) * gate[i % 16] for i < 16 * vectors.

    Twin: np.maximum(V, 0) * context (NaN stays NaN, -inf gives 0, as np.maximum)."""
    if not isinstance(array, types.Array):
        return None

    def codegen(context, builder, sig, args):
        array, start, vectors, gate, out, out_start = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        base = builder.gep(_data(context, builder, sig.args[0], array), [start])
        target = builder.gep(_data(context, builder, sig.args[4], out), [out_start])
        g = v.load(_data(context, builder, sig.args[3], gate), v.const(0))
        with cgutils.for_range(builder, vectors) as vector:
            at = builder.mul(vector.index, v.const(LANES))
            x = v.load(base, at)
            kept = builder.select(builder.fcmp_unordered(">", x, v.zero()), x, v.zero())  # x > 0 or NaN
            v.store(builder.fmul(kept, g), target, at)
        return context.get_dummy_value()

    return types.void(array, start, vectors, gate, out, out_start), codegen


# ------------------------------------------------------- layer norm of a token
# A token of a blocked token map has its channels in 16-lane pieces `stride` elements apart.


@intrinsic
def _token_sum(typingctx, array, base, stride, blocks, mask, centre, square):
    """sum over the token's blocks of ((x - centre) * mask) (square=0) or of its square (square=1).

    array.flat[base + b * stride + l] for b < blocks, l < 16; mask (blocks*16,) is 1 on real channels.
    Twin: np.sum.
    """
    if not isinstance(array, types.Array) or _literal(square) is None:
        return None
    squared = _literal(square) == 1

    def codegen(context, builder, sig, args):
        array, base, stride, blocks, mask, centre, _ = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        px = _data(context, builder, sig.args[0], array)
        pm = _data(context, builder, sig.args[4], mask)
        centres = v.splat_value(context.cast(builder, centre, sig.args[5], sig.args[0].dtype))
        total = cgutils.alloca_once_value(builder, v.zero())
        with cgutils.for_range(builder, blocks) as block:
            value = v.load(px, builder.add(base, builder.mul(block.index, stride)))
            d = builder.fmul(builder.fsub(value, centres), v.load(pm, builder.mul(block.index, v.const(LANES))))
            builder.store(v.fma(d, d, builder.load(total)) if squared else builder.fadd(builder.load(total), d), total)
        return _reduce(v, "fadd", builder.load(total), ir.Constant(v.scalar, 0.0))

    return array.dtype(array, base, stride, blocks, mask, centre, square), codegen


@intrinsic
def _row_moment(typingctx, array, start, vectors, mask, centre, square):
    """sum over `vectors` x 16 values from array.flat[start] of ((x - centre) * mask[l]) (square=0) or its
    square (square=1), lane l = the value's position in its 16, summed in float64. Twin: np.sum.

    Group norm sums a whole image's values (hundreds of thousands): float32 running sums would
    lose digits, so each 16 float32 values are widened to float64 before the subtraction."""
    if not isinstance(array, types.Array) or _literal(square) is None:
        return None
    squared = _literal(square) == 1

    def codegen(context, builder, sig, args):
        array, start, vectors, mask, centre, _ = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        wide = ir.VectorType(ir.DoubleType(), LANES)
        px = builder.gep(_data(context, builder, sig.args[0], array), [start])
        real = builder.fpext(v.load(_data(context, builder, sig.args[3], mask), v.const(0)), wide)
        centres = v.splat_value(context.cast(builder, centre, sig.args[4], types.float64), wide)
        total = cgutils.alloca_once_value(builder, ir.Constant(wide, None))
        with cgutils.for_range(builder, vectors) as vector:
            value = builder.fpext(v.load(px, builder.mul(vector.index, v.const(LANES))), wide)
            d = builder.fmul(builder.fsub(value, centres), real)
            builder.store(builder.fadd(builder.load(total), builder.fmul(d, d) if squared else d), total)
        return _reduce(v, "fadd", builder.load(total), ir.Constant(ir.DoubleType(), 0.0), vector_type=wide)

    return types.float64(array, start, vectors, mask, centre, square), codegen


@intrinsic
def _token_affine(typingctx, x, base, stride, blocks, mean, inv, weight, bias, step, out):
    """out.flat[base + b * stride + l] = (x.flat[same] - mean) * inv * weight[b*step + l] + bias[b*step + l].

    step 16: a token's blocks, each with its channels' weights (layer norm); step 0: vectors of
    one channel block, all with the same 16 weights (group norm's rows)."""
    if not isinstance(x, types.Array):
        return None

    def codegen(context, builder, sig, args):
        x, base, stride, blocks, mean, inv, weight, bias, step, out = args
        v = _Vectors(context, builder, sig.args[0].dtype)
        px, pw, pb, po = (_data(context, builder, sig.args[i], args[i]) for i in (0, 6, 7, 9))
        dtype = sig.args[0].dtype
        means = v.splat_value(context.cast(builder, mean, sig.args[4], dtype))
        invs = v.splat_value(context.cast(builder, inv, sig.args[5], dtype))
        with cgutils.for_range(builder, blocks) as block:
            at = builder.add(base, builder.mul(block.index, stride))
            lanes = builder.mul(block.index, step)
            scale = builder.fmul(invs, v.load(pw, lanes))
            v.store(v.fma(builder.fsub(v.load(px, at), means), scale, v.load(pb, lanes)), po, at)
        return context.get_dummy_value()

    return types.void(x, base, stride, blocks, mean, inv, weight, bias, step, out), codegen


# ------------------------------------- the same tiles in NumPy (NUMBA_DISABLE_JIT=1)
# Intrinsics exist only inside compiled code; with the JIT off, kernels call these instead,
# which index the same flat offsets (so the address arithmetic of every kernel is still tested).

_LANE = np.arange(LANES)


def _python_gemm_tile(rows, blocks, operands):
    (
        a,
        a_off,
        a_rs,
        a_kbs,
        k0,
        a_taps,
        b,
        b_off,
        b_taps,
        b_ks,
        b_bs,
        ntaps,
        k,
        c,
        c_off,
        c_rs,
        c_bs,
        r_arr,
        r_off,
        r_bs,
        bias,
        bias_off,
        flags,
    ) = operands
    a, b, c, r_arr, bias = (x.reshape(-1) for x in (a, b, c, r_arr, bias))
    kk = np.arange(k) + k0
    a_k = (kk >> 4) * a_kbs + (kk & (LANES - 1))  # (K,)
    a_rows = np.arange(rows)[:, None] * a_rs  # (rows, 1)
    b_idx = np.arange(k)[:, None, None] * b_ks + np.arange(blocks)[None, :, None] * b_bs + _LANE  # (K, blocks, 16)
    c_idx = np.arange(rows)[:, None, None] * c_rs + np.arange(blocks)[None, :, None] * c_bs + _LANE
    r_idx = np.arange(rows)[:, None, None] * c_rs + np.arange(blocks)[None, :, None] * r_bs + _LANE
    acc = r_arr[r_off + r_idx] if flags & LOAD_INIT else np.zeros(c_idx.shape, c.dtype)
    for t in range(ntaps):
        tap_a = a[a_off + a_taps[t] + a_rows + a_k]  # (rows, K)
        acc = acc + np.einsum("rk,knl->rnl", tap_a, b[b_off + b_taps[t] + b_idx])
    if flags & ADD_BIAS:
        acc = acc + bias[bias_off + np.arange(blocks)[:, None] * LANES + _LANE]
    c[c_off + c_idx] = _python_activate(acc, flags)


def _python_activate(x: np.ndarray, flags: int) -> np.ndarray:
    if flags & SILU:
        return x / (1 + np.exp(-x))
    if flags & RELU:
        return np.where(x > 0, x, x * 0)
    return x


def _python_depthwise_tile(rows, operands):
    x, x_off, x_rs, x_taps, w, w_off, ntaps, bias, bias_off, out, out_off, out_rs, flags = operands
    x, w, bias, out = (a.reshape(-1) for a in (x, w, bias, out))
    pixels = np.arange(rows)[:, None] * x_rs + _LANE  # (rows, 16)
    acc = np.broadcast_to(bias[bias_off + _LANE], (rows, LANES)).copy()
    for t in range(ntaps):
        acc += w[w_off + t * LANES + _LANE] * x[x_off + x_taps[t] + pixels]
    out[out_off + np.arange(rows)[:, None] * out_rs + _LANE] = _python_activate(acc, flags)


def _python_row_max(array, start, blocks):
    values = array.reshape(-1)[start : start + blocks * LANES]
    return values.max() if values.size else array.dtype.type(-np.inf)


def _python_row_exp_sum(array, start, blocks, shift):
    values = array.reshape(-1)[start : start + blocks * LANES]
    values[...] = np.exp(values - shift)
    return values.sum(dtype=array.dtype)


def _python_copy_vectors(src, src_start, src_step, dst, dst_start, dst_step, count):
    taken = src.reshape(-1)[src_start + np.arange(count)[:, None] * src_step + _LANE]
    dst.reshape(-1)[dst_start + np.arange(count)[:, None] * dst_step + _LANE] = taken


def _python_weighted_vectors(array, start, weights, vectors, out):
    rows = array.reshape(-1)[start : start + vectors * LANES].reshape(vectors, LANES)
    out[:LANES] = weights[:vectors] @ rows


def _python_gate_vectors(array, start, vectors, gate, out, out_start):
    values = array.reshape(-1)[start : start + vectors * LANES].reshape(vectors, LANES)
    out.reshape(-1)[out_start : out_start + vectors * LANES] = (np.maximum(values, 0) * gate[:LANES]).reshape(-1)


def _token_values(array, base, stride, blocks):
    flat = array.reshape(-1)
    return flat[base + np.arange(blocks)[:, None] * stride + _LANE].reshape(-1)  # (blocks*16,)


def _python_token_sum(array, base, stride, blocks, mask, centre, square):
    d = (_token_values(array, base, stride, blocks) - centre) * mask[: blocks * LANES]
    return (d * d if square else d).sum(dtype=array.dtype)


def _python_row_moment(array, start, vectors, mask, centre, square):
    values = array.reshape(-1)[start : start + vectors * LANES].reshape(vectors, LANES).astype(np.float64)
    d = (values - centre) * mask[:LANES]
    return (d * d if square else d).sum()


def _python_token_affine(x, base, stride, blocks, mean, inv, weight, bias, step, out):
    index = np.arange(blocks)[:, None] * step + _LANE  # (blocks, 16) into weight and bias
    values = (_token_values(x, base, stride, blocks).reshape(blocks, LANES) - mean) * (inv * weight[index]) + bias[
        index
    ]
    out.reshape(-1)[base + np.arange(blocks)[:, None] * stride + _LANE] = values


gemm_tile = _python_gemm_tile if config.DISABLE_JIT else _gemm_tile
row_max = _python_row_max if config.DISABLE_JIT else _row_max
row_exp_sum = _python_row_exp_sum if config.DISABLE_JIT else _row_exp_sum
depthwise_tile = _python_depthwise_tile if config.DISABLE_JIT else _depthwise_tile
token_sum = _python_token_sum if config.DISABLE_JIT else _token_sum
row_moment = _python_row_moment if config.DISABLE_JIT else _row_moment
token_affine = _python_token_affine if config.DISABLE_JIT else _token_affine
copy_vectors = _python_copy_vectors if config.DISABLE_JIT else _copy_vectors
weighted_vectors = _python_weighted_vectors if config.DISABLE_JIT else _weighted_vectors
gate_vectors = _python_gate_vectors if config.DISABLE_JIT else _gate_vectors
