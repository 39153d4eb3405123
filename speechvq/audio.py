"""Audio I/O, mu-law companding and log-mel / MFCC features (GPU-able), and Griffin-Lim inversion.

- I/O through libsndfile (`soundfile`: WAV, FLAC, NIST SPHERE as in TIMIT, ...), resampling with
  soxr; every file problem is an `AudioError` naming the file.
- 8-bit mu-law (ITU-T G.711; WaveNet, van den Oord et al. 2016, arXiv:1609.03499, section 2.2):
  ``f(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)`` quantised to ``channels`` classes;
  ``mu_law_encode(mu_law_decode(q)) == q`` exactly.
- Log-mel: ``log(max(mel @ |STFT|, 1e-5))`` with `torch.stft` (periodic Hann window of
  ``win_length`` centred in ``n_fft``) and librosa's Slaney mel filters (McFee et al., librosa,
  SciPy 2015). Frame timing follows DESIGN.md: a waveform of T samples gives exactly
  ``ceil(T / hop)`` frames and frame j's window is centred on sample ``(j + 0.5) * hop`` (to half a
  sample when that is not an integer), so frame j describes the samples ``[j*hop, (j+1)*hop)``
  like code j. The signal is zero-padded on both sides to make this hold for any length.
- Griffin-Lim (Griffin and Lim 1984, via librosa) inverts a log-mel back to a waveform with the same
  timing.

Filterbanks, windows and DCT matrices are cached per (parameters, device, dtype).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

from speechvq.errors import AudioError, ConfigError
from speechvq.fileio import atomic_path

if TYPE_CHECKING:
    import torch

LOG_FLOOR = 1e-5  # magnitudes are floored here before the log (log(1e-5) = -11.5)
#: frames of one STFT in `log_mel`: a long recording is transformed in blocks of this many
#: frames, so its complex spectrogram (n_fft / 2 + 1 x frames x 8 bytes: 3 GB for 2 hours at the
#: defaults) is never held whole; frames are independent, so the result is the same
MEL_BLOCK_FRAMES = 8192

# ------------------------------------------------------------------------------------------ I/O


def _is_tensor(x) -> bool:
    """isinstance(x, torch.Tensor) without importing torch (it can only be a tensor if torch is
    already imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _wav_data_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes the WAV header's data chunk declares, bytes present) when the file holds fewer
    than declared (a copy cut short: libsndfile reads what is there without a word), else
    None. Only RIFF/RIFX WAV files are checked; the streaming sizes 0 and 0xFFFFFFFF (a header
    written before the length was known) are taken at their word."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "little" if head[:4] == b"RIFF" else "big"
            size = os.fstat(f.fileno()).st_size
            pos = 12
            for _ in range(64):  # a WAV has a handful of chunks; a loop bound, not a limit met
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                n = int.from_bytes(chunk[4:8], order)
                if chunk[:4] == b"data":
                    present = size - pos - 8
                    return (n, present) if n not in (0, 0xFFFFFFFF) and present < n else None
                pos += 8 + n + (n & 1)
    except OSError:
        return None
    return None


def audio_info(path: str | os.PathLike) -> tuple[int, int]:
    """(samples per channel, sample rate) from a file's header, refusing a WAV whose data chunk
    is shorter than its header says (`load_audio` refuses it too).

    Raises:
        AudioError: missing, unreadable, truncated, or a sample rate outside 1 .. 384 kHz.
    """
    from speechvq.config.speech import MAX_SAMPLE_RATE
    path = Path(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AudioError(f"audio file '{path}' cannot be read ({first}); it is missing, corrupt "
                         f"or not an audio format libsndfile reads: re-extract or convert "
                         f"it") from None
    short = _wav_data_shortfall(path)
    if short is not None:
        declared, present = short
        per_frame = max(1, (info.channels or 1) * _bytes_per_sample(info.subtype))
        raise AudioError(f"audio file '{path}' is truncated: its header says "
                         f"{declared // per_frame} samples, {present // per_frame} are present; "
                         f"copy or extract it again")
    if not 0 < info.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(f"audio file '{path}' says its sample rate is {info.samplerate} Hz, "
                         f"outside 1 .. {MAX_SAMPLE_RATE} Hz; its header is corrupt: re-export it")
    return int(info.frames), int(info.samplerate)


def _bytes_per_sample(subtype: str) -> int:
    for bits, n in (("8", 1), ("16", 2), ("24", 3), ("32", 4), ("64", 8), ("FLOAT", 4),
                    ("DOUBLE", 8), ("ULAW", 1), ("ALAW", 1)):
        if subtype.endswith(bits):
            return n
    return 1


def load_audio(path: str | os.PathLike, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read any file libsndfile reads as mono float32, resampled with soxr if asked.

    Args:
        path: WAV, FLAC, NIST SPHERE (TIMIT), OGG, ... file.
        sample_rate: resample to this rate (Hz); None keeps the file's rate.
    Returns:
        (samples (T,) float32 in [-1, 1] for integer formats, channels averaged; sample rate).
    Raises:
        AudioError: the file is missing, unreadable, corrupt or truncated (`audio_info`),
            empty, or holds NaN/inf samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file '{path}' does not exist; check the path (relative paths in "
                         f"wav.scp are resolved against the current directory, then the data dir)")
    audio_info(path)  # header checks: a truncated WAV, an absurd sample rate
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AudioError(f"audio file '{path}' cannot be read ({first}); it is corrupt or not an "
                         f"audio format libsndfile reads (WAV, FLAC, NIST SPHERE, OGG, MP3): "
                         f"re-extract or convert it") from None
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise AudioError(f"audio file '{path}' is empty (no samples); give a recording with "
                         f"sound in it")
    x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]  # (T,)
    if not np.isfinite(x).all():
        raise AudioError(f"audio file '{path}' holds NaN or infinite samples; re-export it")
    if sample_rate is not None and sample_rate != sr:
        x, sr = resample(x, sr, sample_rate), int(sample_rate)
    return np.ascontiguousarray(x, dtype=np.float32), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample with soxr (high quality). Args: x (T,) or (T, C); rates in Hz.

    Returns:
        float32 array of round(T * sr_out / sr_in) samples (same channels).
    """
    from speechvq.config.speech import MAX_SAMPLE_RATE
    if not (0 < sr_in <= MAX_SAMPLE_RATE and 0 < sr_out <= MAX_SAMPLE_RATE):
        raise AudioError(f"cannot resample {sr_in} Hz -> {sr_out} Hz: sample rates must be "
                         f"between 1 and {MAX_SAMPLE_RATE} Hz")
    x = np.asarray(x, dtype=np.float32)
    if sr_in == sr_out:
        return x.copy()
    return np.asarray(soxr.resample(x, sr_in, sr_out, quality="HQ"), dtype=np.float32)


def check_audio_name(path: str | os.PathLike, subtype: str = "PCM_16") -> None:
    """Raise AudioError unless libsndfile can write ``path``'s format (from its extension) with
    ``subtype``; cheap, so callers check an output name before any long computation."""
    path = Path(path)
    fmt = path.suffix[1:].upper()
    if not fmt:
        raise AudioError(f"cannot write audio file '{path}': the name needs an audio extension "
                         f"such as .wav or .flac")
    if fmt not in sf.available_formats() or not sf.check_format(fmt, subtype):
        raise AudioError(f"cannot write audio file '{path}': libsndfile does not write "
                         f"{path.suffix} as {subtype}; use .wav or .flac")


def save_audio(path: str | os.PathLike, x, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write audio atomically (`speechvq.fileio.atomic_path`).

    Args:
        path: output file; the format follows the extension (.wav, .flac, ...); parents are made.
        x: (T,) or (T, C) samples, numpy array or torch tensor (any device); clipped to [-1, 1].
        sample_rate: Hz.
        subtype: libsndfile subtype, e.g. "PCM_16", "FLOAT".
    """
    path = Path(path)
    check_audio_name(path, subtype)
    if _is_tensor(x):
        x = x.detach().float().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise AudioError(f"refusing to write '{path}': the signal holds NaN or infinite samples")
    with atomic_path(path, suffix=path.suffix) as tmp:  # soundfile reads the format from it
        try:
            sf.write(tmp, np.clip(x, -1.0, 1.0), int(sample_rate), subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as e:
            # the name and subtype were checked above: this is the file system (a full disk is
            # told apart by atomic_path, which raises DiskFullError instead)
            why = str(e).replace(str(tmp), str(path))  # name the file the user asked for
            raise AudioError(f"cannot write audio file '{path}' ({why}); check that its "
                             f"folder is writable") from None


def is_silent(x, threshold_db: float = -60.0) -> bool:
    """True when the peak |x| is below `threshold_db` dBFS (an empty signal is silent)."""
    x = x.detach().cpu().numpy() if _is_tensor(x) else np.asarray(x)
    if x.size == 0:
        return True
    peak = float(np.abs(x).max())
    return peak <= 0.0 or 20.0 * math.log10(peak) < threshold_db


# --------------------------------------------------------------------------------------- mu-law


def mu_law_encode(x, channels: int = 256):
    """Mu-law compand and quantise. Args: x (...) floats in [-1, 1] (clipped), numpy or torch.

    Returns:
        (...) int64 classes in [0, channels - 1], same type as x (torch keeps the device).
    """
    mu = channels - 1
    if _is_tensor(x):
        torch = sys.modules["torch"]
        x = x.float().clamp(-1.0, 1.0)
        y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
        return torch.floor((y + 1) / 2 * mu + 0.5).long()
    x = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.floor((y + 1) / 2 * mu + 0.5).astype(np.int64)


def mu_law_decode(q, channels: int = 256):
    """Inverse of `mu_law_encode`: each class maps to its centre. Args: q (...) int classes.

    Returns:
        (...) float32 samples in [-1, 1], same type as q (torch keeps the device).
    """
    mu = channels - 1
    if _is_tensor(q):
        torch = sys.modules["torch"]
        y = 2 * q.float() / mu - 1
        return torch.sign(y) * (torch.pow(1.0 + mu, y.abs()) - 1) / mu
    y = 2 * np.asarray(q, dtype=np.float64) / mu - 1
    return (np.sign(y) * ((1.0 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)


# ------------------------------------------------------------------------------------- features


def _check_params(sample_rate: int, n_fft: int, win_length: int, hop_length: int,
                  fmin: float, fmax: float) -> None:
    if not 0 < win_length <= n_fft:
        raise ConfigError(f"data.win_length ({win_length}) must be between 1 and data.n_fft "
                          f"({n_fft})")
    if hop_length <= 0:
        raise ConfigError(f"data.hop_length must be positive (got {hop_length})")
    if not 0 <= fmin < fmax <= sample_rate / 2:
        raise ConfigError(f"mel band edges must satisfy 0 <= data.fmin ({fmin}) < data.fmax "
                          f"({fmax}) <= sample_rate / 2 ({sample_rate / 2})")


@functools.lru_cache(maxsize=32)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
               device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    import torch  # imported lazily: dump and synthesis workers never need it
    import librosa  # slow to import; only the filters come from it

    fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                             htk=False, norm="slaney")  # (n_mels, n_fft // 2 + 1)
    return torch.as_tensor(fb, dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def _window(win_length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    import torch  # imported lazily: dump and synthesis workers never need it
    return torch.hann_window(win_length, periodic=True, dtype=dtype, device=device)


@functools.lru_cache(maxsize=32)
def dct_matrix(n_mfcc: int, n_mels: int, device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
    """Orthonormal DCT-II rows: (n_mfcc, n_mels), as scipy.fft.dct(norm='ortho')."""
    import torch  # imported lazily: dump and synthesis workers never need it
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]  # (n_mfcc, 1)
    n = torch.arange(n_mels, dtype=torch.float64)[None, :]  # (1, n_mels)
    d = torch.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


def _frame_padding(n_samples: int, n_fft: int, win_length: int, hop_length: int) -> tuple[int, int]:
    """Left/right zero padding that gives ceil(T / hop) frames with frame j centred on sample
    (j + 0.5) * hop under `torch.stft(center=False)`; negative means crop."""
    n_frames = -(-n_samples // hop_length)
    centre = (n_fft - win_length) // 2 + win_length / 2  # window centre inside an n_fft frame
    left = int(math.floor(centre - hop_length / 2 + 0.5))
    right = (n_frames - 1) * hop_length + n_fft - left - n_samples
    return left, right


def log_mel(wav: torch.Tensor, *, sample_rate: int, n_fft: int, win_length: int,
            hop_length: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """Natural-log mel spectrogram with the project's frame timing (see the module docstring).

    Args:
        wav: (..., T) float tensor on any device.
        sample_rate, n_fft, win_length, hop_length, n_mels, fmin, fmax: as in `DataConfig`.
    Returns:
        (..., n_mels, ceil(T / hop_length)) ``log(max(mel @ |STFT|, 1e-5))``, wav's dtype
        (computed in float32 for half precision inputs).
    """
    import torch  # imported lazily: dump and synthesis workers never need it
    _check_params(sample_rate, n_fft, win_length, hop_length, fmin, fmax)
    wav = torch.as_tensor(wav)
    out_dtype = wav.dtype if wav.is_floating_point() else torch.float32
    dtype = torch.float64 if wav.dtype == torch.float64 else torch.float32
    lead, T = wav.shape[:-1], wav.shape[-1]
    n_frames = -(-T // hop_length)
    x = wav.reshape(math.prod(lead), T).to(dtype)  # (N, T)
    if n_frames == 0 or x.shape[0] == 0:
        return x.new_zeros(*lead, n_mels, n_frames).to(out_dtype)
    left, right = _frame_padding(T, n_fft, win_length, hop_length)
    x = torch.nn.functional.pad(x, (left, right))  # (N, T') zeros; negative = crop
    fb = _mel_basis(sample_rate, n_fft, n_mels, float(fmin), float(fmax), x.device, dtype)
    window = _window(win_length, x.device, dtype)
    blocks = []
    for f0 in range(0, n_frames, MEL_BLOCK_FRAMES):  # frame j reads x[j*hop : j*hop + n_fft]
        f1 = min(n_frames, f0 + MEL_BLOCK_FRAMES)
        spec = torch.stft(x[:, f0 * hop_length:(f1 - 1) * hop_length + n_fft], n_fft,
                          hop_length=hop_length, win_length=win_length, window=window,
                          center=False, return_complex=True)  # (N, n_fft // 2 + 1, f1 - f0)
        assert spec.shape[-1] == f1 - f0, (spec.shape, f0, f1)
        mel = torch.matmul(fb, spec.abs())  # (N, n_mels, f1 - f0)
        blocks.append(torch.log(torch.clamp(mel, min=LOG_FLOOR)))
    out = blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)  # (N, n_mels, n_frames)
    return out.reshape(*lead, n_mels, n_frames).to(out_dtype)


def log_mel_cfg(wav: torch.Tensor, data_cfg) -> torch.Tensor:
    """`log_mel` with a `speechvq.config.DataConfig`'s parameters. wav (..., T) -> (..., n_mels,
    ceil(T / hop_length))."""
    return log_mel(wav, sample_rate=data_cfg.sample_rate, n_fft=data_cfg.n_fft,
                   win_length=data_cfg.win_length, hop_length=data_cfg.hop_length,
                   n_mels=data_cfg.n_mels, fmin=data_cfg.fmin, fmax=data_cfg.fmax)


def mfcc(wav: torch.Tensor, *, n_mfcc: int = 13, sample_rate: int, n_fft: int, win_length: int,
         hop_length: int, n_mels: int, fmin: float, fmax: float) -> torch.Tensor:
    """MFCCs: orthonormal DCT-II over the mel axis of `log_mel` (same frames).

    Args:
        wav: (..., T); the other arguments as in `log_mel`; n_mfcc <= n_mels.
    Returns:
        (..., n_mfcc, ceil(T / hop_length)).
    """
    import torch  # imported lazily: dump and synthesis workers never need it
    if not 0 < n_mfcc <= n_mels:
        raise ConfigError(f"n_mfcc ({n_mfcc}) must be between 1 and n_mels ({n_mels})")
    lm = log_mel(wav, sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                 hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)  # (..., M, F)
    dct = dct_matrix(n_mfcc, n_mels, lm.device, lm.dtype)  # (n_mfcc, M)
    return torch.matmul(dct, lm)  # (..., n_mfcc, F)


def griffin_lim(logmel: np.ndarray, *, sample_rate: int, n_fft: int, win_length: int,
                hop_length: int, fmin: float, fmax: float, n_iter: int = 32) -> np.ndarray:
    """Invert `log_mel` to a waveform: NNLS mel -> linear magnitude, then Griffin-Lim phase
    recovery (librosa.feature.inverse.mel_to_stft + librosa.griffinlim, fixed random state).

    Args:
        logmel: (n_mels, frames) natural-log mel magnitudes as `log_mel` returns them (a torch
            tensor is moved to the CPU).
        sample_rate, n_fft, win_length, hop_length, fmin, fmax: as given to `log_mel`.
        n_iter: Griffin-Lim iterations.
    Returns:
        (frames * hop_length,) float32 waveform, frame j centred on (j + 0.5) * hop_length.
    """
    import torch  # imported lazily: dump and synthesis workers never need it
    import librosa

    _check_params(sample_rate, n_fft, win_length, hop_length, fmin, fmax)
    if isinstance(logmel, torch.Tensor):
        logmel = logmel.detach().float().cpu().numpy()
    logmel = np.asarray(logmel, dtype=np.float32)
    if logmel.ndim != 2:
        raise ValueError(f"griffin_lim takes one (n_mels, frames) log-mel, got {logmel.shape}")
    frames = logmel.shape[1]
    if frames == 0:
        return np.zeros(0, dtype=np.float32)
    mag = librosa.feature.inverse.mel_to_stft(
        np.exp(logmel), sr=sample_rate, n_fft=n_fft, power=1.0, fmin=fmin, fmax=fmax,
        htk=False, norm="slaney")  # (n_fft // 2 + 1, frames)
    # librosa centres frame j on sample j * hop; ours sit half a hop later.
    shift = int(math.floor(hop_length / 2 + 0.5))
    n_out = frames * hop_length
    with warnings.catch_warnings():  # a clip shorter than one FFT window is fine here
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large")
        y = librosa.griffinlim(mag, n_iter=n_iter, hop_length=hop_length, win_length=win_length,
                               n_fft=n_fft, window="hann", center=True, pad_mode="constant",
                               length=n_out - shift, random_state=0)  # (n_out - shift,)
    return np.concatenate([np.zeros(shift, dtype=np.float32), y.astype(np.float32)])
