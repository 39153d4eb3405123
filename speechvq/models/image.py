"""The image VQ-VAE of van den Oord, Vinyals and Kavukcuoglu (2017, arXiv:1711.00937, section 4.2).

Encoder: `downsample` 4x4 convolutions of stride 2 (ReLU between), `residual_blocks` residual
blocks (ReLU, 3x3 conv, ReLU, 1x1 conv), a ReLU and a 1x1 projection to D; so 32x32x3 images
become 8x8xD maps with the paper's two strided layers. The shared `VectorQuantizer` snaps each
of the h x w vectors to one of K codes (the map is flattened to (B, D, h*w) for it). Decoder: a 3x3
convolution from D, the residual blocks, a ReLU and `downsample` 4x4 transposed convolutions of
stride 2 back to the image size. Two outputs:

- ``mse``: C channels, the image itself; loss = MSE / the training set's pixel variance (the
  normalisation of Sonnet's VQ-VAE example, so the reconstruction term does not drown in the
  commitment term whatever the data's contrast) + the VQ loss.
- ``categorical``: 256 logits per subpixel (the paper's decoder), so -log p(x|z) is a real
  number of bits; loss = cross-entropy in nats per subpixel + the VQ loss; the image is the
  argmax.

Pixels come in as uint8 and are scaled here, once: x = pixel / 255 - 0.5, in [-0.5, 0.5].

    vq = ImageVQVAE.from_config(cfg)                      # task: image
    out = vq(images)                                      # images (B, 3, 32, 32) uint8
    out.loss, out.codes.shape                             # (), (B, 8, 8)
    assert torch.equal(vq.decode(vq.encode(images)), vq.reconstruct(images))   # (B, 3, 32, 32)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from speechvq.errors import ModelError
from speechvq.models.freezing import Freezable
from speechvq.models.outputs import BATCH_CODEBOOK, LOSS, VQ_LOSS, Metric, codebook_metrics
from speechvq.models.quantizer import VectorQuantizer, VQStats

__all__ = ["ResidualBlock2d", "ImageEncoder", "ImageDecoder", "ImageVQVAE", "ImageOutput",
           "LEVELS", "MSE", "RECON_LOSS", "BITS_GIVEN_CODES", "TRAINING"]

LEVELS = 256  # values of one uint8 subpixel, the categorical decoder's classes

# What the image step function logs (metrics.jsonl), each name defined once.
RECON_LOSS = Metric("recon_loss", "reconstruction loss (MSE / pixel variance, or nats per "
                    "subpixel)", "lower", legend="MSE / pixel variance, or nats per subpixel")
MSE = Metric("mse", "mean squared error per subpixel (0-255 units)", "lower", fmt=".2f",
             short="MSE", legend="MSE, 0-255 units")
BITS_GIVEN_CODES = Metric("bits_per_dim_given_codes", "-log2 p(x|z) per subpixel (bits)",
                          "lower", fmt=".3f", short="bits/dim given z")
TRAINING = (LOSS, RECON_LOSS, VQ_LOSS, MSE, BITS_GIVEN_CODES, *BATCH_CODEBOOK)


def _conv(dims: int, transposed: bool = False) -> type:
    """nn.Conv2d / nn.Conv3d (or their transposes) for maps of `dims` spatial axes."""
    return {(2, False): nn.Conv2d, (3, False): nn.Conv3d, (2, True): nn.ConvTranspose2d,
            (3, True): nn.ConvTranspose3d}[dims, transposed]


def _strided(time_stride: int | None) -> dict[str, Any]:
    """Kernel, stride and padding of one strided layer: 4x4 of stride 2 in space (the paper's),
    and in time (3-D, `time_stride` not None) 4 of stride 2, or 1 where time keeps its rate (the
    3x3x3 residual blocks mix time; a kernel of 3 there tripled the cost of the costliest layer);
    each maps n to n / stride exactly (and its transpose back)."""
    if time_stride is None:
        return {"kernel_size": 4, "stride": 2, "padding": 1}
    if time_stride == 2:
        return {"kernel_size": 4, "stride": (2, 2, 2), "padding": 1}
    return {"kernel_size": (1, 4, 4), "stride": (1, 2, 2), "padding": (0, 1, 1)}


class ResidualBlock2d(nn.Module):
    """x + conv1x1(relu(conv3x3(relu(x)))), the paper's residual block (3x3x3 when dims=3)."""

    def __init__(self, channels: int, hidden: int, dims: int = 2):
        super().__init__()
        conv = _conv(dims)
        self.net = nn.Sequential(nn.ReLU(), conv(channels, hidden, 3, padding=1), nn.ReLU(),
                                 conv(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, *S) -> (B, C, *S)
        return x + self.net(x)


def _time_strides(downsample: int, time_downsample: int | None) -> list[int | None]:
    """Per strided layer, its stride in time: None for images, else 2 for the first
    `time_downsample` layers and 1 for the others."""
    if time_downsample is None:
        return [None] * downsample
    return [2 if i < time_downsample else 1 for i in range(downsample)]


class ImageEncoder(nn.Sequential):
    """(B, C_in, H, W) -> (B, D, H / 2^downsample, W / 2^downsample); with `time_downsample`
    set, 3-D: (B, C_in, T, H, W) -> (B, D, T / 2^time_downsample, H / 2^downsample, ...)."""

    def __init__(self, in_channels: int, channels: int, residual_blocks: int,
                 residual_channels: int, downsample: int, dim: int,
                 time_downsample: int | None = None):
        dims = 2 if time_downsample is None else 3
        conv = _conv(dims)
        layers: list[nn.Module] = []
        for i, ts in enumerate(_time_strides(downsample, time_downsample)):
            if i:
                layers.append(nn.ReLU())
            layers.append(conv(in_channels if i == 0 else channels, channels, **_strided(ts)))
        layers += [ResidualBlock2d(channels, residual_channels, dims)
                   for _ in range(residual_blocks)]
        layers += [nn.ReLU(), conv(channels, dim, 1)]
        super().__init__(*layers)


class ImageDecoder(nn.Sequential):
    """(B, D, h, w) -> (B, out_channels, h * 2^upsample, w * 2^upsample); with
    `time_upsample` set, 3-D, the time axis multiplied by 2^time_upsample (the last layers)."""

    def __init__(self, dim: int, channels: int, residual_blocks: int, residual_channels: int,
                 upsample: int, out_channels: int, time_upsample: int | None = None):
        dims = 2 if time_upsample is None else 3
        layers: list[nn.Module] = [_conv(dims)(dim, channels, 3, padding=1)]
        layers += [ResidualBlock2d(channels, residual_channels, dims)
                   for _ in range(residual_blocks)]
        strides = _time_strides(upsample, time_upsample)[::-1]  # mirror of the encoder
        for i, ts in enumerate(strides):
            last = i == upsample - 1
            layers += [nn.ReLU(), _conv(dims, transposed=True)(
                channels, out_channels if last else channels, **_strided(ts))]
        super().__init__(*layers)


class ImageOutput(NamedTuple):
    """What `ImageVQVAE.forward` returns."""

    loss: torch.Tensor  # () recon_loss + vq_loss, what is trained
    recon_loss: torch.Tensor  # () MSE / pixel variance, or nats per subpixel (categorical)
    vq_loss: torch.Tensor  # () the quantiser's loss
    mse: torch.Tensor  # () detached, squared error per subpixel in uint8 units (0-255)
    codes: torch.Tensor  # (B, h, w) int64
    stats: VQStats  # codebook health in the batch


class ImageVQVAE(Freezable):
    """Encoder -> VectorQuantizer -> decoder over uint8 images (see the module docstring).

    Args:
        channels: image channels C (1 or 3). hidden: hidden units. residual_blocks,
        residual_channels: the residual stacks. downsample: stride-2 layers each way.
        quantizer: the bottleneck (its ``dim`` is D). output: 'mse' or 'categorical'.

    Buffer ``pixel_variance`` (): variance of the training pixels in [-0.5, 0.5] units, set by
    `set_pixel_variance_` before training (1 until then); it scales the MSE loss only.
    """

    def __init__(self, channels: int, hidden: int, residual_blocks: int, residual_channels: int,
                 downsample: int, quantizer: VectorQuantizer, output: str = "mse", *,
                 time_downsample: int | None = None):
        super().__init__()
        if output not in ("mse", "categorical"):
            raise ModelError(f"image decoder output must be 'mse' or 'categorical', got "
                             f"{output!r}")
        self.channels, self.downsample, self.output = channels, downsample, output
        dim = quantizer.dim
        self.encoder = ImageEncoder(channels, hidden, residual_blocks, residual_channels,
                                    downsample, dim, time_downsample)
        self.quantizer = quantizer
        out = channels * LEVELS if output == "categorical" else channels
        self.decoder = ImageDecoder(dim, hidden, residual_blocks, residual_channels, downsample,
                                    out, time_downsample)
        self.register_buffer("pixel_variance", torch.tensor(1.0))
        self.frozen: set[str] = set()

    @classmethod
    def from_config(cls, cfg: Any) -> "ImageVQVAE":
        """Build from an image root config (`speechvq.config.image`)."""
        m = cfg.model
        return cls(cfg.data.channels, m.channels, m.residual_blocks, m.residual_channels,
                   m.downsample, VectorQuantizer.from_config(m.quantizer), m.output)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def set_pixel_variance_(self, variance: float) -> None:
        """Set the variance that divides the MSE loss (Sonnet's ``data_variance``)."""
        self.pixel_variance.fill_(max(float(variance), 1e-6))

    # ----------------------------------------------------------------------------- pieces

    def _check(self, images: torch.Tensor) -> None:
        factor = 2 ** self.downsample
        if images.dim() != 4 or images.shape[1] != self.channels or images.dtype != torch.uint8 \
                or images.shape[2] % factor or images.shape[3] % factor:
            raise ModelError(f"images must be (B, {self.channels}, H, W) uint8 with H and W "
                             f"multiples of {factor}, got {tuple(images.shape)} {images.dtype}")

    @staticmethod
    def scale(images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> float in [-0.5, 0.5]; same shape."""
        return images.float() / 255.0 - 0.5

    def _quantize(self, x: torch.Tensor):
        z = self.encoder(x)  # (B, D, h, w), or (B, D, t, h, w) for video
        b, d, *grid = z.shape
        q, codes, vq_loss, stats = self.quantizer(z.reshape(b, d, -1), return_stats=True)
        return q.reshape(b, d, *grid), codes.reshape(b, *grid), vq_loss, stats

    def _logits(self, q: torch.Tensor) -> torch.Tensor:
        """Categorical decoder output as (B, 256, C, H, W) logits."""
        out = self.decoder(q)  # (B, C*256, H, W), or (B, C*256, T, H, W) for video
        b, _, *grid = out.shape
        return out.view(b, self.channels, LEVELS, *grid).transpose(1, 2)

    def _pixels(self, q: torch.Tensor) -> torch.Tensor:
        """The decoded image of code vectors `q` (B, D, h, w) as uint8 (B, C, H, W)."""
        if self.output == "categorical":
            return self._logits(q).argmax(1).to(torch.uint8)
        x = self.decoder(q)  # (B, C, H, W) in [-0.5, 0.5] units
        return ((x.float() + 0.5) * 255.0).round().clamp(0, 255).to(torch.uint8)

    # -------------------------------------------------------------------------------- API

    def forward(self, images: torch.Tensor) -> ImageOutput:
        """Loss and codes of a batch of images (B, C, H, W) uint8 (see `ImageOutput`)."""
        self._check(images)
        x = self.scale(images)  # (B, C, H, W)
        q, codes, vq_loss, stats = self._quantize(x)
        if self.output == "categorical":
            logits = self._logits(q)  # (B, 256, C, H, W)
            recon_loss = F.cross_entropy(logits.float(), images.long())
            with torch.no_grad():
                err = logits.argmax(1).float() - images.float()
        else:
            x_hat = self.decoder(q)  # (B, C, H, W)
            recon_loss = F.mse_loss(x_hat.float(), x) / self.pixel_variance
            with torch.no_grad():
                err = ((x_hat.float() + 0.5) * 255.0).clamp(0, 255) - images.float()
        return ImageOutput(recon_loss + vq_loss, recon_loss, vq_loss, (err * err).mean(), codes,
                           stats)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Codes of images (B, C, H, W) uint8; (B, H / 2^downsample, W / 2^downsample) int64."""
        self._check(images)
        return self._quantize(self.scale(images))[1]

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images of codes (B, h, w) int64 as (B, C, h * 2^downsample, w * 2^downsample) uint8."""
        return self._pixels(self.quantizer.embed(codes))  # embed: (B, D, h, w)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """decode(encode(images)) in one pass; (B, C, H, W) uint8."""
        self._check(images)
        return self._pixels(self._quantize(self.scale(images))[0])

    def step_metrics(self, out: ImageOutput) -> dict[str, torch.Tensor]:
        """What the step function logs of `out` (`TRAINING` names), detached; bits/dim given
        the codes only for the categorical decoder."""
        metrics = {RECON_LOSS.name: out.recon_loss, VQ_LOSS.name: out.vq_loss, MSE.name: out.mse,
                   **codebook_metrics(out.stats)}
        if self.output == "categorical":
            metrics[BITS_GIVEN_CODES.name] = out.recon_loss / math.log(2)
        return {k: v.detach() for k, v in metrics.items()}

    @torch.no_grad()
    def nll_bits(self, images: torch.Tensor) -> torch.Tensor:
        """-log2 p(x | z_q(x)) of each image under the categorical decoder; (B,) float64.

        Raises:
            ModelError: the decoder is 'mse' (it has no likelihood over uint8 values).
        """
        if self.output != "categorical":
            raise ModelError("bits/dim needs the categorical decoder (model.output="
                             "categorical); this model was trained with output=mse")
        self._check(images)
        logits = self._logits(self._quantize(self.scale(images))[0]).float()  # (B, 256, C, H, W)
        nats = F.cross_entropy(logits, images.long(), reduction="none")  # (B, C, H, W)
        return nats.double().flatten(1).sum(1) / math.log(2)
