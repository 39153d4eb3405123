"""The fused generation kernel: a gated dilated-convolution stack stepped sample by sample.

One numba function (`run`) advances a batch of utterances through many samples of a WaveNet-like
stack (Oord et al. 2016, arXiv:1609.03499): input embedding -> per layer a dilated causal
convolution read from ring buffers (fast-wavenet, Paine et al. 2016, arXiv:1611.09482), plus
conditioning rows, -> tanh x sigmoid -> residual and skip projections -> summed skips -> ReLU,
1x1, ReLU, 1x1 -> a class drawn by Gumbel-max (softmax) or from a mixture of logistics. It knows
nothing of PyTorch or of the WaveNet class: `fast_wavenet` lays a WaveNet out for it, and any
other stack of the same layers (a prior over codes) can be laid out the same way.

Compiled at first use with ``@njit(cache=True, fastmath=False)`` and kept in numba's cache, so
later processes load it in about a second; nothing is built at install time. Without fast-math
no sum is reordered, so each product is written to vectorise as it stands: the weights are
``(in, out)`` row-major and every output row accumulates four input rows at a time in their
order; the gate uses an exp of plain arithmetic (Cephes expf, 1-2 ulp) so that it vectorises
too. bfloat16 weights are uint16 bits widened in registers (exact: bf16 -> fp32 is a shift).

Several threads can step one batch at once, each on its own columns of every product (a
`Part`): they share the activations and wait for each other at 2 L + 4 barriers per sample (an
atomic counter, spun on, then yielding the core). Each output is still the same sum in the same
order, so the classes and logits are bit-identical whatever the number of parts.
"""

from __future__ import annotations

import math
import platform
import sys
from typing import NamedTuple

import numpy as np

from speechvq.models.speech.mol import LOG_SCALE_MIN

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.core import cgutils
    from numba.extending import intrinsic
except ImportError:  # numba comes with librosa; without it only the eager engine runs
    njit = None

SOFTMAX, MOL, FORCED = 0, 1, 2  # modes: sample a softmax, sample a mixture, teacher forcing


def available() -> bool:
    """True where the kernel can run (numba imports)."""
    return njit is not None


# Several parts need a barrier between them: an atomic counter spun on with x86's `pause`, then
# libc's sched_yield so that a part whose partner lost its core gives the core back. Built for
# x86-64 Linux only (where it is tested); elsewhere a stack runs as one part.
SPLIT_PLATFORM = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")
SPIN_BEFORE_YIELD = 2000  # pauses (about 50 us on Zen 4) before each sched_yield


def split_available() -> bool:
    """True where a stack can be stepped by several threads at once (`run` with parts > 1)."""
    return njit is not None and SPLIT_PLATFORM


class StackWeights(NamedTuple):
    """What every part of a stack reads: the embedding and the ring-buffer geometry."""

    embed: np.ndarray  # (Q, R) float32: input class -> residual vector
    offsets: np.ndarray  # (L,) int64: first ring-buffer slot of each layer
    sizes: np.ndarray  # (L,) int64: (k - 1) * d + 1 slots per layer
    dilations: np.ndarray  # (L,) int64
    skip_scale: float  # sqrt(1 / L)
    gates: int  # G / 2: gated units per layer
    skips: int  # K: skip channels


class Part(NamedTuple):
    """One thread's share of a stack's products (x @ W, rows = inputs), float32 or bf16 bits.

    A stack stepped by P threads is cut by output columns into P parts: part p owns gated units
    [g0, g1) (their tanh and sigmoid columns side by side in `conv`), residual channels
    [r0, r1), skip channels [k0, k1) and output columns [o0, o1), and streams only those
    columns' weights. Every output is still one sum over all inputs in their order, so the
    classes and logits do not depend on P. One part (P = 1) is the whole stack.
    """

    conv: np.ndarray  # (L, k * R, 2 (g1 - g0)) float32, tap-major rows; (0, 0, 0) when bf16
    conv16: np.ndarray  # (L, k * R, 2 (g1 - g0)) uint16 bfloat16 bits; (0, 0, 0) when fp32
    rs: np.ndarray  # (L, G / 2, (r1 - r0) + (k1 - k0)) residual | skip; (0, 0, 0) when bf16
    rs16: np.ndarray  # the same as uint16; (0, 0, 0) when fp32
    rs_b: np.ndarray  # (L, (r1 - r0) + (k1 - k0)) float32
    head1: np.ndarray  # (K, k1 - k0) float32
    head1_b: np.ndarray  # (k1 - k0,)
    head2: np.ndarray  # (K, o1 - o0) float32
    head2_b: np.ndarray  # (o1 - o0,)
    cols: np.ndarray  # (8,) int64: g0, g1, r0, r1, k0, k1, o0, o1


