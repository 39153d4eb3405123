"""The speech encoder of the VQ-VAE and time-jitter regularisation of its codes.

After van den Oord, Vinyals and Kavukcuoglu, *Neural Discrete Representation Learning* (2017,
arXiv 1711.00937), section 4.3: strided 1-D convolutions bring the waveform down to the code rate
(paper: six layers of stride 2 and window 4, 64x), residual blocks of dilated convolutions widen the
receptive field, and a 1x1 projection gives the D-dimensional vectors the quantiser snaps to codes.
A log-mel front end (``input: logmel``) replaces the strided convolutions by log-mel frames and one
convolution of stride ``mel_frame_stride``. Time jitter follows Chorowski, Weiss, Bengio and van den
Oord, *Unsupervised speech representation learning using WaveNet autoencoders* (2019,
arXiv 1901.08810), section III-D.

Frame timing (DESIGN.md): code i covers samples [i*hop, (i+1)*hop) and T_codes = ceil(T / hop). The
waveform is right-padded to a multiple of the hop and every layer divides the length exactly, with
its padding split around the window so that each output frame stays centred on the samples it
summarises.

A long recording is encoded in pieces (`SpeechEncoder.encode_long`, the path of
``VQVAE.encode``): each piece of `CHUNK_SAMPLES` carries `SpeechEncoder.context` samples of
audio on each side (the receptive field, in whole hops) and keeps only its own codes, so memory
is bounded by the piece while the codes equal those of encoding the recording at once; where the
model normalises per utterance, the statistics are gathered over the whole recording first.

    enc = SpeechEncoder(EncoderConfig(), out_dim=64, data=DataConfig())
    z_e = enc(wav)                             # (B, T) -> (B, 64, ceil(T / 64))
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from speechvq import audio
from speechvq.config.speech import DataConfig, EncoderConfig

#: samples of each piece `SpeechEncoder.encode_long` encodes at once (16 s at 16 kHz: a few
#: hundred MB of activations for the paper's 512 channels, whatever the recording's length)
CHUNK_SAMPLES = 2**18


def _strided_conv(in_ch: int, out_ch: int, stride: int, kernel_size: int) -> nn.Sequential:
    """A convolution that maps a length L (a multiple of `stride`) to exactly L / stride frames.

    The window is at least the stride (so no input is skipped); the padding, window - stride in
    all, is split around the input (the larger half on the right) so frame j is centred on the
    stride samples [j * stride, (j + 1) * stride).
    """
    k = max(kernel_size, stride)
    pad = k - stride
    return nn.Sequential(nn.ConstantPad1d((pad // 2, pad - pad // 2), 0.0),
                         nn.Conv1d(in_ch, out_ch, k, stride=stride))


class ResidualDilatedBlock(nn.Module):
    """x + W1x1 dropout(relu(W_dil relu(x))): a non-causal dilated convolution of kernel 3.

    Args:
        channels: input and output channels.
        dilation: dilation of the kernel-3 convolution (length-preserving padding).
        dropout: dropout probability before the 1x1 convolution.
    """

    def __init__(self, channels: int, dilation: int, dropout: float = 0.0):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, dilation=dilation, padding=dilation)
        self.proj = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) -> (B, C, T)."""
        h = self.conv(F.relu(x))  # (B, C, T)
        return x + self.proj(self.dropout(F.relu(h)))  # (B, C, T)


