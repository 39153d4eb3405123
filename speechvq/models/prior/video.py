"""A prior over video codes, causal in time: a gated PixelCNN over each latent frame conditioned
on the previous latent frames (van den Oord et al. 2017, section 4.4, where a prior over the
latents of DeepMind Lab clips continues a clip from its first frames).

Codes (B, T, H, W) are modelled in raster order over (t, i, j): frame by frame, and row by row,
column by column inside a frame, so

    p(codes) = prod_t prod_(i,j) p(c[t,i,j] | c[<t], c[t, <(i,j)]).

Two parts (chosen over a causal transformer on the flattened codes: on 2 CPU cores the same
number of training steps cost several times more there; README "Video"):

- a **time context**: the code embeddings shifted one latent frame later (frame t sees only
  frames < t), through `time_layers` residual 3-D convolutions that are causal in time (kernel
  `time_kernel` x 3 x 3, padded only on the past side); its output at (t, i, j) summarises the
  previous frames around (i, j);
- a **gated PixelCNN** over each frame (van den Oord et al. 2016, arXiv:1606.05328: the image
  prior's `speechvq.models.prior.pixelcnn.GatedLayer`, vertical and horizontal stacks, so no
  blind spot) whose every layer adds the time context at the same place (and a learned class
  embedding when `n_classes` > 0) inside both gates, the way the paper adds its conditioning.

Sampling runs the time context once per new latent frame and the PixelCNN of that frame once per
code (a frame is H x W steps), batched over clips; `temperature=0` is greedy (argmax).

    prior = VideoPrior.from_config(cfg.model, codebook_size=128, n_classes=0)
    logits = prior(codes)                                   # (B, T, H, W) -> (B, K, T, H, W)
    clips = prior.sample(4, (10, 16, 16), prompt=codes[:4, :5].flatten(1), temperature=0)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechvq.errors import ModelError
from speechvq.models.prior import draw
from speechvq.models.prior.pixelcnn import GatedLayer

__all__ = ["VideoPrior", "TimeContext"]


class TimeContext(nn.Module):
    """Residual 3-D convolutions causal in time over embeddings already shifted one frame late:
    (B, C, T, H, W) -> (B, C, T, H, W), output at frame t from input frames <= t."""

    def __init__(self, channels: int, layers: int, kernel: int):
        super().__init__()
        self.kernel = kernel
        self.convs = nn.ModuleList(nn.Conv3d(channels, channels, (kernel, 3, 3),
                                             padding=(0, 1, 1)) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.relu(F.pad(x, (0, 0, 0, 0, self.kernel - 1, 0))))
        return x


class VideoPrior(nn.Module):
    """Gated PixelCNN per latent frame, conditioned on the previous latent frames (module
    docstring). Causal in raster order over (t, i, j).

    Args:
        codebook_size: K. channels: C of every layer. layers: gated PixelCNN layers per frame.
        kernel_size: their k (odd). time_layers, time_kernel: the time context's depth and
        its kernel in time (latent frames). dropout: on each gate's output.
        n_classes: class-conditional when > 0 (``cond`` (B,) int64 then).
        within_frame: False drops the PixelCNN: the codes of frame t are predicted together
            from frames < t (still causal in raster order, a weaker model inside the frame),
            and sampling takes one pass per latent frame instead of one per code.
    """

    def __init__(self, codebook_size: int, channels: int = 64, layers: int = 4,
                 kernel_size: int = 3, time_layers: int = 3, time_kernel: int = 2,
                 dropout: float = 0.0, n_classes: int = 0, within_frame: bool = True):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ModelError(f"the video prior's PixelCNN needs an odd kernel_size, got "
                             f"{kernel_size}")
        self.codebook_size, self.n_classes = codebook_size, n_classes
        self.embed = nn.Embedding(codebook_size, channels)
        self.start = nn.Parameter(torch.zeros(channels))  # what frame 0 sees as its past
        self.time = TimeContext(channels, time_layers, time_kernel)
        layers = layers if within_frame else 0
        # per layer: the vertical and the horizontal gate's biases from the time context
        self.to_bias = nn.Conv3d(channels, 4 * channels * layers, 1) if layers else None
        width = 4 * channels * layers if layers else channels
        self.class_embed = nn.Embedding(n_classes, width) if n_classes else None
        self.layers = nn.ModuleList(GatedLayer(channels, kernel_size, 0, i == 0, dropout)
                                    for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, codebook_size, 1))
        self.context_rows = 1 + layers * (kernel_size // 2)  # rows above i that reach row i

    @property
    def code_embedding(self) -> nn.Embedding:
        """The input embedding whose first K rows embed the codes (`codebook_rows`)."""
        return self.embed

    @classmethod
    def from_config(cls, model_cfg: Any, *, codebook_size: int, n_classes: int) -> "VideoPrior":
        """Build from the prior task's ``model`` section (`speechvq.config.prior`: channels,
        layers, kernel_size, time_layers, time_kernel, dropout); n_classes: 0 = unconditional."""
        return cls(codebook_size, model_cfg.channels, model_cfg.layers, model_cfg.kernel_size,
                   model_cfg.time_layers, model_cfg.time_kernel, model_cfg.dropout, n_classes,
                   model_cfg.within_frame)

    # ------------------------------------------------------------------------------ pieces

    def _check(self, codes: torch.Tensor) -> None:
        if codes.dim() != 4 or codes.dtype != torch.long:
            raise ModelError(f"the video prior takes (B, T, H, W) int64 codes, got "
                             f"{tuple(codes.shape)} {codes.dtype}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ModelError(f"codes must lie in [0, {self.codebook_size}) for this prior; got "
                             f"[{int(codes.min())}, {int(codes.max())}] (another VQ-VAE's?)")

    def _context(self, codes: torch.Tensor) -> torch.Tensor:
        """The time context: at frame t a summary of frames < t; (B, C, T, H, W)."""
        b, t, h, w = codes.shape
        e = self.embed(codes).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
        start = self.start.view(1, -1, 1, 1, 1).expand(b, -1, 1, h, w)
        return self.time(torch.cat([start, e[:, :, :-1]], dim=2))  # frame t sees frames < t

    def _biases(self, codes: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Each layer's gate biases from the previous frames (and the class):
        (B, T, L, 2, 2C, H, W) (2: vertical, horizontal); without the PixelCNN the context
        itself, (B, T, C, H, W)."""
        b, t, h, w = codes.shape
        bias = self._context(codes)
        if self.to_bias is not None:
            bias = self.to_bias(bias)  # (B, L*4C, T, H, W)
        if self.class_embed is not None:
            if cond is None:
                raise ModelError("this video prior is class-conditional: give cond (B,) ids")
            bias = bias + self.class_embed(cond)[:, :, None, None, None]
        if not self.layers:
            return bias.transpose(1, 2)
        return bias.view(b, len(self.layers), 2, -1, t, h, w).permute(0, 4, 1, 2, 3, 5, 6)

    def _vertical(self, emb: torch.Tensor, biases: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's shifted vertical contribution (N, 2C, h, w); emb (N, C, h, w), biases
        (N, L, 2, 2C, h, w)."""
        v, out = emb, []
        for k, layer in enumerate(self.layers):
            v, v2h = layer.vertical(v, biases[:, k, 0])
            out.append(v2h)
        return out

    def _horizontal(self, emb: torch.Tensor, v2hs: list, biases: torch.Tensor) -> torch.Tensor:
        h = emb
        for k, (layer, v2h) in enumerate(zip(self.layers, v2hs)):
            h = layer.horizontal(h, v2h, biases[:, k, 1])
        return self.head(h)  # (N, K, h, w)

    # --------------------------------------------------------------------------------- API

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every code given the codes before it in raster order over (t, i, j).

        Args:
            codes: (B, T, H, W) int64. cond: (B,) class ids of a class-conditional prior.
        Returns:
            (B, K, T, H, W) float logits.
        """
        self._check(codes)
        b, t, h, w = codes.shape
        biases = self._biases(codes, cond).flatten(0, 1)  # (B*T, L, 2, 2C, H, W)
        if not self.layers:  # (B*T, C, H, W): the context alone
            return self.head(biases).view(b, t, -1, h, w).transpose(1, 2)
        emb = self.embed(codes.reshape(b * t, h, w)).permute(0, 3, 1, 2)  # (B*T, C, H, W)
        logits = self._horizontal(emb, self._vertical(emb, biases), biases)  # (B*T, K, H, W)
        return logits.view(b, t, -1, h, w).transpose(1, 2)

    @torch.no_grad()
    def sample(self, n: int, grid: tuple[int, ...], *, cond: torch.Tensor | None = None,
               prompt: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw `n` code clips of shape `grid` = (T, H, W), code by code in raster order.

        The time context runs once per latent frame; within a frame, as the image PixelCNN
        samples, the vertical stacks run once per row (on the rows that reach it) and only the
        horizontal stacks and the head once per code, on the row's columns so far.

        Args:
            n: clips. grid: (T, H, W). cond: (n,) class ids (class-conditional priors).
            prompt: (n, L) the first L codes in raster order (e.g. the given latent frames,
                flattened), kept as they are. temperature: softmax temperature; 0 = greedy.
            generator: the random draws (None: torch's global one).
        Returns:
            (n, T, H, W) int64 codes.
        """
        if len(grid) != 3:
            raise ModelError(f"the video prior samples (T, H, W) grids, got {tuple(grid)}")
        t_len, height, width = map(int, grid)
        per_frame, total = height * width, t_len * height * width
        dev = self.embed.weight.device
        clip = torch.zeros(n, t_len, height, width, dtype=torch.long, device=dev)
        flat = clip.view(n, -1)
        kept = 0
        if prompt is not None:
            kept = int(prompt.shape[1])
            if prompt.dim() != 2 or prompt.shape[0] != n or kept > total:
                raise ModelError(f"prompt must be (n={n}, L <= {total}) codes, got "
                                 f"{tuple(prompt.shape)}")
            flat[:, :kept] = prompt.to(dev)
        cond = None if cond is None else cond.to(dev)
        for t in range(kept // per_frame, t_len):
            biases = self._biases(clip, cond)[:, t]  # (n, L, 2, 2C, H, W); frames < t known
            if not self.layers:  # one pass for the whole frame
                picks = draw(self.head(biases).permute(0, 2, 3, 1).reshape(-1, self.codebook_size),
                             temperature, generator).view(n, height, width)
                free = torch.arange(per_frame, device=dev) + t * per_frame >= kept  # (H*W,)
                clip[:, t].view(n, -1)[:, free] = picks.view(n, -1)[:, free]
                continue
            first_row = max(0, kept - t * per_frame) // width
            for i in range(first_row, height):
                r0 = max(0, i - self.context_rows)
                emb = self.embed(clip[:, t, r0:i + 1]).permute(0, 3, 1, 2)  # (n, C, rows, W)
                v2hs = [v[:, :, -1:] for v in self._vertical(emb, biases[..., r0:i + 1, :])]
                row_bias = biases[..., i:i + 1, :]  # (n, L, 2, 2C, 1, W)
                for j in range(width):
                    if (t * height + i) * width + j < kept:
                        continue
                    row = self.embed(clip[:, t, i:i + 1, :j + 1]).permute(0, 3, 1, 2)
                    logits = self._horizontal(row, [v[..., :j + 1] for v in v2hs],
                                              row_bias[..., :j + 1])  # (n, K, 1, j + 1)
                    clip[:, t, i, j] = draw(logits[:, :, 0, j], temperature, generator)
        return clip

