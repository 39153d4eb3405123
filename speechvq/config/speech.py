"""The speech task's config sections: ``data`` (audio and features) and ``model`` (encoder,
quantiser, decoder heads), each checking itself (`check(root)`), and the migration of keys that
older speechvq versions wrote.

The code hop, the one derived value the rest of speech reads, is defined here once, by the
encoder config that determines it (`EncoderConfig.code_hop`, also `SpeechModelConfig.code_hop`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from speechvq.config.engine import Size, param, section
from speechvq.config.root import QuantizerConfig
from speechvq.errors import ConfigError

#: modules of the speech VQ-VAE that ``train.freeze`` may name
FREEZABLE = ("encoder", "quantizer", "speaker_embedding", "wavenet", "mel_decoder")
MAX_SAMPLE_RATE = 384_000  # Hz: the highest rate audio interfaces record
MAX_CHANNELS = 8192  # hidden channels of any layer (the paper's largest: 512)


@dataclass
class SpeechDataConfig:
    """Audio and features, shared by the dump, the model and the evaluation."""

    sample_rate: int = param(16000, "model sample rate in Hz; paper: 16 kHz", min=1000,
                             max=MAX_SAMPLE_RATE)
    window: int = param(16384, "training window in samples (about 1 s at 16 kHz)", min=1,
                        max=2**24)
    n_fft: int = param(1024, "FFT size of log-mel features (encoder input, mel head, metrics)",
                       min=16, max=2**16)
    win_length: int = param(400, "analysis window of log-mel features in samples (25 ms)", min=1,
                            max=2**16)
    hop_length: int = param(160, "hop of log-mel features in samples (10 ms)", min=1,
                            max=2**16)
    n_mels: int = param(80, "mel bands", min=1, max=1024)
    fmin: float = param(0.0, "lowest mel band edge in Hz", min=0, max=MAX_SAMPLE_RATE / 2)
    fmax: float = param(8000.0, "highest mel band edge in Hz (at most sample_rate / 2)", min=0,
                         max=MAX_SAMPLE_RATE / 2)

    SIZES: ClassVar[tuple[Size, ...]] = (
        Size("the first encoder layer's output of a training batch",
             ("train.batch_size", "data.window", "model.encoder.channels")),
        Size("a WaveNet layer's gate of a training batch",
             ("train.batch_size", "data.window", "model.decoder.wavenet.gate_channels")),
    )

    def check(self, root: Any) -> None:
        if self.fmax > self.sample_rate / 2:
            raise ConfigError(f"config key 'data.fmax' = {self.fmax} is above the Nyquist "
                              f"frequency {self.sample_rate / 2} of data.sample_rate; lower it")
        if self.fmin >= self.fmax:
            raise ConfigError(f"config key 'data.fmin' = {self.fmin} must be below data.fmax = "
                              f"{self.fmax}")
        if self.win_length > self.n_fft:
            raise ConfigError(f"config key 'data.win_length' = {self.win_length} exceeds "
                              f"data.n_fft = {self.n_fft}; raise n_fft or shorten the window")


@dataclass
class EncoderConfig:
    """Speech encoder: strided convolutions (or a log-mel front end), dilated residual blocks,
    then a 1x1 projection to the quantiser's dimension."""

    input: str = param("wav", "encoder input: raw 'wav' samples (paper) or 'logmel' frames",
                       choices=("wav", "logmel"))
    strides: list[int] = param([2, 2, 2, 2, 2, 2], "strides of the downsampling convolutions; "
                               "paper: six of 2 (64x); [2,2,2,2,2,4,5] = 640x = 25 Hz",
                               min=1, max=4096)
    kernel_size: int = param(4, "window of each strided convolution; paper: 4", min=1,
                            max=4096)
    channels: int = param(512, "hidden channels of the encoder (not given by the paper)", min=1,
                         max=MAX_CHANNELS)
    dilations: list[int] = param([1, 2, 4, 8], "one residual block per dilation, kernel 3, "
                                 "widening the receptive field", min=1, max=2**16)
    mel_frame_stride: int = param(2, "logmel input only: frames merged per code (hop x stride "
                                  "= code hop; 2 x 10 ms = 50 Hz)", min=1, max=1024)
    utterance_norm: bool = param(False, "logmel input only: per-utterance mean/variance "
                                 "normalisation (removes speaker level and tilt)")
    jitter: float = param(0.0, "time-jitter probability on the codes (Chorowski et al. 2019 "
                          "use 0.12); 0 = off", min=0.0, max=1.0)
    dropout: float = param(0.0, "dropout inside the residual blocks", min=0.0, max=1.0)

    def code_hop(self, data: "SpeechDataConfig") -> int:
        """Samples per code at ``data.sample_rate``: code i covers samples [i*hop, (i+1)*hop);
        the strides' product, or the log-mel hop times the frames merged per code."""
        if self.input == "logmel":
            return data.hop_length * self.mel_frame_stride
        return math.prod(self.strides)

    def check(self, root: Any) -> None:
        if not self.strides and self.input == "wav":
            raise ConfigError("config key 'model.encoder.strides' is empty; give at least one "
                              "stride, e.g. [2,2,2,2,2,2]")
        if any(s < 1 for s in self.strides) or any(x < 1 for x in self.dilations):
            raise ConfigError("config keys 'model.encoder.strides' and 'model.encoder.dilations' "
                              "must hold positive integers")


