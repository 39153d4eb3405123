"""A causal prior over 1-D speech codes: the VQ-VAE's WaveNet stack without local conditioning.

The second stage of the VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017, arXiv:1711.00937,
sec. 4.3: a WaveNet-style prior over the speech codes): p(z) = prod_t p(z_t | z_<t), computed by
the decoder's own `WaveNet` (gated dilated causal convolutions, residual and skip connections)
with its mu-law classes replaced by the K codes and no local conditioning (``cond_channels`` 0),
so training is teacher-forced and parallel and generation is incremental with the decoder's
per-layer ring buffers and engines (the eager reference loop, or the fused CPU kernel of
`speechvq.models.speech.fast_wavenet`). Optional global conditioning on the speaker, as the
decoder's: a learned speaker embedding added in every layer's gate.

The input at t is code t - 1; at t = 0 it is a start-of-sequence symbol, the input embedding's
row K (K + 1 inputs, K outputs), as fairseq's unit language models and WaveNet priors begin an
utterance: a window cut from inside an utterance begins with the code before it (``first``),
one at an utterance's start with the symbol, and sampling from scratch starts from it, so the
first codes drawn are those that begin an utterance (its leading silence), not those of any
window. Priors trained before the symbol existed (``model.start_symbol: false``) start from the
decoder's "silence" class K // 2 instead, which the zero left padding of every layer tells
apart from a code K // 2 met later.

    prior = CausalPrior.from_config(cfg.model, codebook_size=128, n_classes=0)
    logits = prior(codes)                                   # (B, K, T), causal
    codes = prior.sample(16, (250,), temperature=1.0, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from speechvq.config.speech import WaveNetConfig
from speechvq.errors import ConfigError, ModelError
from speechvq.models.speech.wavenet import WaveNet


def wavenet_config(model_cfg: Any, codebook_size: int) -> WaveNetConfig:
    """The WaveNet settings of a prior section: K classes, ``channels`` wide, dilations doubling
    over ``dilation_cycle`` layers and restarting."""
    layers, cycle = int(model_cfg.layers), int(model_cfg.dilation_cycle)
    if cycle < 1 or layers % cycle:
        raise ConfigError(f"config key 'model.layers' = {layers} must be a multiple of "
                          f"model.dilation_cycle = {cycle} for the wavenet prior")
    ch = int(model_cfg.channels)
    return WaveNetConfig(layers=layers, cycles=layers // cycle,
                         kernel_size=int(model_cfg.kernel_size), residual_channels=ch,
                         gate_channels=2 * ch, skip_channels=ch,
                         quantization_channels=codebook_size, output="softmax", engine=str(getattr(model_cfg, "engine", "auto")))


class CausalPrior(nn.Module):
    """Autoregressive prior over (B, T) codes in [0, K), optionally speaker-conditioned.

    Args:
        cfg: the WaveNet's settings (`wavenet_config`).
        n_classes: speakers for global conditioning; 0 = unconditional.
        dropout: on the gated units in training.
        start_symbol: the input at t = 0 is the start symbol K (else the class K // 2).
    """

    def __init__(self, cfg: WaveNetConfig, n_classes: int = 0, dropout: float = 0.0,
                 start_symbol: bool = True):
        super().__init__()
        self.codebook_size, self.n_classes = cfg.quantization_channels, n_classes
        self.start_symbol = start_symbol
        dim = cfg.residual_channels if n_classes > 0 else 0
        self.speaker = nn.Embedding(n_classes, dim) if n_classes > 0 else None
        self.net = WaveNet(cfg, cond_channels=0, speaker_dim=dim, upsample_factor=1,
                           dropout=dropout, start_input=start_symbol)

    @property
    def code_embedding(self) -> nn.Embedding:
        """The input embedding whose first K rows embed the codes (`codebook_rows`)."""
        return self.net.embed

    @classmethod
    def from_config(cls, model_cfg: Any, *, codebook_size: int, n_classes: int) -> "CausalPrior":
        """From the prior's model section (arch, channels, layers, kernel_size, dilation_cycle,
        dropout, conditional, start_symbol); n_classes = speakers (used only when
        ``conditional``)."""
        n = n_classes if bool(model_cfg.conditional) else 0
        if bool(model_cfg.conditional) and n_classes < 1:
            raise ConfigError("config key 'model.conditional' is true but the code dump names no "
                              "speakers; set model.conditional=false")
        return cls(wavenet_config(model_cfg, codebook_size), n, float(model_cfg.dropout),
                   bool(getattr(model_cfg, "start_symbol", True)))

    @property
    def receptive_field(self) -> int:
        """Codes an output sees (the last being t - 1)."""
        return self.net.receptive_field

    def _speaker(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if self.speaker is None:
            return None
        if cond is None:
            raise ModelError("this prior is speaker-conditioned: give cond (speaker indices)")
        cond = torch.as_tensor(cond, dtype=torch.long, device=self.speaker.weight.device)
        cond = cond.expand(batch) if cond.dim() == 0 else cond.reshape(-1)
        if cond.shape != (batch,) or bool(((cond < 0) | (cond >= self.n_classes)).any()):
            raise ModelError(f"prior cond must be {batch} speaker indices in [0, "
                             f"{self.n_classes}), got {cond.tolist()}")
        return self.speaker(cond)  # (B, S)

    def _check_codes(self, codes: torch.Tensor, what: str) -> None:
        if codes.dim() != 2:
            raise ModelError(f"prior {what} must be (batch, time) codes, got "
                             f"{tuple(codes.shape)}")
        if codes.numel() and bool(((codes < 0) | (codes >= self.codebook_size)).any()):
            raise ModelError(f"prior {what} must lie in [0, {self.codebook_size}); the code "
                             f"dump's K differs from the prior's")

    def _nothing(self, batch: int, device) -> torch.Tensor:
        return torch.zeros(batch, 0, 1, device=device)  # (B, 0, 1): no local conditioning

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None,
                first: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits: (B, T) codes -> (B, K, T), position t seeing codes[:, :t].

        Args:
            codes: (B, T). cond: (B,) speaker indices when speaker-conditioned.
            first: (B,) the input at t = 0 of each row: the code before a window cut from inside
                an utterance, or K (`start`) for one that starts it; None = `start` for all.
        """
        self._check_codes(codes, "codes")
        batch, length = codes.shape
        if first is not None:
            first = torch.as_tensor(first, dtype=torch.long, device=codes.device)
            top = self.codebook_size + int(self.start_symbol)
            if first.shape != (batch,) or bool(((first < 0) | (first >= top)).any()):
                raise ModelError(f"prior first inputs must be {batch} values in [0, {top}), "
                                 f"got {first.tolist()}")
        nothing = self._nothing(batch, codes.device).expand(-1, -1, length)  # (B, 0, T)
        return self.net(codes, nothing, self._speaker(cond, batch), first)

    @property
    def start(self) -> int:
        """The input at t = 0 of a sequence from its start: K, or K // 2 without a symbol."""
        return self.net.start

    def nll(self, logits: torch.Tensor, codes: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean NLL in nats per counted code (`WaveNet.loss`)."""
        return self.net.loss(logits, codes, mask)

    @torch.no_grad()
    def sample(self, n: int, grid: tuple[int], *, cond: torch.Tensor | None = None,
               prompt: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, engine: str | None = None,
               progress: bool = False) -> torch.Tensor:
        """Draw n code sequences of length grid[0], incrementally, all together.

        Args:
            n: sequences. grid: (T,).
            cond: (n,) speaker indices (or one for all) when speaker-conditioned.
            prompt: (n, L) codes kept as the first L (a continuation), L <= T.
            temperature: >= 0; 0 = the most probable code at every step.
            generator: seeds the draws (the same generator gives the same codes on every engine).
            engine: the WaveNet's sampling engine (None = the config's, 'auto').
        Returns:
            (n, T) int64 codes.
        """
        if len(grid) != 1 or int(grid[0]) < 0:
            raise ModelError(f"a speech prior samples a 1-D grid (T,), got {tuple(grid)}")
        steps, device = int(grid[0]), self.net.embed.weight.device
        if prompt is not None:
            prompt = torch.as_tensor(prompt, dtype=torch.long, device=device)
            self._check_codes(prompt, "prompt")
        was_training = self.training
        self.eval()
        try:
            nothing = self._nothing(n, device).expand(-1, -1, steps)  # (n, 0, T)
            return self.net.generate(nothing, self._speaker(cond, n), temperature=temperature,
                                     generator=generator, engine=engine, prompt=prompt,
                                     progress=progress)
        finally:
            self.train(was_training)

