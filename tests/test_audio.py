"""speechvq.audio: I/O, resampling, mu-law, log-mel timing, MFCC, Griffin-Lim (known answers)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import soundfile as sf
import torch

from speechvq import audio
from speechvq.config.speech import DataConfig
from speechvq.errors import AudioError, ConfigError

SR = 16000
MEL = dict(sample_rate=SR, n_fft=1024, win_length=400, hop_length=160, n_mels=80, fmin=0.0,
           fmax=8000.0)
GL = {k: v for k, v in MEL.items() if k != "n_mels"}


def sine(freq=440.0, seconds=0.5, sr=SR, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


# ------------------------------------------------------------------------------------ mu-law


def test_mu_law_exact_inverse_numpy_and_torch():
    q = np.arange(256)
    x = audio.mu_law_decode(q)
    assert x.dtype == np.float32 and np.all(np.diff(x) > 0) and -1 <= x[0] and x[-1] <= 1
    np.testing.assert_array_equal(audio.mu_law_encode(x), q)
    qt = torch.arange(256)
    xt = audio.mu_law_decode(qt)
    assert isinstance(xt, torch.Tensor) and xt.dtype == torch.float32
    enc = audio.mu_law_encode(xt)
    assert enc.dtype == torch.int64
    torch.testing.assert_close(enc, qt, rtol=0, atol=0)
    np.testing.assert_allclose(xt.numpy(), x, atol=1e-6)


def test_mu_law_known_values():
    enc = audio.mu_law_encode(np.array([-2.0, -1.0, 0.0, 1.0, 3.0]))
    np.testing.assert_array_equal(enc, [0, 0, 128, 255, 255])  # clipped; 0 -> 127.5 + 0.5
    # f(0.5) = ln(1 + 127.5) / ln(256) = 0.8757 -> (1.8757 / 2) * 255 + 0.5 = 239.65 -> 239
    assert int(audio.mu_law_encode(np.array(0.5))) == 239
    assert audio.mu_law_encode(torch.tensor([0.5])).tolist() == [239]


# ---------------------------------------------------------------------------------------- I/O


@pytest.mark.parametrize("fmt,ext", [("WAV", ".wav"), ("FLAC", ".flac"), ("NIST", ".sph")])
def test_load_formats(tmp_path, fmt, ext):
    x = sine()
    path = tmp_path / f"a{ext}"
    sf.write(path, x, SR, format=fmt, subtype="PCM_16")
    y, sr = audio.load_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1.0 / 32768 + 1e-6)


def test_load_stereo_is_channel_mean(tmp_path):
    a, b = sine(440.0), sine(1000.0, amp=0.25)
    sf.write(tmp_path / "st.wav", np.stack([a, b], axis=1), SR, subtype="FLOAT")
    y, _ = audio.load_audio(tmp_path / "st.wav")
    assert y.ndim == 1
    np.testing.assert_allclose(y, (a + b) / 2, atol=1e-6)


def test_resample_length_and_frequency(tmp_path):
    x = sine(440.0, seconds=1.0)
    sf.write(tmp_path / "s.wav", x, SR, subtype="FLOAT")
    y, sr = audio.load_audio(tmp_path / "s.wav", sample_rate=8000)
    assert sr == 8000 and y.shape == (8000,) and y.dtype == np.float32
    assert abs(peak_hz(y, 8000) - 440.0) <= 1.0
    z = audio.resample(x, SR, 22050)
    assert z.shape == (22050,) and abs(peak_hz(z, 22050) - 440.0) <= 1.0
    np.testing.assert_array_equal(audio.resample(x, SR, SR), x)


def test_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav.*does not exist"):
        audio.load_audio(tmp_path / "missing.wav")
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(AudioError, match="corrupt.wav.*cannot be read"):
        audio.load_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        audio.load_audio(empty)


def test_save_audio_atomic_clipped(tmp_path):
    path = tmp_path / "sub" / "dir" / "o.wav"
    x = np.array([0.0, 0.5, 2.0, -3.0, -0.25], dtype=np.float32)
    audio.save_audio(path, torch.from_numpy(x), SR, subtype="FLOAT")
    y, sr = sf.read(path, dtype="float32")
    assert sr == SR
    np.testing.assert_array_equal(y, [0.0, 0.5, 1.0, -1.0, -0.25])
    assert [p.name for p in path.parent.iterdir()] == ["o.wav"]  # no temp file left
    with pytest.raises(AudioError, match="o2.wav"):
        audio.save_audio(tmp_path / "o2.wav", np.array([np.nan]), SR)
    assert not (tmp_path / "o2.wav").exists()


def test_is_silent():
    assert audio.is_silent(np.zeros(100))
    assert audio.is_silent(np.full(10, 1e-4))          # -80 dB
    assert not audio.is_silent(np.full(10, 1e-2))      # -40 dB
    assert audio.is_silent(np.full(10, 1e-2), threshold_db=-30.0)
    assert audio.is_silent(np.zeros(0))


# -------------------------------------------------------------------------------- log-mel, MFCC


@pytest.mark.parametrize("T", [0, 1, 159, 160, 161, 1000, 16001])
def test_log_mel_frame_count(T):
    out = audio.log_mel(torch.zeros(2, T), **MEL)
    assert out.shape == (2, 80, -(-T // 160))
    if T:
        torch.testing.assert_close(out, torch.full_like(out, np.log(1e-5)))


def _impulse_frames(device, hop=160, win_length=400):
    p = dict(MEL, hop_length=hop, win_length=win_length)
    n = 40 * hop
    for j in (0, 7, 20, 39):
        x = torch.zeros(n, device=device)
        x[int((j + 0.5) * hop)] = 1.0
        energy = audio.log_mel(x, **p).exp().sum(0)  # (frames,)
        assert energy.shape == (40,) and energy.device == x.device
        assert int(energy.argmax()) == j
        if 0 < j < 39:  # the window is centred on the click: neighbours see it equally
            torch.testing.assert_close(energy[j - 1], energy[j + 1], rtol=1e-4, atol=0)


def test_log_mel_frame_centred_on_half_hop():
    _impulse_frames("cpu")
    _impulse_frames("cpu", hop=320, win_length=1024)


def test_log_mel_matches_librosa_reference():
    librosa = pytest.importorskip("librosa")
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    ours = audio.log_mel(torch.from_numpy(x), **MEL).numpy()  # (80, 50)
    # librosa centres frame j on j * hop: drop half a hop to centre it on (j + 0.5) * hop
    ref = librosa.feature.melspectrogram(y=x[80:], sr=SR, n_fft=1024, hop_length=160,
                                         win_length=400, power=1.0, n_mels=80,
                                         pad_mode="constant")
    assert ours.shape == (80, 50) and ref.shape[1] == 50
    np.testing.assert_allclose(ours[:, 4:-4], np.log(np.maximum(ref, 1e-5))[:, 4:-4], atol=1e-4)


def test_log_mel_batch_dims_and_config():
    x = torch.randn(2, 3, 1600)
    out = audio.log_mel(x, **MEL)
    assert out.shape == (2, 3, 80, 10)
    torch.testing.assert_close(out[1, 2], audio.log_mel(x[1, 2], **MEL))
    torch.testing.assert_close(audio.log_mel_cfg(x, DataConfig()), out)
    with pytest.raises(ConfigError, match="fmax"):
        audio.log_mel(x, **dict(MEL, fmax=9000.0))


def test_mfcc_is_orthonormal_dct_of_log_mel():
    x = torch.randn(1, 3200)
    lm = audio.log_mel(x, **MEL).numpy()
    m = audio.mfcc(x, n_mfcc=13, **MEL)
    assert m.shape == (1, 13, 20)
    ref = scipy.fft.dct(lm, type=2, axis=-2, norm="ortho")[:, :13]
    np.testing.assert_allclose(m.numpy(), ref, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_log_mel_cuda_matches_cpu():
    _impulse_frames("cuda")
    x = torch.randn(2, 4000)
    gpu = audio.log_mel(x.cuda(), **MEL)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), audio.log_mel(x, **MEL), atol=1e-3, rtol=1e-4)
    q = audio.mu_law_encode(x.clamp(-1, 1).cuda())
    assert q.device.type == "cuda"
    torch.testing.assert_close(audio.mu_law_encode(audio.mu_law_decode(q)), q)


def test_griffin_lim_length_and_fidelity():
    t = np.arange(8000) / SR
    x = (0.3 * np.sin(2 * np.pi * 300 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    lm = audio.log_mel(torch.from_numpy(x), **MEL).numpy()  # (80, 50)
    y = audio.griffin_lim(lm, n_iter=16, **GL)
    assert y.shape == (50 * 160,) and y.dtype == np.float32
    lm2 = audio.log_mel(torch.from_numpy(y), **MEL).numpy()
    assert np.corrcoef(lm.ravel(), lm2.ravel())[0, 1] > 0.9
    # the timing survives inversion: the envelope's peaks stay where they were
    env, env2 = lm.max(0), lm2.max(0)
    assert abs(int(np.argmax(env[5:-5])) - int(np.argmax(env2[5:-5]))) <= 1
