"""The video VQ-VAE: the image VQ-VAE (`speechvq.models.image`, van den Oord et al. 2017, section
4.2) with 3-D convolutions over (T, H, W), as the paper's section 4.4 models DeepMind Lab clips.

The encoder and decoder are `ImageEncoder` / `ImageDecoder` built with ``time_downsample`` (the
same code, 3-D): `downsample` strided layers halve H and W (4x4 kernels), the first
`time_downsample` of them also halve T (kernel 4 in time, else 3 of stride 1); residual blocks
are 3x3x3. The shared `VectorQuantizer` snaps each of the t x h x w latents to one of K codes.
Defaults: 20 x 64 x 64 grey clips -> 10 x 16 x 16 codes (time stride 2, space stride 4), so 10
given frames are 5 latent frames.

    vq = VideoVQVAE.from_config(cfg)                      # task: video
    out = vq(clips)                                       # clips (B, 1, 20, 64, 64) uint8
    out.loss, out.codes.shape                             # (), (B, 10, 16, 16)
    frames = vq.decode(vq.encode(clips))                  # (B, 1, 20, 64, 64) uint8
"""

from __future__ import annotations

from typing import Any

import torch

from speechvq.errors import ModelError
from speechvq.models.image import ImageVQVAE
from speechvq.models.quantizer import VectorQuantizer

__all__ = ["VideoVQVAE"]


class VideoVQVAE(ImageVQVAE):
    """Encoder -> VectorQuantizer -> decoder over uint8 clips (B, C, T, H, W); everything else
    (losses, outputs, `encode` / `decode` / `reconstruct`, `step_metrics`) is `ImageVQVAE`'s,
    with (B, t, h, w) codes.

    Args:
        as `ImageVQVAE`, plus time_downsample: how many strided layers halve time too.
    """

    def __init__(self, channels: int, hidden: int, residual_blocks: int, residual_channels: int,
                 downsample: int, time_downsample: int, quantizer: VectorQuantizer,
                 output: str = "mse"):
        if time_downsample > downsample:
            raise ModelError(f"time_downsample ({time_downsample}) cannot exceed downsample "
                             f"({downsample})")
        super().__init__(channels, hidden, residual_blocks, residual_channels, downsample,
                         quantizer, output, time_downsample=time_downsample)
        self.time_downsample = time_downsample

    @classmethod
    def from_config(cls, cfg: Any) -> "VideoVQVAE":
        """Build from a video root config (`speechvq.config.video`)."""
        m = cfg.model
        return cls(cfg.data.channels, m.channels, m.residual_blocks, m.residual_channels,
                   m.downsample, m.time_downsample, VectorQuantizer.from_config(m.quantizer),
                   m.output)

    @property
    def time_stride(self) -> int:
        """Frames per latent frame."""
        return 2 ** self.time_downsample

    def _check(self, clips: torch.Tensor) -> None:
        space, time = 2 ** self.downsample, self.time_stride
        if clips.dim() != 5 or clips.shape[1] != self.channels or clips.dtype != torch.uint8 \
                or clips.shape[2] % time or clips.shape[3] % space or clips.shape[4] % space:
            raise ModelError(f"clips must be (B, {self.channels}, T, H, W) uint8 with T a "
                             f"multiple of {time} and H, W multiples of {space}, got "
                             f"{tuple(clips.shape)} {clips.dtype}")