@dataclass
class WaveNetConfig:
    """WaveNet decoder over 8-bit mu-law (Oord et al. 2016), conditioned on codes and speaker."""

    weight: float = param(1.0, "weight of the WaveNet's NLL in the total loss; 0 = no WaveNet",
                          min=0.0)
    layers: int = param(30, "dilated layers; WaveNet: 30 (3 cycles of 10)", min=1,
                        max=1024)
    cycles: int = param(3, "dilation cycles; dilations 1, 2, 4, ... restart each cycle", min=1,
                        max=1024)
    kernel_size: int = param(2, "kernel of the causal dilated convolutions; WaveNet: 2", min=2,
                             max=64)
    residual_channels: int = param(256, "residual channels", min=1, max=MAX_CHANNELS)
    gate_channels: int = param(512, "channels before the tanh x sigmoid gate (split in two)",
                               min=2, max=MAX_CHANNELS)
    skip_channels: int = param(256, "skip-connection channels", min=1,
                             max=MAX_CHANNELS)
    upsample: str = param("transposed", "code-to-sample upsampling: learned 'transposed' "
                          "convolution or 'repeat' + convolution",
                          choices=("transposed", "repeat"))
    output: str = param("softmax", "output distribution: 256-way 'softmax' over mu-law (paper) "
                        "or mixture of logistics 'mol'", choices=("softmax", "mol"))
    mixtures: int = param(10, "logistic components when output = 'mol'", min=1, max=1024)
    quantization_channels: int = param(256, "mu-law levels; paper: 8 bits = 256", min=2,
                                       max=2**16)
    train_window: int = param(0, "samples of each training window the WaveNet's loss uses (a "
                              "random code-aligned crop; 0 = the whole window)", min=0,
                              max=2**24)
    detach_codes: bool = param(False, "train the WaveNet on the codes without sending its "
                               "gradient into the encoder (codes learned by the other head)")
    engine: str = param("auto", "sampling engine: 'auto' (fused on CPU where numba imports, "
                        "cuda_graph on CUDA, else eager), 'eager' (PyTorch ops, the reference), "
                        "'fused' (one compiled CPU kernel), 'fused_bf16' (its weights in "
                        "bfloat16), 'cuda_graph' (the step captured once as a CUDA graph)",
                        choices=("auto", "eager", "fused", "fused_bf16", "cuda_graph"))

    def check(self, root: Any) -> None:
        if self.layers % self.cycles:
            raise ConfigError(f"config key 'model.decoder.wavenet.layers' = {self.layers} is not "
                              f"a multiple of model.decoder.wavenet.cycles = {self.cycles}")
        if self.gate_channels % 2:
            raise ConfigError("config key 'model.decoder.wavenet.gate_channels' must be even (it "
                              "is split into the tanh and sigmoid halves)")