class SpeechEncoder(nn.Module):
    """Waveform -> (B, out_dim, ceil(T / hop)) vectors for the quantiser.

    Args:
        cfg: the encoder section (input, strides, kernel_size, channels, dilations,
            mel_frame_stride, utterance_norm, dropout).
        out_dim: D, the quantiser's dimension.
        data: audio and log-mel parameters (sample rate, n_fft, win/hop length, n_mels, fmin/fmax).

    Attributes:
        hop: samples per code (`EncoderConfig.code_hop`): the product of the strides for
            ``wav`` input, ``data.hop_length * mel_frame_stride`` for ``logmel`` input.
    """

    def __init__(self, cfg: EncoderConfig, out_dim: int, data: DataConfig):
        super().__init__()
        self.input = cfg.input
        self.utterance_norm = cfg.utterance_norm
        self.mel_params = dict(sample_rate=data.sample_rate, n_fft=data.n_fft,
                               win_length=data.win_length, hop_length=data.hop_length,
                               n_mels=data.n_mels, fmin=data.fmin, fmax=data.fmax)
        layers: list[nn.Module] = []
        self.hop = cfg.code_hop(data)
        if cfg.input == "wav":
            in_ch = 1
            for stride in cfg.strides:
                layers += [_strided_conv(in_ch, cfg.channels, stride, cfg.kernel_size), nn.ReLU()]
                in_ch = cfg.channels
        elif cfg.input == "logmel":
            layers += [_strided_conv(data.n_mels, cfg.channels, cfg.mel_frame_stride,
                                     cfg.kernel_size), nn.ReLU()]
        else:  # config.py restricts the choices; anything else is a bug
            raise AssertionError(f"unknown encoder input {cfg.input!r}")
        self.front = nn.Sequential(*layers)
        self.blocks = nn.Sequential(*(ResidualDilatedBlock(cfg.channels, d, cfg.dropout)
                                      for d in cfg.dilations))
        self.out = nn.Conv1d(cfg.channels, out_dim, 1)

    def context(self) -> int:
        """Samples on each side of a span that can change the span's codes (an upper bound of
        the receptive field beyond it), rounded up to whole hops plus one."""
        reach, step = 0, 1
        if self.input == "logmel":  # a frame's window reaches at most n_fft samples out
            reach, step = self.mel_params["n_fft"], self.mel_params["hop_length"]
        for layer in self.front:
            conv = next((m for m in layer.modules() if isinstance(m, nn.Conv1d)), None)
            if conv is not None:
                reach += conv.kernel_size[0] * step
                step *= conv.stride[0]
        reach += sum(block.conv.dilation[0] for block in self.blocks) * step
        return (-(-reach // self.hop) + 1) * self.hop

    @torch.no_grad()
    def encode_long(self, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                    chunk: int | None = None,
                    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """`forward` in pieces of `chunk` samples (each with `context` samples on both sides),
        so memory does not grow with the recording; the same z_e as `forward` (a recording no
        longer than a piece and its context goes through `forward` at once).

        Args:
            wav: (B, T) waveform. lengths: (B,) valid samples (None: all T).
            chunk: samples per piece, rounded down to whole hops (at least one); None:
                `CHUNK_SAMPLES`.
            reduce: applied to each piece's z_e (B, D, t) -> (B, ..., t) before the pieces are
                joined on the last axis (the quantiser's nearest codes: z_e is then never held
                whole).
        Returns:
            z_e: (B, out_dim, ceil(T / hop)), or `reduce`'s output joined.
        """
        T, hop, ctx = wav.shape[-1], self.hop, self.context()
        chunk = max(hop, (CHUNK_SAMPLES if chunk is None else chunk) // hop * hop)
        reduce = reduce or (lambda z: z)
        if T <= chunk + 2 * ctx:
            return reduce(self(wav, lengths))
        stats = self._utterance_stats(wav, lengths, chunk, ctx) \
            if self.input == "logmel" and self.utterance_norm else None
        pieces = []
        for a in range(0, T, chunk):
            b, lo = min(a + chunk, T), max(0, a - ctx)
            hi = min(T, b + ctx)
            local = None if lengths is None else (lengths - lo).clamp(0, hi - lo)
            z = self(wav[:, lo:hi], local, stats=stats)  # (B, D, ceil((hi - lo) / hop))
            first = (a - lo) // hop
            pieces.append(reduce(z[..., first:first + -(-(b - a) // hop)]))
        return torch.cat(pieces, dim=-1)  # (B, D, ceil(T / hop))

    def _utterance_stats(self, wav: torch.Tensor, lengths: torch.Tensor | None, chunk: int,
                         ctx: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-utterance, per-band (mean, variance) of the log-mel over the valid frames of the
        whole `wav`, gathered piece by piece in float64 (two passes: mean, then squared
        deviations), as `utterance_normalize` computes them at once."""
        hop_mel, T = self.mel_params["hop_length"], wav.shape[-1]
        t_pad = -(-T // self.hop) * self.hop
        n_frames = t_pad // hop_mel
        n_valid = torch.full((wav.shape[0],), n_frames, device=wav.device) if lengths is None \
            else (lengths.to(wav.device) + hop_mel - 1) // hop_mel  # (B,)
        if lengths is not None:
            wav = _mask(wav[:, None], lengths, 1)[:, 0]
        wav = F.pad(wav, (0, t_pad - T))  # (B, T_pad), as `features` pads

        def pieces():  # (log-mel frames of [a, b), their validity), a and b multiples of the hop
            for a in range(0, t_pad, chunk):
                b, lo = min(a + chunk, t_pad), max(0, a - ctx)
                hi = min(t_pad, b + ctx)
                with torch.autocast(wav.device.type, enabled=False):
                    mel = audio.log_mel(wav[:, lo:hi].float(), **self.mel_params)
                first = (a - lo) // hop_mel
                mel = mel[..., first:first + (b - a) // hop_mel].double()  # (B, M, f)
                frames = torch.arange(a // hop_mel, a // hop_mel + mel.shape[-1],
                                      device=wav.device)
                yield mel, (frames[None, :] < n_valid[:, None]).double().unsqueeze(1)

        count = n_valid.double().clamp_min(1.0)[:, None, None]  # (B, 1, 1)
        mean = sum((m * v).sum(-1, keepdim=True) for m, v in pieces()) / count  # (B, M, 1)
        var = sum((((m - mean) * v) ** 2).sum(-1, keepdim=True) for m, v in pieces()) / count
        return mean, var

    def features(self, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                 mel: torch.Tensor | None = None,
                 stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The input of the first convolution: the padded waveform or its log-mel frames.

        Args:
            wav: (B, T) float waveform.
            lengths: (B,) valid samples per item (None: all T); used by ``utterance_norm``.
            mel: ``logmel`` input only: the log-mel of the padded `wav` when the caller has
                computed it already (the VQ-VAE's mel-head target), so it is not computed twice.
            stats: ``utterance_norm`` only: (mean, variance) of the whole utterance when `wav`
                is a piece of it (`encode_long`); None: computed from `wav`.

        Returns:
            (B, 1, T_pad) for ``wav`` input or (B, n_mels, T_pad / hop_length) for ``logmel``,
            where T_pad = ceil(T / hop) * hop.
        """
        T = wav.shape[-1]
        t_pad = -(-T // self.hop) * self.hop
        wav = F.pad(wav, (0, t_pad - T))  # (B, T_pad)
        if self.input == "wav":
            return wav.unsqueeze(1)  # (B, 1, T_pad)
        with torch.autocast(wav.device.type, enabled=False):
            if mel is None:
                mel = audio.log_mel(wav.float(), **self.mel_params)  # (B, n_mels, F)
            if self.utterance_norm:
                mel = utterance_normalize(mel, lengths, self.mel_params["hop_length"],
                                          stats=stats)
        return mel

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor | None = None,
                mel: torch.Tensor | None = None,
                stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Encode a batch of waveforms.

        Args:
            wav: (B, T) float waveform in [-1, 1].
            lengths: (B,) valid samples per item (None: all T). Every layer's frames past the
                valid ones are zeroed, as a lone utterance's convolution padding is, so codes do
                not depend on the other utterances of a batch; per-utterance normalisation uses
                only valid frames.
            mel, stats: see `features` (ignored for ``wav`` input).

        Returns:
            z_e: (B, out_dim, ceil(T / hop)).
        """
        step = 1 if self.input == "wav" else self.mel_params["hop_length"]  # samples per frame
        if lengths is not None:  # the STFT window near the end would reach past the utterance
            wav = _mask(wav[:, None], lengths, 1)[:, 0]  # (B, T)
        h = _mask(self.features(wav, lengths, mel, stats), lengths, step)  # (B, C_in, T_pad / step)
        for layer in self.front:  # (padded strided conv, ReLU) pairs
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                h = _mask(h, lengths, step)
            else:
                step *= next(m for m in layer.modules() if isinstance(m, nn.Conv1d)).stride[0]
        for block in self.blocks:  # (B, C, Tc)
            h = _mask(block(h), lengths, step)
        z = self.out(F.relu(h))  # (B, D, Tc)
        assert z.shape[-1] == -(-wav.shape[-1] // self.hop)
        return z


def _mask(h: torch.Tensor, lengths: torch.Tensor | None, step: int) -> torch.Tensor:
    """Zero frames at or past ceil(lengths / step) (frames of `step` samples); no-op without
    lengths."""
    if lengths is None:
        return h
    n_valid = (lengths.to(h.device) + step - 1) // step  # (B,)
    keep = torch.arange(h.shape[-1], device=h.device)[None, :] < n_valid[:, None]  # (B, F)
    return h * keep[:, None, :].to(h.dtype)


def utterance_normalize(mel: torch.Tensor, lengths: torch.Tensor | None,
                        hop_length: int, eps: float = 1e-5,
                        stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Per-utterance, per-band mean/variance normalisation over the valid frames.

    Args:
        mel: (B, n_mels, F) log-mel frames.
        lengths: (B,) valid samples per item (None: every frame is valid); frame j is valid when
            j < ceil(length / hop_length).
        hop_length: samples per frame.
        eps: floor of the variance.
        stats: (mean, variance), each (B, n_mels, 1), of the whole utterance when `mel` is a
            piece of it; None: computed here. Moments are taken in float64, so pieces summed
            give the same values as the whole.

    Returns:
        (B, n_mels, F): zero mean, unit variance per band over the valid frames; 0 elsewhere.
    """
    B, _, n_frames = mel.shape
    if lengths is None:
        valid = torch.ones(B, 1, n_frames, dtype=mel.dtype, device=mel.device)  # (B, 1, F)
    else:
        n_valid = (lengths.to(mel.device) + hop_length - 1) // hop_length  # (B,)
        frames = torch.arange(n_frames, device=mel.device)  # (F,)
        valid = (frames[None, :] < n_valid[:, None]).to(mel.dtype).unsqueeze(1)  # (B, 1, F)
    if stats is None:
        x, v = mel.double(), valid.double()
        count = v.sum(-1, keepdim=True).clamp_min(1.0)  # (B, 1, 1)
        mean = (x * v).sum(-1, keepdim=True) / count  # (B, n_mels, 1)
        var = (((x - mean) * v) ** 2).sum(-1, keepdim=True) / count  # (B, n_mels, 1)
        stats = (mean, var)
    mean, var = (s.to(mel.dtype) for s in stats)
    return (mel - mean) * torch.rsqrt(var + eps) * valid  # (B, n_mels, F)


def time_jitter(x: torch.Tensor, p: float, generator: torch.Generator | None = None, *,
                training: bool = True) -> torch.Tensor:
    """Replace each frame by its left or right neighbour with probability p / 2 each.

    Chorowski et al. (2019), section III-D: a regulariser on the code sequence (they use
    p = 0.12). The neighbour is taken from the input, not from already-jittered frames; the first
    and last frames are clamped (the first may only copy its right neighbour, and vice versa).

    Args:
        x: (B, D, T) quantised vectors.
        p: probability that a frame is replaced (0 = identity).
        generator: optional torch.Generator for reproducible draws (on any device).
        training: False returns `x` unchanged (evaluation).

    Returns:
        (B, D, T) with the same dtype and device as `x`.
    """
    if p <= 0 or not training or x.shape[-1] < 2:
        return x
    B, D, T = x.shape
    device = generator.device if generator is not None else x.device
    u = torch.rand(B, T, generator=generator, device=device).to(x.device)  # (B, T)
    shift = (u < p).long() * torch.where(u < p / 2, -1, 1)  # (B, T) in {-1, 0, 1}
    idx = (torch.arange(T, device=x.device) + shift).clamp(0, T - 1)  # (B, T)
    return torch.gather(x, 2, idx.unsqueeze(1).expand(B, D, T))  # (B, D, T)
