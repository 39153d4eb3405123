"""The image task's config sections: ``data`` (the images the model takes) and ``model`` (the
VQ-VAE of van den Oord et al. 2017, section 4.2: the CIFAR-10 encoder and decoder), each checking
itself.

    task: image
    data: {image_size: 32, channels: 3}
    model: {channels: 256, residual_blocks: 2, downsample: 2, output: mse,
            quantizer: {codebook_size: 512, dim: 64}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from speechvq.config.engine import Size, param, section
from speechvq.config.root import QuantizerConfig
from speechvq.errors import ConfigError

#: modules of the image VQ-VAE that ``train.freeze`` may name
FREEZABLE = ("encoder", "quantizer", "decoder")


@dataclass
class ImageDataConfig:
    """The images: every dump the model trains on or scores must have this shape."""

    image_size: int = param(32, "height = width of the images in pixels; CIFAR-10 and the "
                            "built-in images: 32, MNIST: 28", min=1, max=4096)
    channels: int = param(3, "colour channels: 3 (RGB) or 1 (grey, MNIST)", choices=(1, 3))


@dataclass
class ImageModelConfig:
    """Encoder (strided 4x4 convolutions + residual blocks) -> quantiser -> decoder (residual
    blocks + 4x4 transposed convolutions), paper section 4.2."""

    channels: int = param(256, "hidden units of every convolution; paper: 256", min=1,
                         max=8192)
    residual_blocks: int = param(2, "residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv) in the "
                                 "encoder and in the decoder; paper: 2", min=0, max=1024)
    residual_channels: int = param(256, "hidden units inside each residual block; paper: 256",
                                   min=1, max=8192)
    downsample: int = param(2, "stride-2 4x4 convolutions (and as many transposed ones in the "
                            "decoder); paper: 2, so 32x32 images -> 8x8 latents", min=1, max=12)
    output: str = param("mse", "decoder output: 'mse' (a Gaussian of fixed variance, what most "
                        "reimplementations use) or 'categorical' (the paper's 256-way softmax "
                        "per subpixel: a likelihood, so bits/dim)",
                        choices=("mse", "categorical"))
    quantizer: QuantizerConfig = section(QuantizerConfig, "the VQ bottleneck; paper CIFAR-10: "
                                         "K=512, D=64")

    SIZES: ClassVar[tuple[Size, ...]] = (
        Size("the first encoder layer's output of a training batch",
             ("train.batch_size", "data.image_size", "data.image_size", "model.channels")),
    )

    def latent_size(self, image_size: int) -> int:
        """Height = width of the code map of `image_size` images."""
        return image_size // 2 ** self.downsample

    def check(self, root: Any) -> None:
        size, factor = root.data.image_size, 2 ** self.downsample
        if size % factor:
            raise ConfigError(f"data.image_size = {size} is not a multiple of 2^model.downsample "
                              f"= {factor}; the decoder could not give the image size back: "
                              f"change one of them")


def check_image(cfg: Any) -> None:
    """Cross-section checks of an image root config that no single section can make."""
    unknown = [m for m in cfg.train.freeze if m not in FREEZABLE]
    if unknown:
        raise ConfigError(f"config key 'train.freeze' names unknown modules "
                          f"({', '.join(unknown)}); the image VQ-VAE has {', '.join(FREEZABLE)}")
