"""The gated PixelCNN over 2-D codes (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves and
Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders", arXiv 1606.05328), the
prior of the image VQ-VAE (van den Oord et al. 2017, section 4.2).

Codes are embedded (K -> C) and go through `layers` gated layers of two stacks:

- the vertical stack, a (k//2 + 1) x k convolution over the rows above and the current row (the
  input padded k//2 rows on top, none below): at row i it sees rows <= i, every column of them;
- the horizontal stack, a 1 x (k//2 + 1) convolution over the current row's columns <= j (the
  first layer's input shifted one column right, so that it sees columns < j only);
- the vertical stack's pre-activation, shifted one row down (row i receives row i - 1's) and
  through a 1x1 convolution, is added to the horizontal one's: the horizontal stack thus sees
  every row above in full, which removes the plain PixelCNN's blind spot;
- each stack's 2C pre-activations (+ a learned class embedding when conditional) pass the gate
  tanh(a) * sigmoid(b); the horizontal stack's output goes through a 1x1 convolution and, after
  the first layer, a residual connection.

A head (ReLU, 1x1, ReLU, 1x1) gives K logits per position. So the logits at (i, j) depend only on
the codes before (i, j) in raster order (tests/test_prior_pixelcnn.py checks every pair).

Sampling (`PixelCNNPrior.sample`) reuses what cannot change: for row i the vertical stack is run
once, on the rows its receptive field reaches (1 + layers * (k//2) rows above i, every column),
and its shifted contributions to row i are kept; then for each column j only the horizontal
stack runs, on row i's columns 0..j (it is causal in the row, so the rest cannot matter), and the
head on position j. Per sample of an H x W grid that is H vertical passes over at most
min(i + 1, 2 + layers * (k//2)) rows x W columns and H * W (W + 1) / 2 horizontal
layer-positions per layer: about (W + 1) / 2 + min(H, 2 + layers * (k//2)) / 2 full forward
passes' work (8x8 grids: about 9 instead of the 64 of recomputing the grid per code).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from speechvq.errors import ModelError
from speechvq.models.prior import draw

__all__ = ["PixelCNNPrior", "GatedLayer"]


def _gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) of the two halves of the channels; (B, 2C, ...) -> (B, C, ...)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row i receives row i - 1 (row 0 zeros); (B, C, H, W) -> same."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """Column j receives column j - 1 (column 0 zeros); (B, C, H, W) -> same."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class GatedLayer(nn.Module):
    """One vertical + horizontal pair of the gated PixelCNN (see the module docstring).

    Args:
        channels: C. kernel_size: k (odd). n_classes: class embeddings (0: none).
        first: the first layer (its horizontal input is shifted: it sees columns < j; no
            residual). dropout: on the horizontal gate's output.
        no_class: one more embedding row, index n_classes: the learnt "no class" (its prior is
            the unconditional model that guided sampling contrasts with).
    """

    def __init__(self, channels: int, kernel_size: int, n_classes: int, first: bool,
                 dropout: float = 0.0, no_class: bool = False):
        super().__init__()
        self.r, self.first = kernel_size // 2, first
        c = channels
        self.v_conv = nn.Conv2d(c, 2 * c, (self.r + 1, kernel_size))
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_conv = nn.Conv2d(c, 2 * c, (1, self.r + 1))
        self.h_out = nn.Conv2d(c, c, 1)
        self.cond = nn.Embedding(n_classes + int(no_class), 4 * c) if n_classes else None
        self.dropout = nn.Dropout(dropout)

    def cond_bias(self, cond: torch.Tensor | None) -> tuple[Any, Any]:
        """(vertical, horizontal) biases (B, 2C, 1, 1) of the classes `cond` (B,), or zeros;
        a class of -1 takes the mean of the class embeddings (no class in particular: what
        guided sampling contrasts with when the prior has no learnt "no class" row)."""
        if self.cond is None:
            return 0.0, 0.0
        rows = torch.where((cond >= 0)[:, None], self.cond(cond.clamp(min=0)),
                           self.cond.weight.mean(0))
        v, h = rows[:, :, None, None].chunk(2, dim=1)
        return v, h

    def vertical(self, v: torch.Tensor, bias: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertical stack on v (B, C, H, W) -> (its output (B, C, H, W), its contribution
        to the horizontal stack (B, 2C, H, W), shifted down: row i from rows < i)."""
        pre = self.v_conv(F.pad(v, (self.r, self.r, self.r, 0)))  # (B, 2C, H, W)
        return _gate(pre + bias), self.v_to_h(_shift_down(pre))

    def horizontal(self, h: torch.Tensor, v2h: torch.Tensor, bias: Any) -> torch.Tensor:
        """The horizontal stack on h (B, C, H, W) given `v2h` (B, 2C, H, W); (B, C, H, W)."""
        x = _shift_right(h) if self.first else h
        pre = self.h_conv(F.pad(x, (self.r, 0, 0, 0))) + v2h + bias  # (B, 2C, H, W)
        out = self.h_out(self.dropout(_gate(pre)))
        return out if self.first else h + out


class PixelCNNPrior(nn.Module):
    """Class-conditional gated PixelCNN over (B, H, W) codes of K values (module docstring).

    Args:
        codebook_size: K. channels: C. layers: gated layers. kernel_size: k (odd).
        n_classes: classes of the conditioning (0: unconditional). dropout: see `GatedLayer`.
        class_dropout: the share of training items whose class is replaced by a learnt "no
            class" (class index n_classes), so that the prior is also the unconditional model
            that guided sampling contrasts with (Ho and Salimans 2022); 0 = no such class, and
            guidance contrasts with the mean class embedding instead.
    """

    def __init__(self, codebook_size: int, channels: int = 64, layers: int = 10,
                 kernel_size: int = 3, n_classes: int = 0, dropout: float = 0.0,
                 class_dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ModelError(f"the gated PixelCNN needs an odd kernel_size, got {kernel_size}")
        self.codebook_size, self.n_classes = codebook_size, n_classes
        self.class_dropout = class_dropout if n_classes else 0.0
        self.no_class = n_classes if self.class_dropout > 0 else -1  # the guided contrast's class
        self.embed = nn.Embedding(codebook_size, channels)
        self.layers = nn.ModuleList(GatedLayer(channels, kernel_size, n_classes, i == 0, dropout,
                                               self.class_dropout > 0) for i in range(layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, codebook_size, 1))
        # rows above i that row i's vertical contributions reach (module docstring)
        self.context_rows = 1 + layers * (kernel_size // 2)

    @property
    def code_embedding(self) -> nn.Embedding:
        """The input embedding whose first K rows embed the codes (`codebook_rows`)."""
        return self.embed

    @classmethod
    def from_config(cls, model_cfg: Any, *, codebook_size: int,
                    n_classes: int) -> "PixelCNNPrior":
        """Build from the prior task's ``model`` section (`speechvq.config.prior`)."""
        return cls(codebook_size, model_cfg.channels, model_cfg.layers, model_cfg.kernel_size,
                   n_classes, model_cfg.dropout, getattr(model_cfg, "class_dropout", 0.0))

    def _inputs(self, codes: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, list]:
        if codes.dim() != 3:
            raise ModelError(f"the PixelCNN prior takes (B, H, W) codes, got "
                             f"{tuple(codes.shape)}")
        if self.n_classes and cond is None:
            raise ModelError("this PixelCNN prior is class-conditional: give the classes (cond)")
        cond = cond if self.n_classes else None
        if cond is not None and self.training and self.class_dropout > 0:
            dropped = torch.rand(cond.shape, device=cond.device) < self.class_dropout
            cond = torch.where(dropped, torch.full_like(cond, self.no_class), cond)
        emb = self.embed(codes).permute(0, 3, 1, 2)  # (B, C, H, W)
        return emb, [layer.cond_bias(cond) for layer in self.layers]

    def _vertical(self, emb: torch.Tensor, biases: list) -> list[torch.Tensor]:
        """Every layer's shifted vertical contribution (B, 2C, H, W) for embedded codes."""
        v, out = emb, []
        for layer, (bv, _) in zip(self.layers, biases):
            v, v2h = layer.vertical(v, bv)
            out.append(v2h)
        return out

    def _horizontal(self, emb: torch.Tensor, v2hs: list, biases: list) -> torch.Tensor:
        h = emb
        for layer, v2h, (_, bh) in zip(self.layers, v2hs, biases):
            h = layer.horizontal(h, v2h, bh)
        return self.head(h)  # (B, K, H, W)

    def forward(self, codes: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, H, W) of codes (B, H, W) int64 given classes `cond` (B,) int64; those
        at (i, j) depend only on codes before (i, j) in raster order."""
        emb, biases = self._inputs(codes, cond)
        return self._horizontal(emb, self._vertical(emb, biases), biases)

    @torch.no_grad()
    def sample(self, n: int, grid: tuple[int, ...], *, cond: torch.Tensor | None = None,
               prompt: torch.Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None, guidance: float = 0.0) -> torch.Tensor:
        """`n` grids of codes, in raster order, reusing what cannot change (module docstring).

        Args:
            grid: (H, W). cond: (n,) classes (required when conditional). prompt: (n, L), the
                first L codes in raster order, kept as given. temperature: 0 = greedy.
            generator: the random draws' generator (None: torch's default).
            guidance: w >= 0; w > 0 draws from (1 + w) l_c - w l_0, l_c the logits given the
                class and l_0 those of the unconditional model (classifier-free guidance, Ho
                and Salimans 2022): the learnt "no class" of a prior trained with
                class_dropout, else the mean class embedding. It sharpens what is particular
                to the class, at twice the cost.
        Returns:
            (n, H, W) int64.
        """
        if len(grid) != 2:
            raise ModelError(f"the PixelCNN prior samples 2-D grids, got grid {tuple(grid)}")
        height, width = map(int, grid)
        device = self.embed.weight.device
        guided = guidance > 0 and self.n_classes > 0
        if guidance < 0 or (guidance > 0 and not self.n_classes):
            raise ModelError(f"guidance must be >= 0 and needs a class-conditional prior, got "
                             f"{guidance} for a prior of {self.n_classes} classes")
        rows = 2 * n if guided else n  # guided: the class's rows, then those of no class
        codes = torch.zeros(rows, height, width, dtype=torch.long, device=device)
        flat = codes.view(rows, -1)
        kept = 0
        if prompt is not None:
            kept = int(prompt.shape[1])
            if prompt.shape[0] != n or kept > height * width:
                raise ModelError(f"prompt must be (n={n}, L <= {height * width}), got "
                                 f"{tuple(prompt.shape)}")
            flat[:, :kept] = prompt.to(device).repeat(rows // n, 1)
        cond = None if cond is None else cond.to(device)
        if guided:
            cond = torch.cat([cond, torch.full_like(cond, self.no_class)])
        for i in range(kept // width, height):
            r0 = max(0, i - self.context_rows)
            emb, biases = self._inputs(codes[:, r0:i + 1], cond)  # (n, C, rows, W)
            v2hs = [v[:, :, -1:] for v in self._vertical(emb, biases)]  # (n, 2C, 1, W) each
            for j in range(width):
                if i * width + j < kept:
                    continue
                row = self.embed(codes[:, i:i + 1, :j + 1]).permute(0, 3, 1, 2)  # (n, C, 1, j+1)
                logits = self._horizontal(row, [v[..., :j + 1] for v in v2hs], biases)[:, :, 0, j]
                if guided:
                    logits = (1 + guidance) * logits[:n] - guidance * logits[n:]
                codes[:, i, j] = draw(logits, temperature, generator).repeat(rows // n)
        return codes[:n]
