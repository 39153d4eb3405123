"""WaveNet decoder over mu-law classes, conditioned on codes and a speaker, with fast sampling.

The decoder of the VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017, arXiv:1711.00937): a
WaveNet (Oord et al. 2016, arXiv:1609.03499) of causal dilated convolutions with gated
tanh x sigmoid units, residual and skip connections and dilations doubling in repeated cycles.
Local conditioning: the codes are upsampled to the sample rate (a learned transposed convolution,
or nearest repeat + a small convolution) and projected by a 1x1 convolution into every layer's
gate. Global conditioning: the speaker vector is projected and added in every layer's gate. The
output is a softmax over the mu-law classes or a discretized mixture of logistics (`mol.py`).

Training is teacher-forced and parallel: the input at sample t is the class of sample t - 1 (the
silence class ``quantization_channels // 2``, mu-law of 0.0, at t = 0). Generation is
incremental as in fast-wavenet (Paine et al. 2016, arXiv:1611.09482) and r9y9/wavenet_vocoder:
each layer keeps a ring buffer of its last ``(k - 1) * d + 1`` inputs and the weights are cached
as matrices, so one new sample costs O(layers) matrix-vector products, batched over utterances.

    net = WaveNet(cfg.model.decoder.wavenet, cond_channels=64, speaker_dim=64, upsample_factor=64)
    logits = net(targets, codes, speaker)                      # (B, 256, T)
    loss = net.loss(logits, targets)                           # nats per sample
    classes = net.generate(codes, speaker, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from speechvq.progress import tqdm

from speechvq.config.speech import WaveNetConfig
from speechvq.errors import ModelError
from speechvq.models.speech import fast_wavenet
from speechvq.models.speech.mol import mol_nll, mol_sample

NOISE_CHUNK = 1024  # steps of sampling noise drawn at once (fixed, so streams do not depend on T)


def gumbel_noise(noise: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) draws from uniform [0, 1) numbers (clamped off 0 and 1), float32."""
    gumbel = noise.float().clamp(1e-7, 1.0 - 1e-7)  # a new tensor: `noise` is left as it is
    return gumbel.log_().neg_().log_().neg_()  # in place: the same values as -log(-log(u))