class Shared(NamedTuple):
    """Activations every part reads whole and writes its own columns of, per batch of B."""

    x: np.ndarray  # (B, R) residual stream
    z: np.ndarray  # (B, G / 2) gated units
    skip: np.ndarray  # (B, K) summed skips
    h1: np.ndarray  # (B, K) first head layer
    logits: np.ndarray  # (B, O)
    counter: np.ndarray  # (16,) int64: the barrier's count (element 0; the rest pad its line)


class Chunk(NamedTuple):
    """What the kernel reads for `n` consecutive steps."""

    rows: np.ndarray  # (B, U, L * G) float32: conditioning + biases into every gate
    row_of: np.ndarray  # (n,) int64: which of the U rows step s uses
    gumbel: np.ndarray  # (n, B, Q or M) float32 Gumbel noise; (0, 0, 0) when greedy
    logistic: np.ndarray  # (n, B) float32 logistic noise (mixture only); (0, 0) otherwise
    forced: np.ndarray  # (B, n) int64 teacher-forced inputs (FORCED only); (0, 0) otherwise


if njit is not None:
    # nogil: batch groups run in threads; error_model numpy: IEEE division, no zero checks
    # (Python's ZeroDivisionError check would stop the gate's loop from vectorising).
    _jit = njit(cache=True, fastmath=False, nogil=True, error_model="numpy")
    LOG2E = np.float32(1.4426950408889634)
    EXP_HI, EXP_LO = np.float32(88.0), np.float32(-87.0)
    LN2_HI, LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)
    P0, P1, P2, P3, P4, P5 = (np.float32(c) for c in (  # Cephes expf polynomial
        1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
        5.0000001201e-1))
    ONE, TWO, HALF = np.float32(1.0), np.float32(2.0), np.float32(0.5)

    @intrinsic
    def _widen(typingctx, weight):
        """A weight as float32: bfloat16 bits (uint16) shifted into the high half (exact), or a
        float32 as it is, so that one product serves both layouts."""
        if weight == types.float32:
            return types.float32(types.float32), lambda context, builder, sig, args: args[0]
        if weight != types.uint16:
            return None

        def codegen(context, builder, signature, args):
            wide = builder.zext(args[0], ir.IntType(32))
            return builder.bitcast(builder.shl(wide, ir.Constant(ir.IntType(32), 16)),
                                   ir.FloatType())
        return types.float32(types.uint16), codegen

    @intrinsic
    def _pow2(typingctx, n):
        """2.0 ** n as float32 for an int32 n in [-126, 127]: n + 127 put in the exponent bits."""
        if n != types.int32:
            return None

        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            biased = builder.add(args[0], ir.Constant(i32, 127))
            return builder.bitcast(builder.shl(biased, ir.Constant(i32, 23)), ir.FloatType())
        return types.float32(types.int32), codegen

    @_jit
    def _exp(x):
        """float32 exp (Cephes expf: 1-2 ulp), written so that a loop of it vectorises."""
        x = min(max(x, EXP_LO), EXP_HI)
        n = np.floor(x * LOG2E + HALF)
        r = (x - n * LN2_HI) - n * LN2_LO
        p = ((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5
        return ((p * (r * r) + r) + ONE) * _pow2(np.int32(n))

    @_jit
    def _gemm(y, x, w):
        """y (B, N) += x (B, K) @ w (K, N), w float32 or bfloat16 bits: w's rows streamed once
        per step for the whole batch (two utterances per weight load), each sum taken in order
        of K, four rows at a time (y loaded once per four). Plain indexing, no array views:
        a view costs a reference count update, and the loop over N vectorises as it stands."""
        batch, n = y.shape
        k = x.shape[1]
        j = 0
        while j + 4 <= k:
            b = 0
            while b + 2 <= batch:
                x0, x1, x2, x3 = x[b, j], x[b, j + 1], x[b, j + 2], x[b, j + 3]
                u0, u1, u2, u3 = x[b + 1, j], x[b + 1, j + 1], x[b + 1, j + 2], x[b + 1, j + 3]
                for o in range(n):
                    a0, a1 = _widen(w[j, o]), _widen(w[j + 1, o])
                    a2, a3 = _widen(w[j + 2, o]), _widen(w[j + 3, o])
                    y[b, o] = (((y[b, o] + x0 * a0) + x1 * a1) + x2 * a2) + x3 * a3
                    y[b + 1, o] = (((y[b + 1, o] + u0 * a0) + u1 * a1) + u2 * a2) + u3 * a3
                b += 2
            if b < batch:
                x0, x1, x2, x3 = x[b, j], x[b, j + 1], x[b, j + 2], x[b, j + 3]
                for o in range(n):
                    y[b, o] = ((((y[b, o] + x0 * _widen(w[j, o])) + x1 * _widen(w[j + 1, o]))
                                + x2 * _widen(w[j + 2, o])) + x3 * _widen(w[j + 3, o]))
            j += 4
        for j in range(j, k):
            for b in range(batch):
                xj = x[b, j]
                for o in range(n):
                    y[b, o] += xj * _widen(w[j, o])

    @_jit
    def _layer_product(y, x, w32, w16, i, bf16):
        if bf16:
            _gemm(y, x, w16[i])
        else:
            _gemm(y, x, w32[i])

    @_jit
    def _value_class(x, classes):
        """mol.value_to_class for one float32 value."""
        x = min(max(x, -ONE), ONE)
        q = np.rint((x + ONE) * np.float32(classes - 1) / TWO)
        return min(max(np.int64(q), 0), classes - 1)

    def _counter_intrinsic(counter, returns, emit):
        """(signature, codegen) of an intrinsic on counter[0] of an int64 array, or None for
        other arguments; emit(context, builder, pointer to counter[0]) builds its body."""
        if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
            return None

        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            return emit(context, builder, data)
        return returns(counter), codegen

    @intrinsic
    def _atomic_add(typingctx, counter):
        """counter[0] += 1 as one atomic read-modify-write (a full fence on x86)."""
        def emit(context, builder, data):
            builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "seq_cst")
            return context.get_dummy_value()
        return _counter_intrinsic(counter, types.void, emit)

    @intrinsic
    def _atomic_load(typingctx, counter):
        """counter[0], read with acquire ordering (never hoisted out of a spin loop)."""
        return _counter_intrinsic(counter, types.int64,
                                  lambda context, builder, data:
                                  builder.load_atomic(data, "acquire", 8))

    @intrinsic
    def _pause(typingctx):
        """x86 `pause` (the spin-wait hint, llvm.x86.sse2.pause), or nothing elsewhere."""
        def codegen(context, builder, signature, args):
            if SPLIT_PLATFORM:
                builder.call(cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"), [])
            return context.get_dummy_value()
        return types.void(), codegen

    @intrinsic
    def _sched_yield(typingctx):
        """libc's sched_yield(): this thread gives its core to any other that waits for it."""
        def codegen(context, builder, signature, args):
            if SPLIT_PLATFORM:
                builder.call(cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield"), [])
            return context.get_dummy_value()
        return types.void(), codegen

    @_jit
    def _sync(counter, passed, parts):
        """Wait until every part has arrived here as often as this one (`passed` + 1 times);
        returns the new count. The counter only grows, so no barrier needs resetting."""
        if parts == 1:
            return passed
        _atomic_add(counter)
        target = (passed + 1) * parts
        spins = 0
        while _atomic_load(counter) < target:
            _pause()
            spins += 1
            if spins == SPIN_BEFORE_YIELD:
                _sched_yield()
                spins = 0
        return passed + 1

    @_jit
    def run(w, part, index, parts, shared, buf, prev, t0, chunk, mode, temperature, bf16, out,
            logits_out):
        """Advance every utterance by n = len(chunk.row_of) samples; with parts > 1 this is
        part `index` of `parts` calls made at once in as many threads on the same state.

        Args:
            w: StackWeights. part: this thread's Part. index, parts: which part, of how many.
            shared: Shared (every part's activations). buf: (B, slots, R) ring buffers, updated.
            prev: (B,) int64 input of the next step, updated (by part 0). t0: samples produced
            before this chunk. chunk: Chunk. mode: SOFTMAX, MOL (sample) or FORCED (inputs
            from chunk.forced, logits kept). temperature: float32, 0 = greedy. bf16: use the
            parts' conv16 / rs16. out: (B, n) int64 sampled classes (SOFTMAX, MOL), written by
            part 0. logits_out: (B, n, O) float32 (FORCED), written by part 0.
        """
        batch, _, r = buf.shape
        layers = w.sizes.shape[0]
        h, skip_n = w.gates, w.skips
        g = 2 * h
        g0, g1, r0, r1, k0, k1, o0, o1 = part.cols
        hp, rp, kp = g1 - g0, r1 - r0, k1 - k0
        kernel = (w.sizes[0] - 1) // w.dilations[0] + 1
        x, z, skip, h1, logits = shared.x, shared.z, shared.skip, shared.h1, shared.logits
        o_n = logits.shape[1]
        taps = np.empty((batch, kernel * r), np.float32)
        gate = np.empty((batch, 2 * hp), np.float32)
        rs = np.empty((batch, rp + kp), np.float32)
        h1_own = np.empty((batch, kp), np.float32)
        logits_own = np.empty((batch, o1 - o0), np.float32)
        e_a = np.empty(hp, np.float32)
        e_b = np.empty(hp, np.float32)
        step_in = prev.copy()  # every part's own copy: only part 0 writes prev back
        sqrt_half = np.float32(math.sqrt(0.5))
        scale = np.float32(w.skip_scale)
        passed = 0
        for s in range(chunk.row_of.shape[0]):
            t = t0 + s
            row = chunk.row_of[s]
            for b in range(batch):
                x[b, r0:r1] = w.embed[step_in[b], r0:r1]
                skip[b, k0:k1] = 0.0
            passed = _sync(shared.counter, passed, parts)
            for i in range(layers):
                size, off, d = w.sizes[i], w.offsets[i], w.dilations[i]
                pos = t % size
                for b in range(batch):
                    buf[b, off + pos, r0:r1] = x[b, r0:r1]
                    for j in range(kernel - 1):  # older inputs, written in earlier steps
                        slot = (pos - (kernel - 1 - j) * d) % size
                        taps[b, j * r:(j + 1) * r] = buf[b, off + slot]
                    taps[b, (kernel - 1) * r:] = x[b]  # this step's input
                    gate[b, :hp] = chunk.rows[b, row, i * g + g0:i * g + g1]
                    gate[b, hp:] = chunk.rows[b, row, i * g + h + g0:i * g + h + g1]
                _layer_product(gate, taps, part.conv, part.conv16, i, bf16)
                for b in range(batch):
                    gb, zb = gate[b], z[b]
                    for c in range(hp):
                        e_a[c] = _exp(TWO * gb[c])
                        e_b[c] = _exp(-gb[hp + c])
                    for c in range(hp):  # tanh(a) * sigmoid(b)
                        zb[g0 + c] = (ONE - TWO / (e_a[c] + ONE)) * (ONE / (ONE + e_b[c]))
                    rs[b] = part.rs_b[i]
                passed = _sync(shared.counter, passed, parts)  # z whole
                _layer_product(rs, z, part.rs, part.rs16, i, bf16)
                for b in range(batch):
                    xb, rb, sb = x[b], rs[b], skip[b]
                    for c in range(rp):
                        xb[r0 + c] = (xb[r0 + c] + rb[c]) * sqrt_half
                    for c in range(kp):
                        sb[k0 + c] += rb[rp + c]
                passed = _sync(shared.counter, passed, parts)  # x whole, z read by all
            for b in range(batch):
                for c in range(k0, k1):
                    skip[b, c] = max(skip[b, c] * scale, np.float32(0.0))
                h1_own[b] = part.head1_b
            passed = _sync(shared.counter, passed, parts)
            _gemm(h1_own, skip, part.head1)
            for b in range(batch):
                for c in range(kp):
                    h1[b, k0 + c] = max(h1_own[b, c], np.float32(0.0))
                logits_own[b] = part.head2_b
            passed = _sync(shared.counter, passed, parts)
            _gemm(logits_own, h1, part.head2)
            for b in range(batch):
                logits[b, o0:o1] = logits_own[b]
            passed = _sync(shared.counter, passed, parts)
            for b in range(batch):  # every part draws the same class from the same logits
                lb = logits[b]
                if mode == FORCED:
                    if index == 0:
                        logits_out[b, s] = lb
                    step_in[b] = chunk.forced[b, s]
                    continue
                m = o_n if mode == SOFTMAX else o_n // 3
                best, pick = -np.inf, 0
                for c in range(m):
                    v = lb[c] / temperature + chunk.gumbel[s, b, c] if temperature > 0 else lb[c]
                    if v > best:
                        best, pick = v, c
                if mode == SOFTMAX:
                    step_in[b] = pick
                else:
                    mean = lb[m + pick]
                    if temperature > 0:
                        sc = np.exp(max(lb[2 * m + pick], np.float32(LOG_SCALE_MIN)))
                        mean = mean + temperature * sc * chunk.logistic[s, b]
                    step_in[b] = _value_class(mean, w.embed.shape[0])
                if index == 0:
                    out[b, s] = step_in[b]
            # No barrier here: the next step's first writes (x, skip) are of arrays every part
            # finished reading before the barrier ahead of the output product.
        if index == 0:
            prev[:] = step_in
else:
    run = None
