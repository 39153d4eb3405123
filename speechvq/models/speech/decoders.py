"""The speech log-mel decoder head: codes + speaker -> log-mel frames.

Not in van den Oord et al. (2017, arXiv 1711.00937), whose decoder is a WaveNet alone. A small
convolutional head on the same quantised vectors, conditioned on the same learned speaker vector,
predicts the log-mel spectrogram (`speechvq.audio.log_mel`) of the input; its L1 loss, added with
``model.decoder.mel.weight``, teaches the codes much faster than the WaveNet's NLL does, and its
output inverted by Griffin-Lim (`speechvq.audio.griffin_lim`, Griffin and Lim 1984) is the fast
conversion path. The layout follows the convolutional mel decoders of Tacotron-2's postnet and of
the VQ-VAE voice-conversion systems of the ZeroSpeech 2019/2020 challenges (e.g. van Niekerk,
Nortje and Kamper 2020, arXiv 2005.09409): 1x1 in, nearest-neighbour upsampling to the mel frame
rate, residual convolutions with the speaker added at every layer, 1x1 out.

    head = MelDecoder(MelHeadConfig(), in_dim=64, speaker_dim=64, n_mels=80, upsample=4)
    mel = head(quantized, speaker_vec)         # (B, 64, Tc), (B, 64) -> (B, 80, 4 * Tc)
    loss = mel_l1_loss(mel, target, mask)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechvq.config.speech import MelHeadConfig


class MelDecoder(nn.Module):
    """Convolutional log-mel head on the quantised codes, speaker-conditioned.

    Args:
        cfg: the mel head section (channels, layers, kernel_size; weight is used by the VQVAE).
        in_dim: D, channels of the quantised vectors.
        speaker_dim: size of the speaker vector.
        n_mels: mel bands of the output.
        upsample: mel frames per code (code hop / mel hop, an integer).
    """

    def __init__(self, cfg: MelHeadConfig, in_dim: int, speaker_dim: int, n_mels: int,
                 upsample: int):
        super().__init__()
        if upsample < 1:
            raise AssertionError(f"upsample must be a positive integer, got {upsample}")
        self.upsample = upsample
        self.n_mels = n_mels
        c, k = cfg.channels, cfg.kernel_size
        self.inp = nn.Conv1d(in_dim, c, 1)
        self.speaker = nn.ModuleList(nn.Linear(speaker_dim, c) for _ in range(cfg.layers))
        self.convs = nn.ModuleList(nn.Conv1d(c, c, k) for _ in range(cfg.layers))
        self.pad = ((k - 1) // 2, k - 1 - (k - 1) // 2)  # length-preserving, non-causal
        self.out = nn.Conv1d(c, n_mels, 1)

    def forward(self, quantized: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """Predict log-mel frames.

        Args:
            quantized: (B, D, Tc) quantised vectors (or `VectorQuantizer.embed` of codes).
            speaker: (B, S) speaker vectors.

        Returns:
            (B, n_mels, Tc * upsample) natural-log mel magnitudes, frame j from code
            j // upsample (the frame centres fall inside that code's samples).
        """
        x = self.inp(quantized)  # (B, C, Tc)
        x = torch.repeat_interleave(x, self.upsample, dim=-1)  # (B, C, Tc * up)
        for proj, conv in zip(self.speaker, self.convs):
            h = F.relu(x + proj(speaker).unsqueeze(-1))  # (B, C, T)
            x = x + conv(F.pad(h, self.pad))  # (B, C, T)
        return self.out(F.relu(x))  # (B, n_mels, T)


def mel_l1_loss(pred: torch.Tensor, target: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error between log-mel spectrograms over the valid frames, in float32.

    Args:
        pred: (B, n_mels, F) predicted log-mel.
        target: (B, n_mels, F') reference log-mel, F' <= F (pred is cropped to F').
        mask: (B, F') bool, True on valid frames (None: all valid).

    Returns:
        () mean |pred - target| per band and valid frame.
    """
    pred = pred[..., : target.shape[-1]].float()  # (B, n_mels, F')
    err = (pred - target.float()).abs()  # (B, n_mels, F')
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype).unsqueeze(1)  # (B, 1, F')
    return (err * m).sum() / (m.sum() * err.shape[1]).clamp_min(1.0)