class ResidualLayer(nn.Module):
    """One gated layer: dilated causal conv + conditioning -> tanh x sigmoid -> residual, skip.

    ``cond_channels`` 0 = no local conditioning (a prior over codes); ``dropout`` acts on the
    gated units in training only (it adds no parameters).
    """

    def __init__(self, residual: int, gate: int, skip: int, kernel_size: int, dilation: int,
                 cond_channels: int, speaker_dim: int, dropout: float = 0.0):
        super().__init__()
        self.kernel_size, self.dilation, self.dropout = kernel_size, dilation, dropout
        self.conv = nn.Conv1d(residual, gate, kernel_size, dilation=dilation)
        self.cond = nn.Conv1d(cond_channels, gate, 1, bias=False) if cond_channels > 0 else None
        self.speaker = nn.Linear(speaker_dim, gate, bias=False) if speaker_dim > 0 else None
        self.res = nn.Conv1d(gate // 2, residual, 1)
        self.skip = nn.Conv1d(gate // 2, skip, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None,
                speaker: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, R, T), cond (B, C', T), speaker (B, S) -> residual (B, R, T), skip (B, K, T)."""
        pad = (self.kernel_size - 1) * self.dilation
        g = self.conv(F.pad(x, (pad, 0)))  # (B, G, T)
        if self.cond is not None:
            g = g + self.cond(cond)
        if self.speaker is not None:
            g = g + self.speaker(speaker).unsqueeze(-1)  # (B, G, T)
        a, b = g.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)  # (B, G/2, T)
        if self.dropout > 0 and self.training:
            # inverted dropout from a uniform draw: on CPU 3x faster than F.dropout's
            # bernoulli_, which took 15 % of the speech prior's training step
            z = z * (torch.rand_like(z) >= self.dropout) / (1.0 - self.dropout)
        return (x + self.res(z)) * math.sqrt(0.5), self.skip(z)


@dataclass
class WaveNetState:
    """Incremental-generation state: per-layer ring buffers, the step count, cached weights.

    Made by `WaveNet.init_state`; the weights are a snapshot, so make a new state after the
    parameters change.
    """

    buffers: list[torch.Tensor]  # per layer (B, (k-1)*d + 1, R): its last inputs, ring-ordered
    taps: list[torch.Tensor]  # per layer (n, k) int64: buffer slots of the k taps at t % n
    weights: dict[str, object]  # linearised weights (see WaveNet._linearise)
    t: int = 0  # samples produced so far


class WaveNet(nn.Module):
    """Conditional WaveNet over ``quantization_channels`` mu-law classes.

    Args:
        cfg: layers, cycles, kernel size, channel widths, upsampling mode and output head.
        cond_channels: C, channels of the local conditioning (the code vectors); 0 = none (a
            prior over codes, `speechvq.models.prior.causal`: `forward` and `generate` then
            take ``cond`` of shape (B, 0, T)).
        speaker_dim: S, size of the speaker vector (global conditioning); 0 = none.
        upsample_factor: samples per code (the encoder's hop).
        dropout: on every layer's gated units in training; 0 = none (the decoder).
        start_input: one more input embedding, index ``quantization_channels``, fed at t = 0 in
            place of the silence class (a prior's start-of-sequence symbol; the output stays
            ``quantization_channels``-way); False = the silence class starts (the decoder).
    """

    def __init__(self, cfg: WaveNetConfig, cond_channels: int, speaker_dim: int,
                 upsample_factor: int, dropout: float = 0.0, start_input: bool = False):
        super().__init__()
        if cfg.layers % cfg.cycles or cfg.gate_channels % 2:
            raise ModelError(f"WaveNet layers ({cfg.layers}) must be a multiple of cycles "
                             f"({cfg.cycles}) and gate_channels ({cfg.gate_channels}) even; fix "
                             f"model.decoder.wavenet")
        self.cfg = cfg
        self.cond_channels, self.speaker_dim = cond_channels, speaker_dim
        self.upsample_factor = upsample_factor
        self.classes = cfg.quantization_channels
        self.silence = cfg.quantization_channels // 2
        self.start = self.classes if start_input else self.silence  # the input at t = 0
        self.out_channels = self.classes if cfg.output == "softmax" else 3 * cfg.mixtures
        per_cycle = cfg.layers // cfg.cycles
        self.dilations = [2 ** (i % per_cycle) for i in range(cfg.layers)]
        f = upsample_factor
        if cond_channels == 0:
            self.upsampler = None
        elif cfg.upsample == "transposed":
            self.upsampler = nn.ConvTranspose1d(cond_channels, cond_channels, 2 * f, stride=f)
        else:
            self.upsampler = nn.Conv1d(cond_channels, cond_channels, 3, padding=1)
        self.embed = nn.Embedding(self.classes + int(start_input), cfg.residual_channels)
        self.layers = nn.ModuleList(
            ResidualLayer(cfg.residual_channels, cfg.gate_channels, cfg.skip_channels,
                          cfg.kernel_size, d, cond_channels, speaker_dim, dropout)
            for d in self.dilations)
        # The last layer's residual output feeds nothing (only its skip is used): freeze it, so
        # it is not a parameter without gradient (DDP refuses those unless it searches for them).
        self.layers[-1].res.requires_grad_(False)
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(cfg.skip_channels, cfg.skip_channels, 1),
                                  nn.ReLU(), nn.Conv1d(cfg.skip_channels, self.out_channels, 1))
        self.skip_scale = math.sqrt(1.0 / cfg.layers)

    @property
    def receptive_field(self) -> int:
        """Samples of input an output sees: ``sum((k - 1) * d) + 1`` (the last being t - 1)."""
        return sum((self.cfg.kernel_size - 1) * d for d in self.dilations) + 1

    # ---------------------------------------------------------------------------- parallel pass

    def upsample(self, cond: torch.Tensor) -> torch.Tensor:
        """Codes at frame rate -> conditioning at sample rate.

        Code i is centred on samples [i * f, (i + 1) * f): the transposed convolution's window
        of 2f outputs is shifted by f/2, and 'repeat' copies each code f times.

        Args:
            cond: (B, C, Tc).
        Returns:
            (B, C, Tc * upsample_factor).
        """
        if cond.dim() != 3 or cond.shape[1] != self.cond_channels:
            raise ModelError(f"WaveNet conditioning must be (batch, {self.cond_channels}, "
                             f"frames), got {tuple(cond.shape)}")
        f, frames = self.upsample_factor, cond.shape[-1]
        if self.upsampler is None:  # no local conditioning: (B, 0, Tc * f)
            return cond.repeat_interleave(f, dim=-1)
        if self.cfg.upsample == "transposed":
            return self.upsampler(cond)[..., f // 2:f // 2 + frames * f]  # (B, C, Tc * f)
        return self.upsampler(cond.repeat_interleave(f, dim=-1))  # (B, C, Tc * f)

    def _check_speaker(self, speaker: torch.Tensor | None, batch: int) -> None:
        if self.speaker_dim == 0:
            return
        if speaker is None or tuple(speaker.shape) != (batch, self.speaker_dim):
            got = None if speaker is None else tuple(speaker.shape)
            raise ModelError(f"WaveNet speaker vector must be ({batch}, {self.speaker_dim}), "
                             f"got {got}")

    def _cond_for(self, cond: torch.Tensor, length: int) -> torch.Tensor:
        c = self.upsample(cond)  # (B, C, Tc * f)
        if c.shape[-1] < length:
            raise ModelError(f"WaveNet conditioning covers {c.shape[-1]} samples "
                             f"({cond.shape[-1]} codes x {self.upsample_factor}) but {length} "
                             f"were asked for; give ceil(samples / hop) codes")
        return c[..., :length]  # (B, C, T)

    def forward(self, targets: torch.Tensor, cond: torch.Tensor,
                speaker: torch.Tensor | None, first: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Teacher-forced logits: the input at t is ``targets[:, t - 1]`` (`start` at t = 0).

        Args:
            targets: (B, T) int64 mu-law classes.
            cond: (B, C, Tc) codes with ``Tc * upsample_factor >= T``.
            speaker: (B, S) speaker vectors (None when speaker_dim is 0).
            first: (B,) int64 inputs at t = 0 instead of `start` (a window cut from inside a
                sequence: the class before it); None = `start` for all.
        Returns:
            (B, out_channels, T): class logits (softmax) or mixture parameters (mol).
        """
        batch, length = targets.shape
        self._check_speaker(speaker, batch)
        c = self._cond_for(cond, length)  # (B, C, T)
        prev = F.pad(targets[:, :-1], (1, 0), value=self.start)  # (B, T)
        if first is not None:
            prev = torch.cat([first.reshape(batch, 1).to(prev), prev[:, 1:]], dim=1)  # (B, T)
        x = self.embed(prev).transpose(1, 2)  # (B, R, T)
        skip = 0.0
        for layer in self.layers:
            x, s = layer(x, c, speaker)  # (B, R, T), (B, K, T)
            skip = skip + s
        return self.head(skip * self.skip_scale)  # (B, O, T)

    def loss(self, output: torch.Tensor, targets: torch.Tensor,
             mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean negative log-likelihood in nats per sample, computed in float32.

        Args:
            output: (B, out_channels, T) from `forward`.
            targets: (B, T) int64 classes.
            mask: (B, T) bool or 0/1, True where a sample counts (None = all).
        Returns:
            () float32 mean NLL over the counted samples (0 when none count).
        """
        with torch.autocast(device_type=output.device.type, enabled=False):
            if self.cfg.output == "softmax":
                nll = F.cross_entropy(output.float(), targets, reduction="none")  # (B, T)
            else:
                nll = mol_nll(output, targets, self.classes)  # (B, T)
            if mask is None:
                return nll.mean()
            m = mask.to(nll.dtype)  # (B, T)
            return (nll * m).sum() / m.sum().clamp(min=1.0)

    # ------------------------------------------------------------------------ incremental pass

    def _linearise(self) -> dict[str, object]:
        """The weights as matrices for one-sample steps (x @ W), detached."""
        layers = list(self.layers)
        r, g = self.cfg.residual_channels, self.cfg.gate_channels
        w: dict[str, object] = {
            "embed": self.embed.weight.detach(),  # (Q, R)
            # (k, R) tap-major rows: tap j multiplies the input at t - (k - 1 - j) * d.
            "conv": [m.conv.weight.detach().permute(2, 1, 0).reshape(-1, m.conv.out_channels)
                     for m in layers],  # per layer (k * R, G)
            "conv_b": torch.cat([m.conv.bias.detach() for m in layers]),  # (L * G,)
            # (C, L * G); (0, L * G) without local conditioning, so the same products run
            "cond": (torch.cat([m.cond.weight.detach()[:, :, 0] for m in layers]).t()
                     if self.cond_channels else self.embed.weight.new_zeros(0, len(layers) * g)),
            "rs": [torch.cat([m.res.weight.detach()[:, :, 0], m.skip.weight.detach()[:, :, 0]]).t()
                   for m in layers],  # per layer (G/2, R + K)
            "rs_b": [torch.cat([m.res.bias.detach(), m.skip.bias.detach()]) for m in layers],
            "head1": self.head[1].weight.detach()[:, :, 0].t(),  # (K, K)
            "head1_b": self.head[1].bias.detach(),
            "head2": self.head[3].weight.detach()[:, :, 0].t(),  # (K, O)
            "head2_b": self.head[3].bias.detach(),
            "residual": r,
        }
        if self.speaker_dim > 0:
            w["speaker"] = torch.cat([m.speaker.weight.detach() for m in layers]).t()  # (S, L*G)
        return w

    @torch.no_grad()
    def init_state(self, batch: int, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> WaveNetState:
        """Zeroed ring buffers (the causal convolutions' left padding) for `batch` utterances."""
        p = self.embed.weight
        device = p.device if device is None else torch.device(device)
        dtype = p.dtype if dtype is None else dtype
        k, r = self.cfg.kernel_size, self.cfg.residual_channels
        buffers, taps = [], []
        for d in self.dilations:
            n = (k - 1) * d + 1
            buffers.append(torch.zeros(batch, n, r, device=device, dtype=dtype))  # (B, n, R)
            pos = torch.arange(n).unsqueeze(1)  # (n, 1)
            lag = (k - 1 - torch.arange(k)) * d  # (k,)
            taps.append(((pos - lag) % n).to(device))  # (n, k)
        weights = {key: (v.to(device, dtype) if torch.is_tensor(v) else
                         [t.to(device, dtype) for t in v] if isinstance(v, list) else v)
                   for key, v in self._linearise().items()}
        return WaveNetState(buffers, taps, weights)

    def _speaker_bias(self, speaker: torch.Tensor | None, state: WaveNetState,
                      batch: int) -> torch.Tensor:
        """(B, L * G): conv biases plus the speaker's projection into every layer's gate."""
        w = state.weights
        bias = w["conv_b"].expand(batch, -1)  # (B, L * G)
        if self.speaker_dim > 0:
            bias = torch.addmm(bias, speaker.to(bias.dtype), w["speaker"])  # (B, L * G)
        return bias

    def _step(self, prev: torch.Tensor, cond_t: torch.Tensor, bias: torch.Tensor,
              state: WaveNetState) -> torch.Tensor:
        """One sample for all utterances: prev (B,) classes, cond_t (B, C), bias (B, L * G)."""
        w, t = state.weights, state.t
        batch, g = prev.shape[0], self.cfg.gate_channels
        gates = torch.addmm(bias, cond_t.to(bias.dtype), w["cond"])  # (B, L * G)
        x = w["embed"].index_select(0, prev)  # (B, R)
        skip = None
        for i, buf in enumerate(state.buffers):
            buf[:, t % buf.shape[1]] = x  # (B, n, R)
            taps = buf.index_select(1, state.taps[i][t % buf.shape[1]]).reshape(batch, -1)
            x, skip = self._layer_step(w, i, taps, gates[:, i * g:(i + 1) * g], x, skip)
        state.t = t + 1
        return self._head_step(w, skip)

    def _layer_step(self, w: dict, i: int, taps: torch.Tensor, gate: torch.Tensor,
                    x: torch.Tensor, skip: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer i of one step (every engine on PyTorch ops runs this): taps (B, k * R) its
        ring buffer's k inputs, gate (B, G) its conditioning and bias, x (B, R) its input,
        skip (B, K) the skips so far (None before layer 0) -> its output x and the skips."""
        r = w["residual"]
        h = torch.addmm(gate, taps, w["conv"][i])  # (B, G)
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)  # (B, G/2)
        rs = torch.addmm(w["rs_b"][i], z, w["rs"][i])  # (B, R + K)
        x = (x + rs[:, :r]) * math.sqrt(0.5)  # (B, R)
        return x, rs[:, r:] if skip is None else skip + rs[:, r:]  # (B, R), (B, K)

    def _head_step(self, w: dict, skip: torch.Tensor) -> torch.Tensor:
        """The output head of one step: skips (B, K) -> logits (B, O)."""
        h = torch.relu(skip * self.skip_scale)  # (B, K)
        h = torch.relu(torch.addmm(w["head1_b"], h, w["head1"]))  # (B, K)
        return torch.addmm(w["head2_b"], h, w["head2"])  # (B, O)

    @torch.no_grad()
    def step(self, prev: torch.Tensor, cond_t: torch.Tensor, speaker: torch.Tensor | None,
             state: WaveNetState) -> torch.Tensor:
        """Advance every utterance by one sample (teacher forcing or sampling, the caller picks).

        Args:
            prev: (B,) int64 class of the previous sample (`start` at the first step).
            cond_t: (B, C) upsampled conditioning at this sample (``upsample(cond)[:, :, t]``).
            speaker: (B, S) speaker vectors (None when speaker_dim is 0).
            state: from `init_state(B)`; updated in place.
        Returns:
            (B, out_channels) logits of this sample, equal to ``forward(...)[:, :, t]``.
        """
        self._check_speaker(speaker, prev.shape[0])
        bias = self._speaker_bias(speaker, state, prev.shape[0])  # (B, L * G)
        return self._step(prev, cond_t, bias, state)

    def sample(self, logits: torch.Tensor, temperature: float = 1.0,
               noise: torch.Tensor | None = None, gumbel: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Draw classes from one step's output.

        Args:
            logits: (B, out_channels).
            temperature: 0 = most probable class (softmax) or component mean (mol).
            noise: (B, noise_width) uniform [0, 1) numbers; global generator when None.
            gumbel: softmax output only: `gumbel_noise(noise)`, when the caller transformed a
                whole chunk of noise at once (`generate` does, off the per-sample path).
        Returns:
            (B,) int64 classes.
        """
        if self.cfg.output == "mol":
            return mol_sample(logits, self.classes, temperature, noise)
        if temperature == 0:
            return logits.argmax(dim=-1)
        if gumbel is None:
            if noise is None:
                noise = torch.rand(logits.shape, device=logits.device)
            gumbel = gumbel_noise(noise)  # (B, Q)
        return (logits.float() / temperature + gumbel).argmax(dim=-1)  # Gumbel-max

    @property
    def noise_width(self) -> int:
        """Uniform numbers one sampling step uses per utterance."""
        return self.classes if self.cfg.output == "softmax" else self.cfg.mixtures + 1

    @torch.no_grad()
    def generate(self, cond: torch.Tensor, speaker: torch.Tensor | None,
                 lengths: torch.Tensor | None = None, *, temperature: float = 1.0,
                 generator: torch.Generator | None = None, progress: bool = False,
                 engine: str | None = None, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """Sample waveforms (as classes) one sample at a time, all utterances together.

        Args:
            cond: (B, C, Tc) codes; upsampled once up front.
            speaker: (B, S) speaker vectors (None when speaker_dim is 0).
            lengths: (B,) samples to generate per utterance, at most ``Tc * upsample_factor``
                (None = that for all). Samples past an utterance's length are the silence class.
            temperature: >= 0; 0 takes the most probable class at every step.
            generator: seeds the sampling noise (drawn on the generator's device).
            progress: show a tqdm bar.
            engine: 'auto', 'eager', 'fused' or 'fused_bf16' (`fast_wavenet`, CPU) or
                'cuda_graph' (`graph_wavenet`, CUDA; 'cuda-graph' too); None = the config's
                ``engine``. Every engine reads the same noise.
            prompt: (B, P) int64 classes given as the first P samples: fed in, kept in the
                output, the sampling continues after them (None = P is 0).
        Returns:
            (B, max(lengths)) int64 classes.
        """
        batch, _, frames = cond.shape
        full, device = frames * self.upsample_factor, cond.device
        if temperature < 0:
            raise ModelError(f"sampling temperature must be >= 0, got {temperature}")
        if lengths is None:
            lengths = torch.full((batch,), full, dtype=torch.long)
        lengths = torch.as_tensor(lengths, dtype=torch.long).to(device)
        if lengths.shape != (batch,) or bool((lengths < 0).any() | (lengths > full).any()):
            raise ModelError(f"generate lengths must be {batch} values in [0, {full}] ({frames} "
                             f"codes x {self.upsample_factor}), got {lengths.tolist()}")
        self._check_speaker(speaker, batch)
        engine = fast_wavenet.resolve_engine(engine or self.cfg.engine, device)
        steps = int(lengths.max()) if batch else 0
        if steps == 0:
            return torch.full((batch, steps), self.silence, dtype=torch.long, device=device)
        if prompt is not None:
            prompt = torch.as_tensor(prompt, dtype=torch.long).to(device)
            if (prompt.dim() != 2 or prompt.shape[0] != batch or prompt.shape[1] > steps
                    or bool(((prompt < 0) | (prompt >= self.classes)).any())):
                raise ModelError(f"generate prompt must be ({batch}, at most {steps}) classes "
                                 f"in [0, {self.classes}), got {tuple(prompt.shape)}")
        c = self._cond_for(cond, steps).transpose(1, 2).contiguous()  # (B, T, C)
        noise = self._noise(batch, generator, device) if temperature > 0 else None
        if engine == "eager":
            out = self._generate_eager(c, speaker, steps, temperature, noise, progress, prompt)
        elif engine == "cuda_graph":
            from speechvq.models.speech import graph_wavenet  # it imports this module
            out = graph_wavenet.generate(self, c, speaker, steps, temperature, noise, progress,
                                         prompt=prompt)  # (B, T)
        else:
            out = fast_wavenet.generate(self, c, speaker, steps, temperature, noise, progress,
                                        bf16=engine == "fused_bf16", prompt=prompt)  # (B, T)
        past = torch.arange(steps, device=device) >= lengths.unsqueeze(1)  # (B, T)
        return out.masked_fill_(past, self.silence)

    def _noise(self, batch: int, generator: torch.Generator | None,
               device: torch.device) -> Iterator[torch.Tensor]:
        """Sampling noise, NOISE_CHUNK steps at a time: Gumbel (chunk, B, Q) for a softmax,
        uniform (chunk, B, M + 1) for a mixture (see `sample`)."""
        noise_device = generator.device if generator is not None else device
        while True:
            noise = torch.rand(NOISE_CHUNK, batch, self.noise_width, generator=generator,
                               device=noise_device).to(device)  # (chunk, B, W)
            yield gumbel_noise(noise) if self.cfg.output == "softmax" else noise

    def _generate_eager(self, c: torch.Tensor, speaker: torch.Tensor | None, steps: int,
                        temperature: float, noise: Iterator[torch.Tensor] | None,
                        progress: bool, prompt: torch.Tensor | None = None) -> torch.Tensor:
        """The reference loop: `_step` and `sample` per sample. c (B, T, C) -> (B, T) classes;
        the prompt's (B, P) classes are taken instead of drawn (the noise is read all the same)."""
        batch, device = c.shape[0], c.device
        out = torch.full((batch, steps), self.silence, dtype=torch.long, device=device)
        state = self.init_state(batch, device=device, dtype=self.embed.weight.dtype)
        bias = self._speaker_bias(speaker, state, batch)  # (B, L * G)
        prev = torch.full((batch,), self.start, dtype=torch.long, device=device)  # (B,)
        softmax = self.cfg.output == "softmax"
        for t in tqdm(range(steps), disable=not progress, desc="wavenet", unit="sample"):
            if noise is not None and t % NOISE_CHUNK == 0:
                chunk = next(noise)  # (chunk, B, W)
            logits = self._step(prev, c[:, t], bias, state)  # (B, O)
            u = chunk[t % NOISE_CHUNK] if noise is not None else None
            if prompt is not None and t < prompt.shape[1]:
                prev = prompt[:, t]  # (B,)
            else:
                prev = self.sample(logits, temperature, None if softmax else u,
                                   u if softmax else None)  # (B,)
            out[:, t] = prev
        return out
