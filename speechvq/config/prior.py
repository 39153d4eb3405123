"""The prior task's config sections: ``data`` (how the code dump is read) and ``model`` (the
autoregressive prior over the codes; van den Oord et al. 2017, section 4: a PixelCNN over image
codes, a WaveNet over speech codes, a prior causal in time over video codes).

    task: prior
    data: {crop: 256, held_out: 0.1}
    model: {arch: pixelcnn, channels: 64, layers: 10, kernel_size: 3, conditional: true}

``model.arch`` picks the class (`speechvq.models.prior.ARCHS`); every class reads the keys of
`PriorModelConfig` it needs and ignores the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from speechvq.config.engine import param
from speechvq.errors import ConfigError

#: model.arch -> the number of dimensions of the code grids it models
ARCH_DIMS = {"pixelcnn": 2, "wavenet": 1, "video": 3}


@dataclass
class PriorDataConfig:
    """The code dump a prior trains on (`speechvq encode --codes-out`)."""

    crop: int = param(256, "codes per training window of 1-D sequences (speech), drawn at "
                      "seeded random offsets; grids (images, video) are taken whole; paper "
                      "speech: 2.56 s chunks", min=2)
    held_out: float = param(0.1, "fraction of the training items held out (seeded, "
                            "deterministic) for validation / best.pt when no --valid is given, "
                            "and for tuning the bigram baseline's interpolation weight",
                            min=0.0, max=0.5)
    start_share: float = param(0.0, "1-D sequences: share of the training windows that begin "
                               "at their utterance's start (the rest at uniform offsets, which "
                               "begin there too when the utterance is no longer than crop)",
                               min=0.0, max=1.0)


@dataclass
class PriorModelConfig:
    """The autoregressive prior: logits at a code depend only on the codes before it in raster
    order (and on the class or speaker when conditional)."""

    arch: str = param("pixelcnn", "pixelcnn (2-D image codes, gated PixelCNN, arXiv "
                      "1606.05328), wavenet (1-D speech codes, the speech WaveNet's layers) or "
                      "video (3-D codes, causal in time)", choices=tuple(ARCH_DIMS))
    channels: int = param(64, "hidden channels of every layer", min=1)
    layers: int = param(10, "gated layers (pixelcnn: vertical + horizontal stack pairs; "
                        "wavenet: dilated layers)", min=1)
    kernel_size: int = param(3, "convolution size (pixelcnn: odd, the stacks' k x k "
                             "neighbourhood; wavenet: 2)", min=1)
    dilation_cycle: int = param(10, "wavenet: dilations double for this many layers, then "
                                "start again at 1", min=1)
    dropout: float = param(0.0, "dropout on each gated unit's output (training only)",
                           min=0.0, max=0.9)
    embed_init: str = param("random", "how the code embedding starts: random = N(0, 1) rows "
                            "(what every prior before this key was trained with); codebook = "
                            "from the VQ-VAE's codewords (their principal components when they "
                            "are wider than `channels`), so that codes the decoder draws alike "
                            "start alike: what the image prior needs (README 'Priors')",
                            choices=("random", "codebook"))
    class_dropout: float = param(0.0, "pixelcnn: share of the training items whose class is "
                                 "replaced by a learnt 'no class', so the prior is also the "
                                 "unconditional model that --guidance contrasts with "
                                 "(classifier-free guidance); 0 = none (guidance contrasts with "
                                 "the mean class)", min=0.0, max=0.9)
    condition_lr_scale: float = param(1.0, "the learning rate of the class or speaker "
                                      "embeddings as a multiple of train.lr: the class is a "
                                      "small share of what the codes tell, and at 1 its "
                                      "embedding learns it slowly (README 'Priors')",
                                      min=0.0)
    conditional: bool = param(True, "condition on the class (images) or speaker (speech) "
                              "that the code dump records, through a learned embedding in "
                              "every layer")
    start_symbol: bool = param(True, "wavenet: a start-of-sequence input before each "
                               "utterance (an input embedding of K + 1 rows; the output stays "
                               "K-way), from which sampling starts; false = the decoder's "
                               "silence class K // 2 (priors trained before this key)")
    time_layers: int = param(3, "video: causal-in-time 3-D convolutions (kernel time_kernel x 3 "
                             "x 3) that summarise the previous latent frames for each frame's "
                             "PixelCNN", min=1)
    time_kernel: int = param(2, "video: latent frames each of those convolutions looks back "
                             "over (the current input frame included)", min=1)
    within_frame: bool = param(True, "video: a gated PixelCNN of `layers` layers inside each "
                               "latent frame; false = the codes of a frame are predicted "
                               "together from the previous frames alone (sampling takes one "
                               "pass per latent frame, not one per code)")

    def check(self, root: Any) -> None:
        if self.arch in ("pixelcnn", "video") and self.kernel_size % 2 == 0:
            raise ConfigError(f"model.kernel_size = {self.kernel_size}: the gated PixelCNN needs "
                              f"an odd kernel (its stacks are centred on the current column); "
                              f"use 3 or 5")
