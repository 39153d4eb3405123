"""The video task's config sections: ``data`` (the clips the model takes) and ``model`` (the
image VQ-VAE of van den Oord et al. 2017, section 4.2, with 3-D convolutions over (T, H, W); the
paper's section 4.4 models DeepMind Lab clips this way), each checking itself.

    task: video
    data: {image_size: 64, channels: 1, frames: 20, window: 8}
    model: {channels: 64, residual_blocks: 2, downsample: 2, time_downsample: 1, output: mse,
            quantizer: {codebook_size: 512, dim: 64}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speechvq.config.engine import param, section
from speechvq.config.root import QuantizerConfig
from speechvq.errors import ConfigError

#: modules of the video VQ-VAE that ``train.freeze`` may name
FREEZABLE = ("encoder", "quantizer", "decoder")


@dataclass
class VideoDataConfig:
    """The clips: every dump the model trains on or scores must have this shape."""

    image_size: int = param(64, "height = width of the frames in pixels; moving glyphs and "
                            "Moving MNIST: 64", min=1)
    channels: int = param(1, "colour channels: 1 (grey) or 3 (RGB)", choices=(1, 3))
    frames: int = param(20, "frames per clip in the dumps; moving glyphs, Moving MNIST: 20",
                        min=1)
    window: int = param(8, "frames per training window, cut at a random start from each clip "
                        "(the model is fully convolutional, so it scores whole clips after "
                        "training on windows); 0 = the whole clip", min=0)

    @property
    def train_frames(self) -> int:
        """Frames per training window (`window`, or the whole clip)."""
        return self.window or self.frames


@dataclass
class VideoModelConfig:
    """Encoder (strided 4x4 (x4 in time) 3-D convolutions + residual blocks) -> quantiser ->
    decoder (residual blocks + transposed convolutions)."""

    channels: int = param(64, "hidden units of every convolution; the paper's image model: 256",
                          min=1)
    residual_blocks: int = param(2, "residual blocks (ReLU, 3x3x3 conv, ReLU, 1x1x1 conv) in "
                                 "the encoder and in the decoder; paper: 2", min=0)
    residual_channels: int = param(64, "hidden units inside each residual block", min=1)
    downsample: int = param(2, "stride-2 layers in space (and as many transposed ones in the "
                            "decoder): 2 = space stride 4, 64x64 frames -> 16x16 latents", min=1)
    time_downsample: int = param(1, "how many of those layers also halve time: 1 = time stride "
                                 "2, 20 frames -> 10 latent frames; 0 = none", min=0)
    output: str = param("mse", "decoder output: 'mse' or 'categorical' (a 256-way softmax per "
                        "subpixel)", choices=("mse", "categorical"))
    quantizer: QuantizerConfig = section(QuantizerConfig, "the VQ bottleneck")

    @property
    def time_stride(self) -> int:
        """Frames per latent frame."""
        return 2 ** self.time_downsample

    def latent_grid(self, frames: int, image_size: int) -> tuple[int, int, int]:
        """(t, h, w) of the code map of a clip of `frames` frames of `image_size` squares."""
        side = image_size // 2 ** self.downsample
        return frames // self.time_stride, side, side

    def check(self, root: Any) -> None:
        if self.time_downsample > self.downsample:
            raise ConfigError(f"model.time_downsample = {self.time_downsample} is more than "
                              f"model.downsample = {self.downsample}: only the strided layers "
                              f"can halve time; raise downsample or lower time_downsample")
        size, factor = root.data.image_size, 2 ** self.downsample
        if size % factor:
            raise ConfigError(f"data.image_size = {size} is not a multiple of 2^model.downsample "
                              f"= {factor}; the decoder could not give the frame size back: "
                              f"change one of them")
        for key in ("frames", "window"):
            n = getattr(root.data, key)
            if n % self.time_stride:
                raise ConfigError(f"data.{key} = {n} is not a multiple of the time stride "
                                  f"2^model.time_downsample = {self.time_stride}; change one of "
                                  f"them")
        if root.data.window > root.data.frames:
            raise ConfigError(f"data.window = {root.data.window} is longer than the clips "
                              f"(data.frames = {root.data.frames}); lower it (0 = whole clips)")


def check_video(cfg: Any) -> None:
    """Cross-section checks of a video root config that no single section can make."""
    unknown = [m for m in cfg.train.freeze if m not in FREEZABLE]
    if unknown:
        raise ConfigError(f"config key 'train.freeze' names unknown modules "
                          f"({', '.join(unknown)}); the video VQ-VAE has {', '.join(FREEZABLE)}")
