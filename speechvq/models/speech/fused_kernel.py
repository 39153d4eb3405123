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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from speechvq.models.speech.mol import LOG_SCALE_MIN

try:
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic
except ImportError:  # numba comes with librosa; without it only the eager engine runs
    njit = None

SOFTMAX, MOL, FORCED = 0, 1, 2  # modes: sample a softmax, sample a mixture, teacher forcing


def available() -> bool:
    """True where the kernel can run (numba imports)."""
    return njit is not None


class StackWeights(NamedTuple):
    """A stack's weights laid out for the kernel (x @ W, rows = inputs), float32 or bf16 bits."""

    embed: np.ndarray  # (Q, R) float32: input class -> residual vector
    conv: np.ndarray  # (L, k * R, G) float32, tap-major rows; (0, 0, 0) when bf16
    conv16: np.ndarray  # (L, k * R, G) uint16 bfloat16 bits; (0, 0, 0) when fp32
    rs: np.ndarray  # (L, G / 2, R + K) float32 residual | skip projections; (0, 0, 0) when bf16
    rs16: np.ndarray  # (L, G / 2, R + K) uint16; (0, 0, 0) when fp32
    rs_b: np.ndarray  # (L, R + K) float32
    head1: np.ndarray  # (K, K) float32
    head1_b: np.ndarray  # (K,)
    head2: np.ndarray  # (K, O) float32
    head2_b: np.ndarray  # (O,)
    offsets: np.ndarray  # (L,) int64: first ring-buffer slot of each layer
    sizes: np.ndarray  # (L,) int64: (k - 1) * d + 1 slots per layer
    dilations: np.ndarray  # (L,) int64
    skip_scale: float  # sqrt(1 / L)


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
    def _bf16(typingctx, bits):
        """bfloat16 bits (uint16) -> float32: shifted into the high half, no rounding."""
        if bits != types.uint16:
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
    def _rows4(y, x, j, w0, w1, w2, w3):
        """y (B, N) += x[:, j:j + 4] @ [w0; w1; w2; w3], each sum in order of the rows; batch
        rows go in pairs, so each weight loaded serves two of them."""
        batch, n = y.shape
        b = 0
        while b + 2 <= batch:
            x0, x1, x2, x3 = x[b, j], x[b, j + 1], x[b, j + 2], x[b, j + 3]
            u0, u1, u2, u3 = x[b + 1, j], x[b + 1, j + 1], x[b + 1, j + 2], x[b + 1, j + 3]
            ya, yb = y[b], y[b + 1]
            for o in range(n):
                a0, a1, a2, a3 = w0[o], w1[o], w2[o], w3[o]
                ya[o] = (((ya[o] + x0 * a0) + x1 * a1) + x2 * a2) + x3 * a3
                yb[o] = (((yb[o] + u0 * a0) + u1 * a1) + u2 * a2) + u3 * a3
            b += 2
        if b < batch:
            x0, x1, x2, x3 = x[b, j], x[b, j + 1], x[b, j + 2], x[b, j + 3]
            ya = y[b]
            for o in range(n):
                ya[o] = (((ya[o] + x0 * w0[o]) + x1 * w1[o]) + x2 * w2[o]) + x3 * w3[o]

    @_jit
    def _gemm(y, x, w):
        """y (B, N) += x (B, K) @ w (K, N): w's rows streamed once per step for the whole
        batch, each sum taken in order of K (four rows at a time, y loaded once per four)."""
        k = x.shape[1]
        j = 0
        while j + 4 <= k:
            _rows4(y, x, j, w[j], w[j + 1], w[j + 2], w[j + 3])
            j += 4
        for j in range(j, k):
            wj = w[j]
            for b in range(y.shape[0]):
                xj, yb = x[b, j], y[b]
                for o in range(y.shape[1]):
                    yb[o] += xj * wj[o]

    @_jit
    def _gemm16(y, x, w, tmp):
        """`_gemm` with bfloat16 weights (uint16 bits; the same sums in the same order). One
        utterance widens each weight inside its product; a batch widens four rows once into
        tmp ((4, N) float32) and shares them."""
        batch, k = x.shape
        n = w.shape[1]
        j = 0
        while j + 4 <= k:
            w0, w1, w2, w3 = w[j], w[j + 1], w[j + 2], w[j + 3]
            if batch == 1:
                x0, x1, x2, x3 = x[0, j], x[0, j + 1], x[0, j + 2], x[0, j + 3]
                ya = y[0]
                for o in range(n):
                    ya[o] = ((((ya[o] + x0 * _bf16(w0[o])) + x1 * _bf16(w1[o]))
                              + x2 * _bf16(w2[o])) + x3 * _bf16(w3[o]))
            else:
                t0, t1, t2, t3 = tmp[0], tmp[1], tmp[2], tmp[3]
                for o in range(n):
                    t0[o], t1[o] = _bf16(w0[o]), _bf16(w1[o])
                    t2[o], t3[o] = _bf16(w2[o]), _bf16(w3[o])
                _rows4(y, x, j, t0, t1, t2, t3)
            j += 4
        for j in range(j, k):
            wj = w[j]
            for b in range(batch):
                xj, yb = x[b, j], y[b]
                for o in range(n):
                    yb[o] += xj * _bf16(wj[o])

    @_jit
    def _layer_product(y, x, w32, w16, i, bf16, tmp):
        if bf16:
            _gemm16(y, x, w16[i], tmp)
        else:
            _gemm(y, x, w32[i])

    @_jit
    def _value_class(x, classes):
        """mol.value_to_class for one float32 value."""
        x = min(max(x, -ONE), ONE)
        q = np.rint((x + ONE) * np.float32(classes - 1) / TWO)
        return min(max(np.int64(q), 0), classes - 1)

    @_jit
    def run(w, buf, prev, t0, chunk, mode, temperature, bf16, out, logits_out):
        """Advance every utterance by n = len(chunk.row_of) samples.

        Args:
            w: StackWeights. buf: (B, slots, R) ring buffers, updated. prev: (B,) int64 input
            of the next step, updated. t0: samples produced before this chunk. chunk: Chunk.
            mode: SOFTMAX, MOL (sample) or FORCED (inputs from chunk.forced, logits kept).
            temperature: float32, 0 = greedy. bf16: use w.conv16 / w.rs16.
            out: (B, n) int64 sampled classes (SOFTMAX, MOL). logits_out: (B, n, O) float32
            (FORCED).
        """
        batch, _, r = buf.shape
        layers = w.rs_b.shape[0]
        g = chunk.rows.shape[2] // layers
        h = g // 2
        kernel = (w.sizes[0] - 1) // w.dilations[0] + 1
        skip_n = w.rs_b.shape[1] - r
        o_n = w.head2_b.shape[0]
        x = np.empty((batch, r), np.float32)
        taps = np.empty((batch, kernel * r), np.float32)
        gate = np.empty((batch, g), np.float32)
        z = np.empty((batch, h), np.float32)
        rs = np.empty((batch, r + skip_n), np.float32)
        skip = np.empty((batch, skip_n), np.float32)
        h1 = np.empty((batch, skip_n), np.float32)
        logits = np.empty((batch, o_n), np.float32)
        tmp = np.empty((4, max(g, r + skip_n)), np.float32)
        e_a = np.empty(h, np.float32)
        e_b = np.empty(h, np.float32)
        sqrt_half = np.float32(math.sqrt(0.5))
        scale = np.float32(w.skip_scale)
        for s in range(chunk.row_of.shape[0]):
            t = t0 + s
            row = chunk.row_of[s]
            for b in range(batch):
                x[b] = w.embed[prev[b]]
            skip[:] = 0.0
            for i in range(layers):
                size, off, d = w.sizes[i], w.offsets[i], w.dilations[i]
                pos = t % size
                for b in range(batch):
                    buf[b, off + pos] = x[b]
                    for j in range(kernel):
                        slot = (pos - (kernel - 1 - j) * d) % size
                        taps[b, j * r:(j + 1) * r] = buf[b, off + slot]
                    gate[b] = chunk.rows[b, row, i * g:(i + 1) * g]
                _layer_product(gate, taps, w.conv, w.conv16, i, bf16, tmp)
                for b in range(batch):
                    gb, zb = gate[b], z[b]
                    for c in range(h):
                        e_a[c] = _exp(TWO * gb[c])
                        e_b[c] = _exp(-gb[h + c])
                    for c in range(h):  # tanh(a) * sigmoid(b)
                        zb[c] = (ONE - TWO / (e_a[c] + ONE)) * (ONE / (ONE + e_b[c]))
                    rs[b] = w.rs_b[i]
                _layer_product(rs, z, w.rs, w.rs16, i, bf16, tmp)
                for b in range(batch):
                    xb, rb, sb = x[b], rs[b], skip[b]
                    for c in range(r):
                        xb[c] = (xb[c] + rb[c]) * sqrt_half
                    for c in range(skip_n):
                        sb[c] += rb[r + c]
            for b in range(batch):
                for c in range(skip_n):
                    skip[b, c] = max(skip[b, c] * scale, np.float32(0.0))
                h1[b] = w.head1_b
            _gemm(h1, skip, w.head1)
            for b in range(batch):
                for c in range(skip_n):
                    h1[b, c] = max(h1[b, c], np.float32(0.0))
                logits[b] = w.head2_b
            _gemm(logits, h1, w.head2)
            for b in range(batch):
                lb = logits[b]
                if mode == FORCED:
                    logits_out[b, s] = lb
                    prev[b] = chunk.forced[b, s]
                    continue
                m = o_n if mode == SOFTMAX else o_n // 3
                best, pick = -np.inf, 0
                for c in range(m):
                    v = lb[c] / temperature + chunk.gumbel[s, b, c] if temperature > 0 else lb[c]
                    if v > best:
                        best, pick = v, c
                if mode == SOFTMAX:
                    prev[b] = pick
                else:
                    mean = lb[m + pick]
                    if temperature > 0:
                        sc = np.exp(max(lb[2 * m + pick], np.float32(LOG_SCALE_MIN)))
                        mean = mean + temperature * sc * chunk.logistic[s, b]
                    prev[b] = _value_class(mean, w.embed.shape[0])
                out[b, s] = prev[b]
else:
    run = None