@dataclass
class MelHeadConfig:
    """Convolutional log-mel decoder on the same codes: teaches the codes fast and gives a
    Griffin-Lim conversion path (not in the paper)."""

    weight: float = param(0.0, "weight of its L1 log-mel loss; 0 = the paper's pure WaveNet "
                          "model", min=0.0)
    channels: int = param(256, "hidden channels", min=1, max=MAX_CHANNELS)
    layers: int = param(4, "residual convolution layers", min=1, max=1024)
    kernel_size: int = param(5, "kernel of its convolutions", min=1, max=1024)


@dataclass
class DecoderConfig:
    """Decoder heads and the speaker table they share."""

    speaker_dim: int = param(64, "learned speaker embedding size (global conditioning)", min=1,
                            max=MAX_CHANNELS)
    wavenet: WaveNetConfig = section(WaveNetConfig, "the WaveNet head")
    mel: MelHeadConfig = section(MelHeadConfig, "the log-mel head")

    def check(self, root: Any) -> None:
        if self.wavenet.weight == 0 and self.mel.weight == 0:
            raise ConfigError("both decoder heads have weight 0 (model.decoder.wavenet.weight, "
                              "model.decoder.mel.weight); give one of them a positive weight")


@dataclass
class SpeechModelConfig:
    """The VQ-VAE: encoder -> quantiser -> decoder heads."""

    encoder: EncoderConfig = section(EncoderConfig, "the encoder")
    quantizer: QuantizerConfig = section(QuantizerConfig, "the VQ bottleneck")
    decoder: DecoderConfig = section(DecoderConfig, "the decoder heads")

    def code_hop(self, data: SpeechDataConfig) -> int:
        """Samples per code at ``data.sample_rate`` (the encoder's `EncoderConfig.code_hop`)."""
        return self.encoder.code_hop(data)

    def check(self, root: Any) -> None:
        hop = self.code_hop(root.data)
        if self.decoder.mel.weight > 0 and hop % root.data.hop_length:
            raise ConfigError(f"the log-mel head needs the code hop ({hop} samples) to be a "
                              f"multiple of data.hop_length ({root.data.hop_length}); change "
                              f"data.hop_length or model.encoder.strides, or set "
                              f"model.decoder.mel.weight=0")


# the names the speech sections had before tasks, kept for the code that builds parts alone
DataConfig = SpeechDataConfig
ModelConfig = SpeechModelConfig


def code_hop(cfg: Any) -> int:
    """Samples per code of a speech root config (`SpeechModelConfig.code_hop`)."""
    return cfg.model.code_hop(cfg.data)


def check_speech(cfg: Any) -> None:
    """Cross-section checks of a speech root config that no single section can make."""
    unknown = [m for m in cfg.train.freeze if m not in FREEZABLE]
    if unknown:
        raise ConfigError(f"config key 'train.freeze' names unknown modules "
                          f"({', '.join(unknown)}); choose from {', '.join(FREEZABLE)}")


#: keys that older speechvq versions had: dotted key -> where it went (None = removed, unread)
MOVED_KEYS = {
    "data.num_workers": "train.num_workers",
    "data.normalize": None,       # never read: `speechvq dump --normalize` decides
    "eval.batch_size": None,      # never read: the --batch-size of each command decides
    "eval.temperature": None,     # never read: `speechvq convert --temperature` decides
    "eval.abx_max_triplets": None,  # never read: `speechvq evaluate units --abx-triplets`
}


def migrate_speech(tree: dict[str, Any]) -> list[str]:
    """Rewrite a config tree of an older speechvq in place (see `MOVED_KEYS`); one note per
    key changed."""
    notes = []
    for old, new in MOVED_KEYS.items():
        head, key = old.split(".")
        node = tree.get(head)
        if not isinstance(node, dict) or key not in node:
            continue
        value = node.pop(key)
        if not node:
            tree.pop(head)
        if new is None:
            notes.append(f"'{old}' is no longer a config key (nothing read it); ignored")
            continue
        new_head, new_key = new.split(".")
        target = tree.setdefault(new_head, {})
        if isinstance(target, dict) and new_key not in target:
            target[new_key] = value
        notes.append(f"'{old}' is now '{new}'; use the new name")
    return notes
