"""Mel-cepstral distortion (MCD) between two waveforms, with mel-cepstra computed here.

MCD (Kubichek 1993, "Mel-cepstral distance measure for objective speech quality assessment") in
dB between mel-cepstra c and c' of aligned frames, c0 (energy) excluded::

    MCD = (10 / ln 10) * sqrt(2 * sum_{d=1..24} (c_d - c'_d)^2)

averaged over the frames of the DTW alignment. With the log-amplitude mel-cepstrum of SPTK
(``ln |H(e^jw)| = sum_m c_m cos(m w~)``) this is exactly the RMS difference, in dB, of the two
log spectra (without their mean level) over the warped frequency axis w~ (`log_spectrum_db`).

Mel-cepstra (pysptk/SPTK is not usable here: pysptk needs ``pkg_resources``, diffsptk torchaudio):

1. frames of 25 ms (Hann) every 5 ms, power spectrum with a 1024-point FFT;
2. spectral envelope by cepstral smoothing: the real cepstrum of the log amplitude, liftered to
   quefrencies below 2 ms (under any pitch period up to 500 Hz), i.e. the causal cepstrum
   ``ln |X(w)| ~ sum_{n<L} c_n cos(n w)``;
3. frequency warping by the first-order all-pass ``z~^-1 = (z^-1 - a) / (1 - a z^-1)`` with
   a = 0.42 at 16 kHz (`ALPHA`): the cepstrum is transformed by SPTK's ``freqt`` recursion
   (Oppenheim & Johnson 1972), so ``ln |X| = sum_m c~_m cos(m w~)`` with
   ``w~ = w + 2 atan(a sin w / (1 - a cos w))``, truncated at order 24.

This is pysptk's ``sp2mc`` on a smoothed-STFT envelope; SPTK's ``mcep`` (iterative UELS fit) or a
WORLD CheapTrick envelope give somewhat different numbers, so compare MCDs within one tool.
Silent frames (more than ``silence_db`` below the loudest frame of their file) are dropped from
each file before the DTW (as pymcd's "dtw_sl" mode).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from speechvq.errors import AudioError
from speechvq.evaluation.speech.dtw import dtw_normalized

# All-pass constants that approximate the mel scale (SPTK's table); 0.42 at 16 kHz.
ALPHA = {8000: 0.31, 10000: 0.35, 12000: 0.37, 16000: 0.42, 22050: 0.45, 32000: 0.50,
         44100: 0.53, 48000: 0.55}
MCD_CONST = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of cepstral Euclidean distance


@functools.lru_cache(maxsize=16)
def freqt_matrix(in_order: int, out_order: int, alpha: float) -> np.ndarray:
    """The linear map of SPTK's ``freqt``: warped cepstrum = matrix @ cepstrum.

    SPTK recursion (for i = in_order .. 0, starting from g = 0)::

        g0 <- c_i + a g0;  g1 <- (1 - a^2) g0_old + a g1_old;
        gj <- g(j-1)_old + a (gj_old - g(j-1)_new)       (j = 2 .. out_order)

    run here on the identity, so it is done once per (orders, alpha).

    Returns:
        (out_order + 1, in_order + 1) float64.
    """
    b = 1.0 - alpha * alpha
    g = np.zeros((out_order + 1, in_order + 1))  # column n: response to the n-th basis cepstrum
    eye = np.eye(in_order + 1)
    for i in range(in_order, -1, -1):
        d = g.copy()
        g[0] = eye[i] + alpha * d[0]
        if out_order >= 1:
            g[1] = b * d[0] + alpha * d[1]
        for j in range(2, out_order + 1):
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


def freqt(c: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """Frequency-warp cepstra with the all-pass constant alpha (SPTK ``freqt``).

    Args:
        c: (..., M + 1) causal cepstra c_0..c_M (``ln|H| = sum c_m cos(m w)``).
        order: output order; alpha: all-pass constant (its negative undoes the warping).
    Returns:
        (..., order + 1) warped cepstra.
    """
    c = np.asarray(c, dtype=np.float64)
    return c @ freqt_matrix(c.shape[-1] - 1, order, float(alpha)).T  # (..., order + 1)


def warp_frequency(w: np.ndarray, alpha: float) -> np.ndarray:
    """All-pass phase map: w~ = w + 2 atan(alpha sin w / (1 - alpha cos w)), w in [0, pi]."""
    w = np.asarray(w, dtype=np.float64)
    return w + 2.0 * np.arctan(alpha * np.sin(w) / (1.0 - alpha * np.cos(w)))


def log_spectrum_db(mc: np.ndarray, n_points: int = 512, *, skip_c0: bool = False) -> np.ndarray:
    """20 log10 |H| on a uniform grid of the warped axis w~ in [0, pi) from mel-cepstra.

    Args:
        mc: (..., M + 1) mel-cepstra. n_points: grid size. skip_c0: drop the mean level.
    Returns:
        (..., n_points) dB.
    """
    mc = np.asarray(mc, dtype=np.float64)
    m = np.arange(mc.shape[-1])
    w = np.pi * (np.arange(n_points) + 0.5) / n_points  # (n_points,)
    basis = np.cos(np.outer(m, w))  # (M + 1, n_points)
    if skip_c0:
        basis[0] = 0.0
    return 20.0 / math.log(10.0) * (mc @ basis)


def _frames(wav: np.ndarray, hop: int, win: int) -> np.ndarray:
    pad = np.pad(wav, (win // 2, win // 2))  # frame j centred on sample j * hop
    n = 1 + (wav.size - 1) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(win)[None, :]  # (n, win)
    return pad[idx]  # (n, win)


def mel_cepstrum(wav: np.ndarray, sample_rate: int = 16000, *, order: int = 24,
                 alpha: float | None = None, frame_ms: float = 5.0, win_ms: float = 25.0,
                 lifter_ms: float = 2.0, n_fft: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Mel-cepstra of a waveform (module docstring, steps 1-3) and frame energies.

    Args:
        wav: (T,) float waveform. sample_rate: its rate. order: mel-cepstral order (24).
        alpha: all-pass constant; default `ALPHA[sample_rate]` (0.42 at 16 kHz).
        frame_ms, win_ms: hop and Hann window; lifter_ms: envelope smoothing cut-off;
        n_fft: FFT size (at least the window).
    Returns:
        (mc (F, order + 1) float64, energy_db (F,) frame energies in dB).
    """
    if alpha is None:
        if sample_rate not in ALPHA:
            raise AudioError(f"no standard all-pass constant for {sample_rate} Hz; pass alpha "
                             f"(known rates: {sorted(ALPHA)})")
        alpha = ALPHA[sample_rate]
    wav = np.asarray(wav, dtype=np.float64).reshape(-1)
    if wav.size == 0:
        raise AudioError("cannot compute mel-cepstra of an empty waveform")
    hop = max(1, int(round(sample_rate * frame_ms / 1000)))
    win = int(round(sample_rate * win_ms / 1000))
    n_fft = max(n_fft, 1 << (win - 1).bit_length())
    lifter = max(2, min(int(sample_rate * lifter_ms / 1000), n_fft // 2))
    frames = _frames(wav, hop, win) * np.hanning(win)  # (F, win)
    power = np.abs(np.fft.rfft(frames, n_fft)) ** 2  # (F, n_fft / 2 + 1)
    floor = max(power.max() * 1e-10, 1e-30)  # 100 dB below the loudest bin of the file
    log_amp = 0.5 * np.log(np.maximum(power, floor))  # (F, n_fft / 2 + 1) ln |X|
    ceps = np.fft.irfft(log_amp, n_fft)[:, :lifter]  # (F, L) real cepstrum
    ceps[:, 1:] *= 2.0  # causal form: ln |X| = c_0 + sum_{n>=1} c_n cos(n w)
    mc = freqt(ceps, order, alpha)  # (F, order + 1)
    energy_db = 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)  # (F,)
    return mc, energy_db


def mcd_from_mcep(mc_ref: np.ndarray, mc_test: np.ndarray) -> float:
    """DTW-aligned MCD in dB between two mel-cepstral sequences, c0 excluded.

    The frame distance is Kubichek's MCD; the DTW (`dtw_normalized`) minimises its sum and the
    result is its mean over the aligned frame pairs.

    Args:
        mc_ref: (N, M + 1) and mc_test: (K, M + 1) mel-cepstra (column 0 is c0).
    Returns:
        MCD in dB.
    """
    a = np.asarray(mc_ref, dtype=np.float64)[:, 1:]  # (N, M)
    b = np.asarray(mc_test, dtype=np.float64)[:, 1:]  # (K, M)
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T  # (N, K)
    return dtw_normalized(MCD_CONST * np.sqrt(np.maximum(sq, 0.0)))


def mcd(ref_wav: np.ndarray, test_wav: np.ndarray, sample_rate: int = 16000, *,
        order: int = 24, alpha: float | None = None, frame_ms: float = 5.0,
        silence_db: float = 40.0) -> float:
    """Mel-cepstral distortion in dB between a reference and a test waveform (module docstring).

    Args:
        ref_wav, test_wav: (T,) and (T',) waveforms at ``sample_rate`` (any lengths).
        order: mel-cepstral order (24); alpha: all-pass constant (0.42 at 16 kHz).
        frame_ms: frame shift (5 ms).
        silence_db: frames more than this below their file's loudest frame are dropped.
    Returns:
        MCD in dB (0 for identical files; a gain change alone changes only c0, so gives 0).
    """
    kept = []
    for name, wav in (("reference", ref_wav), ("test", test_wav)):
        mc, energy = mel_cepstrum(wav, sample_rate, order=order, alpha=alpha, frame_ms=frame_ms)
        speech = energy > energy.max() - silence_db
        if not np.isfinite(energy.max()) or energy.max() < -100.0:
            raise AudioError(f"MCD: the {name} waveform is silent")
        kept.append(mc[speech])
    return mcd_from_mcep(kept[0], kept[1])
