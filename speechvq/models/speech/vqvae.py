"""The speech VQ-VAE: encoder -> vector quantiser -> decoder heads, with a learned speaker table.

After van den Oord, Vinyals and Kavukcuoglu, *Neural Discrete Representation Learning* (2017,
arXiv 1711.00937), section 4.3: a waveform is encoded to vectors at the code rate, snapped to the
nearest of K codebook entries (straight-through gradient), and a WaveNet conditioned on the codes
(local conditioning) and on a learned speaker embedding (global conditioning) models the waveform's
8-bit mu-law samples. Decoding the codes of one speaker with another speaker's embedding is voice
conversion. An optional log-mel head (`speechvq.models.speech.decoders.MelDecoder`, weight 0 = the paper's
model) on the same codes trains them faster and gives a Griffin-Lim conversion path.

    model = VQVAE.from_config(cfg, speakers=["p225", "p226"])
    out = model(wav, speaker, lengths)         # VQVAEOutput; out.loss.backward()
    codes = model.eval().encode(wav, 22050)    # (B, ceil(T * 16000 / 22050 / model.hop))
    wav2 = model.decode(codes, speaker="p226", head="mel")   # (B, codes.shape[1] * model.hop)

Loss = wavenet.weight * NLL + VQ loss + mel.weight * L1(log-mel), the NLL in nats per sample
(``bits_per_sample`` = NLL / ln 2), every term averaged over the valid samples or frames only.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechvq import audio
from speechvq.checkpoint import load_model
from speechvq.config import Config
from speechvq.config.speech import code_hop
from speechvq.errors import ConfigError, ModelError
from speechvq.models.speech.decoders import MelDecoder, mel_l1_loss
from speechvq.models.speech.encoders import SpeechEncoder, time_jitter
from speechvq.models.freezing import Freezable
from speechvq.models.quantizer import VectorQuantizer, VQStats
from speechvq.models.speech.wavenet import WaveNet

HEADS = ("wavenet", "mel")  # what `decode` renders with; "auto" picks one (`VQVAE.resolve_head`)


class VQVAEOutput(NamedTuple):
    """What `VQVAE.forward` returns; every field but `stats` is a () float32 tensor."""

    loss: torch.Tensor             # wavenet.weight * nll + vq_loss + mel.weight * mel_loss
    nll: torch.Tensor              # WaveNet NLL in nats per valid sample (0 without a WaveNet)
    bits_per_sample: torch.Tensor  # nll / ln 2
    vq_loss: torch.Tensor          # commitment (+ codebook, gradient update) loss
    mel_loss: torch.Tensor         # L1 log-mel error per band and valid frame (0 without a head)
    stats: VQStats                 # perplexity, codes used, usage counts over the valid frames


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of `module` (buffers such as an EMA codebook excluded).

    Args:
        module: any nn.Module.
        trainable_only: count only parameters with ``requires_grad``.
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def valid_mask(lengths: torch.Tensor, n: int, hop: int = 1) -> torch.Tensor:
    """(B, n) bool: position j is valid when j < ceil(lengths / hop) (lengths in samples)."""
    n_valid = (lengths + hop - 1) // hop  # (B,)
    return torch.arange(n, device=lengths.device)[None, :] < n_valid[:, None]  # (B, n)


class VQVAE(Freezable):
    """Speech VQ-VAE built from a `Config`; see the module docstring.

    Args:
        cfg: the root config (``data`` and ``model`` sections are used).
        speakers: the speaker ids of the training data, in embedding-row order.

    Attributes:
        speakers: list of speaker ids; ``speaker_index(name)`` maps one to its row.
        hop: samples per code; sample_rate: the model's sample rate.
        encoder, quantizer, speaker_embedding; wavenet and mel_decoder (None when the head's
            weight is 0).
    """

    def __init__(self, cfg: Config, speakers: Sequence[str]):
        super().__init__()
        speakers = list(speakers)
        if not speakers:
            raise ModelError("a VQVAE needs at least one speaker; the training data lists none "
                             "(check utt2spk / speakers.txt of the dump)")
        if len(set(speakers)) != len(speakers):
            dup = sorted({s for s in speakers if speakers.count(s) > 1})
            raise ModelError(f"speaker list has duplicates ({', '.join(dup)}); give each once")
        self.cfg = cfg
        self.speakers = speakers
        self.frozen: set[str] = set()
        self.sample_rate = cfg.data.sample_rate
        m, dec = cfg.model, cfg.model.decoder
        self.encoder = SpeechEncoder(m.encoder, m.quantizer.dim, cfg.data)
        self.hop = self.encoder.hop
        assert self.hop == code_hop(cfg)
        self.quantizer = VectorQuantizer.from_config(m.quantizer)
        self.speaker_embedding = nn.Embedding(len(speakers), dec.speaker_dim)
        self.wavenet_weight = dec.wavenet.weight
        self.mel_weight = dec.mel.weight
        self.jitter = m.encoder.jitter
        self.mu_channels = dec.wavenet.quantization_channels
        self.wavenet_window = dec.wavenet.train_window
        self.wavenet_detach = dec.wavenet.detach_codes
        self.mel_params = dict(sample_rate=cfg.data.sample_rate, n_fft=cfg.data.n_fft,
                               win_length=cfg.data.win_length, hop_length=cfg.data.hop_length,
                               fmin=cfg.data.fmin, fmax=cfg.data.fmax)
        self.n_mels = cfg.data.n_mels
        self.wavenet = (WaveNet(dec.wavenet, cond_channels=m.quantizer.dim,
                                speaker_dim=dec.speaker_dim, upsample_factor=self.hop)
                        if dec.wavenet.weight > 0 else None)
        self.mel_decoder = None
        if dec.mel.weight > 0:
            mel_hop = cfg.data.hop_length
            if self.hop % mel_hop:
                raise ConfigError(
                    f"the log-mel head needs the code hop ({self.hop} samples) to be a multiple "
                    f"of data.hop_length ({mel_hop}); set data.hop_length to a divisor of "
                    f"{self.hop}, use strides whose product is a multiple of {mel_hop} (e.g. "
                    f"[2,2,2,2,2,4,5]) or input=logmel, or set model.decoder.mel.weight=0")
            self.mel_decoder = MelDecoder(dec.mel, m.quantizer.dim, dec.speaker_dim,
                                          cfg.data.n_mels, self.hop // mel_hop)

    @classmethod
    def from_config(cls, cfg: Config, speakers: Sequence[str]) -> "VQVAE":
        """Build the model of `cfg` for these speakers (see the class docstring)."""
        return cls(cfg, speakers)

    # ------------------------------------------------------------------------------ freezing

    def init_from_(self, state: dict, source: str) -> list[str]:
        """Copy every tensor of a checkpoint's model state whose name and shape match.

        Returns:
            the names of this model's tensors that were not in the checkpoint (left as they are).
        Raises:
            ModelError: the checkpoint was trained on other speakers, or nothing matches.
        """
        if list(state.get("speakers", [])) != self.speakers:
            raise ModelError(f"train.init_from '{source}' was trained on other speakers than "
                             f"this data's; initialise from a run on the same dump")
        return super().init_from_(state, source)

    # ------------------------------------------------------------------------------ speakers

    def speaker_index(self, name: str) -> int:
        """Row of speaker `name` in the embedding table.

        Raises:
            ModelError: `name` is not a speaker of the training data; the message lists them.
        """
        try:
            return self.speakers.index(name)
        except ValueError:
            shown = self.speakers[:50]
            more = f" and {len(self.speakers) - 50} more" if len(self.speakers) > 50 else ""
            raise ModelError(f"unknown speaker '{name}'; this model knows {len(self.speakers)} "
                             f"speakers: {', '.join(shown)}{more}. Pick one of them (decoding "
                             f"needs a speaker seen in training)") from None

    def speaker_rows(self, speaker, batch: int | None = None) -> torch.Tensor:
        """Embedding rows of `speaker`, given by name or by row, alone or one per item.

        Args:
            speaker: a name (``"p225"``), a row (int), or a sequence / (B,) tensor of either.
            batch: the batch size a sequence must match (None: any).
        Returns:
            () or (B,) int64 rows on the model's device.
        Raises:
            ModelError: an unknown name (listing the known ones), a row out of range, a sequence
                of the wrong length, or something that is neither a name nor a row.
        """
        device = self.speaker_embedding.weight.device
        if isinstance(speaker, str):
            speaker = self.speaker_index(speaker)
        elif not isinstance(speaker, (numbers.Integral, torch.Tensor)):
            try:
                speaker = [self.speaker_index(s) if isinstance(s, str) else s for s in speaker]
            except TypeError:
                speaker = [speaker]  # not a sequence: refused below
        try:
            rows = torch.as_tensor(speaker, device=device)
        except (TypeError, ValueError, RuntimeError):
            rows = None
        if rows is None or rows.dim() > 1 or rows.is_floating_point() or rows.is_complex():
            raise ModelError(f"speaker must be a speaker name (e.g. '{self.speakers[0]}'), an "
                             f"embedding row, or a sequence of them; got {speaker!r:.80}")
        rows = rows.long()
        if rows.dim() == 1 and batch is not None and len(rows) != batch:
            raise ModelError(f"{len(rows)} speakers for a batch of {batch}; give one speaker, "
                             f"or one per item")
        bad = (rows < 0) | (rows >= len(self.speakers))
        if bool(bad.any()):
            raise ModelError(f"speaker index {int(rows[bad].flatten()[0])} is out of range; "
                             f"this model has {len(self.speakers)} speakers (give a name, or "
                             f"use speaker_index(name))")
        return rows

    def _speaker_vectors(self, speaker, batch: int) -> torch.Tensor:
        rows = self.speaker_rows(speaker, batch)
        return self.speaker_embedding(rows.expand(batch) if rows.dim() == 0 else rows)  # (B, S)

    # ------------------------------------------------------------------------------ encode

    @torch.no_grad()
    def encode(self, wav, sample_rate: int | None = None, *, return_vectors: bool = False,
               lengths: torch.Tensor | None = None):
        """Waveform -> codes, without gradients and without touching the codebook state (call
        ``.eval()`` first so dropout is off; `speechvq.load` does).

        Args:
            wav: (T,) or (B, T) float waveform, a tensor or a numpy array.
            sample_rate: its rate in Hz (None: the model's `sample_rate`); another rate is
                resampled (soxr, `speechvq.audio.resample`) first, and `lengths` with it.
            return_vectors: also return the encoder's output z_e.
            lengths: (B,) valid samples (None: all T); only ``utterance_norm`` uses it. Codes at
                or past ceil(length / hop) cover padding; trim them.

        Returns:
            codes (B, Tc) int64 on the model's device [, z_e (B, D, Tc)], with Tc = ceil(T' /
            hop) for the T' samples at the model's rate; (Tc,) [and (D, Tc)] for a (T,) input.
        """
        wav, lengths, single = self._waveforms(wav, sample_rate, lengths)  # (B, T')

        def nearest(z: torch.Tensor) -> torch.Tensor:  # (B, D, t) -> (B, t)
            with torch.autocast(z.device.type, enabled=False):
                flat = z.detach().float().transpose(1, 2).reshape(-1, z.shape[1])  # (B * t, D)
                return self.quantizer.nearest(flat).view(z.shape[0], z.shape[2])

        # in pieces, in bounded memory; z_e is kept whole only when asked for
        if return_vectors:
            z_e = self.encoder.encode_long(wav, lengths)  # (B, D, Tc)
            codes = nearest(z_e)  # (B, Tc)
        else:
            z_e, codes = None, self.encoder.encode_long(wav, lengths, reduce=nearest)
        if single:
            codes, z_e = codes[0], (z_e[0] if z_e is not None else None)  # (Tc,), (D, Tc)
        return (codes, z_e) if return_vectors else codes

    def _waveforms(self, wav, sample_rate: int | None, lengths: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
        """(B, T') float32 on the model's device at its rate, the lengths at that rate, and
        whether the input was one (T,) waveform."""
        device = self.speaker_embedding.weight.device
        x = wav if isinstance(wav, torch.Tensor) else torch.from_numpy(
            np.ascontiguousarray(wav, dtype=np.float32))
        single = x.dim() == 1
        if x.dim() not in (1, 2):
            raise ModelError(f"encode takes a (T,) or (B, T) waveform; got shape "
                             f"{tuple(x.shape)}")
        x = x.reshape(-1, x.shape[-1])  # (B, T)
        rate = self.sample_rate if sample_rate is None else int(sample_rate)
        if rate != self.sample_rate:
            y = audio.resample(x.detach().float().cpu().numpy().T, rate, self.sample_rate)
            x = torch.from_numpy(np.ascontiguousarray(y.T))  # (B, T')
            if lengths is not None:
                lengths = torch.as_tensor(lengths).cpu().double() * self.sample_rate / rate
                lengths = lengths.round().long().clamp_(max=x.shape[1])  # (B,)
        lengths = None if lengths is None else torch.as_tensor(lengths).to(device)
        return x.to(device=device, dtype=torch.float32), lengths, single

    # ------------------------------------------------------------------------------ decode

    def resolve_head(self, head: str = "auto") -> str:
        """``auto``: the WaveNet on CUDA when the model has one, else the mel head when it has
        one, else the WaveNet; other names pass through (`decode` checks them)."""
        if head != "auto":
            return head
        on_gpu = self.speaker_embedding.weight.device.type == "cuda"
        if self.wavenet is not None and (on_gpu or self.mel_decoder is None):
            return "wavenet"
        return "mel"

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, speaker, head: str = "auto", *,
               lengths: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, engine: str | None = None
               ) -> torch.Tensor:
        """Codes + speaker -> waveform at `sample_rate`, through the WaveNet (sampling) or the
        mel head (Griffin-Lim).

        Args:
            codes: (B, Tc) or (Tc,) int64 codes.
            speaker: a name (``"p225"``), an embedding row, or one of either per item (a list
                or a (B,) tensor); see `speaker_rows`.
            head: 'wavenet' (incremental sampling, high quality, slow on CPU), 'mel' (log-mel
                head + Griffin-Lim, fast) or 'auto' (`resolve_head`).
            lengths: (B,) samples to produce per item, at most Tc * hop (None: Tc * hop).
            temperature: WaveNet sampling temperature (1 = the model's distribution).
            generator: torch.Generator for reproducible WaveNet sampling.
            engine: WaveNet sampling engine (`WaveNet.generate`); None = the config's.

        Returns:
            (B, max(lengths)) float32 waveform in [-1, 1] on the model's device, zero past
            each item's length; (T,) for (Tc,) codes.

        Raises:
            ModelError: unknown head or speaker, or a head this model was trained without
                (weight 0).
        """
        head = self.resolve_head(head)
        if head not in HEADS:
            raise ModelError(f"unknown decoder head '{head}'; choose 'wavenet', 'mel' or 'auto'")
        module = self.wavenet if head == "wavenet" else self.mel_decoder
        if module is None:
            key = f"model.decoder.{head}.weight"
            other = "mel" if head == "wavenet" else "wavenet"
            raise ModelError(f"this model has no '{head}' head ({key} was 0 in training); decode "
                             f"with head='{other}', or train one with {key} > 0")
        codes = torch.as_tensor(codes, device=self.speaker_embedding.weight.device)
        if codes.dim() == 1:
            return self.decode(codes[None], speaker, head, temperature=temperature,
                               generator=generator,
                               lengths=None if lengths is None else
                               torch.as_tensor(lengths).reshape(1))[0]  # (T,)
        B, Tc = codes.shape
        device = codes.device
        full = Tc * self.hop
        if lengths is None:
            lengths = torch.full((B,), full, dtype=torch.long, device=device)
        lengths = torch.as_tensor(lengths).to(device=device, dtype=torch.long)
        if bool((lengths > full).any()) or bool((lengths < 0).any()):
            raise ModelError(f"decode lengths must lie in [0, {full}] (= {Tc} codes x hop "
                             f"{self.hop}); got {lengths.tolist()}")
        T = int(lengths.max()) if B else 0
        q = self.quantizer.embed(codes).float()  # (B, D, Tc)
        spk = self._speaker_vectors(speaker, B)  # (B, S)
        out = torch.zeros(B, T, dtype=torch.float32, device=device)  # (B, T)
        if head == "wavenet":
            classes = self.wavenet.generate(q, spk, lengths, temperature=temperature,
                                            generator=generator, engine=engine)  # (B, >= T)
            out = audio.mu_law_decode(classes[:, :T], self.mu_channels).float()  # (B, T)
        else:
            mel = self.mel_decoder(q, spk).float().cpu().numpy()  # (B, n_mels, Tc * up)
            hop = self.mel_params["hop_length"]
            for i, n in enumerate(lengths.tolist()):
                if n == 0:
                    continue
                frames = -(-n // hop)
                y = audio.griffin_lim(mel[i, :, :frames], **self.mel_params)  # (frames * hop,)
                out[i, :n] = torch.from_numpy(y[:n]).to(device=device, dtype=torch.float32)
            out = out.clamp_(-1.0, 1.0)  # as save_audio would; an untrained head can be loud
        return out * valid_mask(lengths, T)  # (B, T)

    # ------------------------------------------------------------------------------ train

    def _quantize(self, z_e: torch.Tensor, mask: torch.Tensor | None):
        """Quantise only the valid frames (so padding moves neither the codebook nor the loss
        nor the statistics); padding frames get zero vectors. Returns (quantized, loss, stats)."""
        if mask is None:
            quantized, _, loss, stats = self.quantizer(z_e, return_stats=True)
            return quantized, loss, stats
        B, D, Tc = z_e.shape
        z_valid = z_e.transpose(1, 2)[mask]  # (N, D)
        q_valid, _, loss, stats = self.quantizer(z_valid.t().unsqueeze(0),
                                                 return_stats=True)  # (1, D, N)
        quantized = z_e.new_zeros(B, Tc, D, dtype=q_valid.dtype)  # (B, Tc, D)
        quantized[mask] = q_valid[0].t()
        return quantized.transpose(1, 2), loss, stats

    def _wavenet_crop(self, wav: torch.Tensor, quantized: torch.Tensor,
                      mask: torch.Tensor | None):
        """A random code-aligned crop of `wavenet_window` samples for the WaveNet's loss (the
        same crop for the whole batch), or everything when the window is 0 or longer.

        The WaveNet's cost is per sample while the codes are learned through every head, so
        training it on part of each window (as WaveNet vocoders train on short excerpts) buys
        more steps per second without changing what the codes see.
        """
        n_codes = quantized.shape[-1]
        want = -(-self.wavenet_window // self.hop) if self.wavenet_window > 0 else n_codes
        if want >= n_codes:
            return wav, quantized, mask
        c0 = int(torch.randint(0, n_codes - want + 1, ()))  # global RNG: checkpointed
        a, b = c0 * self.hop, (c0 + want) * self.hop
        return wav[:, a:b], quantized[:, :, c0:c0 + want], None if mask is None else mask[:, a:b]

    def forward(self, wav: torch.Tensor, speaker: torch.Tensor,
                lengths: torch.Tensor | None = None) -> VQVAEOutput:
        """Training loss of a batch (teacher-forced WaveNet, mel head, VQ loss).

        Args:
            wav: (B, T) float waveform in [-1, 1].
            speaker: (B,) int64 speaker rows.
            lengths: (B,) valid samples per item (None: all T); samples past them are zeroed and
                excluded from every loss term and from the codebook update.

        Returns:
            VQVAEOutput(loss, nll, bits_per_sample, vq_loss, mel_loss, stats).
        """
        B, T = wav.shape
        Tc = -(-T // self.hop)
        t_pad = Tc * self.hop
        code_mask = sample_mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths).to(device=wav.device, dtype=torch.long)
            sample_mask = valid_mask(lengths, t_pad)  # (B, T_pad)
            code_mask = valid_mask(lengths, Tc, self.hop)  # (B, Tc)
        wav = F.pad(wav.float(), (0, t_pad - T))  # (B, T_pad)
        if sample_mask is not None:
            wav = wav * sample_mask
        target = None  # the mel head's target, also the log-mel encoder's input: computed once
        if self.mel_decoder is not None:
            with torch.autocast(wav.device.type, enabled=False):
                target = audio.log_mel(wav, n_mels=self.n_mels, **self.mel_params)  # (B, M, F)
        z_e = self.encoder(wav, lengths, mel=target)  # (B, D, Tc)
        quantized, vq_loss, stats = self._quantize(z_e, code_mask)  # (B, D, Tc)
        quantized = time_jitter(quantized, self.jitter, training=self.training)  # (B, D, Tc)
        spk = self.speaker_embedding(speaker.to(wav.device))  # (B, S)
        zero = torch.zeros((), device=wav.device)
        nll, mel_loss = zero, zero
        if self.wavenet is not None:
            cond = quantized.detach() if self.wavenet_detach else quantized  # (B, D, Tc)
            wn_wav, wn_cond, wn_mask = self._wavenet_crop(wav, cond, sample_mask)
            targets = audio.mu_law_encode(wn_wav, self.mu_channels)  # (B, T_wn)
            logits = self.wavenet(targets, wn_cond, spk)  # (B, out, T_wn)
            nll = self.wavenet.loss(logits, targets, wn_mask).float()
        if self.mel_decoder is not None:
            pred = self.mel_decoder(quantized, spk)  # (B, M, Tc * up)
            frame_mask = (None if lengths is None else
                          valid_mask(lengths, target.shape[-1], self.mel_params["hop_length"]))
            mel_loss = mel_l1_loss(pred, target, frame_mask)
        vq_loss = vq_loss.float()
        loss = self.wavenet_weight * nll + vq_loss + self.mel_weight * mel_loss
        return VQVAEOutput(loss, nll, nll / math.log(2), vq_loss, mel_loss, stats)


def load_vqvae(model: str | os.PathLike, checkpoint: str | None = None,
               device: str | torch.device = "cpu") -> VQVAE:
    """A trained VQVAE in eval mode from an exp dir (``checkpoints/last.pt``) or a ``.pt`` file.

    Args:
        model: exp dir of `speechvq train`, or a checkpoint file.
        checkpoint: another checkpoint name inside the exp dir (``best``, ``step_00001000.pt``).
        device: where to put the model.

    Raises:
        ModelError: no such checkpoint, or it does not hold a speech VQ-VAE.
    """
    return load_model(model, checkpoint, kind="speech", device=device)
