"""Mel-cepstral distortion on signals whose answer is known: identity, gain, all-pass warping
against a sampled reference, the dB constant, envelope recovery, different vowels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechvq.errors import AudioError
from speechvq.evaluation.speech.mcd import (MCD_CONST, freqt, log_spectrum_db, mcd, mcd_from_mcep,
                                     mel_cepstrum, warp_frequency)

SR = 16000
VOWEL_A = (730, 1090, 2440)  # formant frequencies (Hz) of /a/ and /i/ (Peterson & Barney)
VOWEL_I = (270, 2290, 3010)


def envelope_db(freq_hz, formants, bandwidths=(80, 90, 120)):
    """20 log10 |H| of a cascade of two-pole resonators (a formant synthesiser's filter)."""
    z = np.exp(1j * 2 * np.pi * np.asarray(freq_hz, dtype=np.float64) / SR)
    h = np.ones_like(z)
    for f, b in zip(formants, bandwidths):
        r, th = math.exp(-math.pi * b / SR), 2 * math.pi * f / SR
        h = h / ((1 - r * np.exp(1j * th) / z) * (1 - r * np.exp(-1j * th) / z))
    return 20 * np.log10(np.abs(h))


def vowel(formants, f0=120.0, seconds=0.5):
    """A steady vowel: harmonics of f0 weighted by the formant envelope."""
    t = np.arange(int(SR * seconds)) / SR
    k = np.arange(1, int(SR / 2 / f0))
    amp = 10 ** (envelope_db(k * f0, formants) / 20)  # (H,)
    x = (amp[:, None] * np.cos(2 * np.pi * f0 * k[:, None] * t[None, :])).sum(0)  # (T,)
    return 0.5 * x / np.abs(x).max()


def test_freqt_matches_the_envelope_sampled_on_the_warped_axis():
    rng = np.random.default_rng(0)
    c = rng.standard_normal(11) * np.exp(-0.3 * np.arange(11))  # a smooth log envelope
    alpha = 0.42
    mc = freqt(c, 24, alpha)
    # reference: ln|H| as a function of the warped frequency w~, expanded in cos(m w~)
    n = 4096
    w_warped = np.pi * (np.arange(n) + 0.5) / n
    w = warp_frequency(w_warped, -alpha)  # the inverse all-pass map
    log_h = np.cos(np.outer(w, np.arange(11))) @ c
    ref = [(1 if m == 0 else 2) * np.mean(log_h * np.cos(m * w_warped)) for m in range(25)]
    np.testing.assert_allclose(mc, ref, atol=1e-10)
    np.testing.assert_allclose(warp_frequency(warp_frequency(w, alpha), -alpha), w, atol=1e-12)
    # warping with alpha then -alpha gives the cepstrum back (given enough intermediate order)
    np.testing.assert_allclose(freqt(freqt(c, 200, alpha), 10, -alpha), c, atol=1e-10)


def test_mcd_constant_is_the_rms_log_spectral_difference_in_db():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 1, 25)) * 0.3
    diff = log_spectrum_db(a, 4096, skip_c0=True) - log_spectrum_db(b, 4096, skip_c0=True)
    assert mcd_from_mcep(a, b) == pytest.approx(np.sqrt(np.mean(diff ** 2)), rel=1e-6)
    assert MCD_CONST == pytest.approx(10 / math.log(10) * math.sqrt(2))


def test_identity_gain_and_silence():
    x = vowel(VOWEL_A)
    assert mcd(x, x) < 1e-5
    assert mcd(x, 0.1 * x) < 1e-5  # a gain only moves c0, which MCD leaves out
    padded = np.concatenate([np.zeros(2400), x, np.zeros(800)])  # silence trimmed, DTW aligns
    assert mcd(x, padded) < 0.5
    with pytest.raises(AudioError, match="silent"):
        mcd(x, np.zeros(8000))


def test_envelope_is_recovered_on_the_warped_axis():
    mc, energy = mel_cepstrum(vowel(VOWEL_A, f0=120.0))
    assert mc.shape == (1 + (SR // 2 - 1) // 80, 25) and energy.shape == mc.shape[:1]
    n = 512
    est = log_spectrum_db(mc[10:-10].mean(0), n)  # on w~ = pi (k + 0.5) / n
    freq = warp_frequency(np.pi * (np.arange(n) + 0.5) / n, -0.42) / np.pi * SR / 2
    band = (freq > 150) & (freq < 7000)
    err = (est - envelope_db(freq, VOWEL_A))[band]
    err -= err.mean()
    assert np.sqrt(np.mean(err ** 2)) < 3.0  # dB, smoothing of the 80-120 Hz wide formants


def test_different_vowels_are_far_and_pitch_matters_little():
    a = vowel(VOWEL_A, f0=120.0)
    assert mcd(a, vowel(VOWEL_I, f0=120.0)) > 10.0
    assert mcd(a, vowel(VOWEL_A, f0=150.0)) < 2.0
