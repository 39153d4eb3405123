"""Vector-quantisation bottleneck of the VQ-VAE, for 1-D, 2-D and 3-D feature maps.

After van den Oord, Vinyals and Kavukcuoglu, *Neural Discrete Representation Learning* (NeurIPS
2017, arXiv:1711.00937): section 3.1 (nearest-code quantisation, straight-through gradient,
codebook and commitment losses) and appendix A.1 (exponential-moving-average codebook updates).
The API follows lucidrains/vector-quantize-pytorch::

    vq = VectorQuantizer(dim=64, codebook_size=512)        # EMA codebook, beta = 0.25
    quantized, codes, loss = vq(z)                         # z (B, 64, T) -> (B, 64, T), (B, T), ()
    quantized, codes, loss, stats = vq(z, return_stats=True)   # + perplexity, codes used, usage
    assert torch.equal(vq.eval().embed(codes), vq(z)[0])   # embed is the exact inverse in eval

Updates (codebook, EMA state, dead-code counters, k-means initialisation) happen only in training
mode; all of that state lives in parameters and buffers, so ``state_dict`` resumes exactly.
Distances and codebook arithmetic run in float32 with autocast off; ``quantized`` comes back in
the input's dtype. Under ``torch.distributed`` every training forward performs collectives (like
SyncBatchNorm), so all ranks must call it the same number of times; the codebook then stays
identical on every rank and equals a single-process run on the concatenated batch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from speechvq.config.root import QuantizerConfig
from speechvq.errors import ConfigError, ModelError

__all__ = ["VQStats", "VectorQuantizer"]


class VQStats(NamedTuple):
    """Codebook health in one batch (summed over all ranks in distributed training mode)."""

    perplexity: torch.Tensor  # () exp(entropy of code usage in the batch)
    codes_used: torch.Tensor  # () int64, distinct codes in the batch
    usage: torch.Tensor  # (K,) int64 counts in the batch


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum `t` in place over all ranks (a no-op outside torch.distributed)."""
    if _distributed():
        dist.all_reduce(t)
    return t


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with an EMA or gradient-trained codebook.

    Args:
        dim: D, size of each code vector and of the input's channel axis.
        codebook_size: K, number of codes.
        channel_dim: axis of the input that holds D (1 for (B, D, ...), -1 for (B, ..., D)).
        update: 'ema' (appendix A.1; loss = beta * commitment) or 'gradient' (section 3.1;
            loss = ||sg[z] - e||^2 + beta ||z - sg[e]||^2, both as means over elements).
        beta: commitment cost; paper 0.25.
        decay: EMA decay gamma; paper 0.99.
        epsilon: Laplace smoothing of the EMA counts.
        restart_after: re-seed codes unused for this many consecutive training steps from
            random rows of the current batch; 0 = never.
        kmeans_init: replace the random codebook by k-means on the first training batch.
        kmeans_iters: Lloyd iterations of that k-means.
        chunk_size: rows per distance matmul; the largest intermediate is chunk_size x K.

    State: ``codebook`` (K, D) (a Parameter for 'gradient', a buffer for 'ema'); for 'ema' the
    buffers ``ema_count`` (K,) N and ``ema_sum`` (K, D) m, starting at N = 1, m = codebook;
    ``initialised`` () (set by the first training step, after k-means when asked for) and
    ``unused_steps`` (K,) training steps since each code was last used (always counted).
    """

    def __init__(self, dim: int, codebook_size: int, *, channel_dim: int = 1, update: str = "ema",
                 beta: float = 0.25, decay: float = 0.99, epsilon: float = 1e-5,
                 restart_after: int = 0, kmeans_init: bool = False, kmeans_iters: int = 10,
                 chunk_size: int = 8192) -> None:
        super().__init__()
        if update not in ("ema", "gradient"):
            raise ConfigError(f"quantizer update must be 'ema' or 'gradient', got {update!r}; "
                              f"fix model.quantizer.update")
        if dim < 1 or codebook_size < 1 or chunk_size < 1:
            raise ConfigError(f"quantizer dim ({dim}), codebook_size ({codebook_size}) and "
                              f"chunk_size ({chunk_size}) must be positive")
        self.dim, self.codebook_size, self.channel_dim = dim, codebook_size, channel_dim
        self.update, self.beta, self.decay, self.epsilon = update, beta, decay, epsilon
        self.restart_after, self.chunk_size = restart_after, chunk_size
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        init = torch.randn(codebook_size, dim)  # (K, D), unit normal as Sonnet's VQ-EMA
        if update == "gradient":
            self.codebook = nn.Parameter(init)  # (K, D)
        else:
            self.register_buffer("codebook", init)  # (K, D) = ema_sum / smoothed ema_count
            self.register_buffer("ema_count", torch.ones(codebook_size))  # (K,) N
            self.register_buffer("ema_sum", init.clone())  # (K, D) m
        self.register_buffer("initialised", torch.tensor(False))  # () k-means done / first step
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))  # (K,)

    @classmethod
    def from_config(cls, cfg: QuantizerConfig, channel_dim: int = 1) -> "VectorQuantizer":
        """Build from a `speechvq.config.QuantizerConfig`."""
        return cls(cfg.dim, cfg.codebook_size, channel_dim=channel_dim, update=cfg.update,
                   beta=cfg.beta, decay=cfg.decay, epsilon=cfg.epsilon,
                   restart_after=cfg.restart_after, kmeans_init=cfg.kmeans_init,
                   kmeans_iters=cfg.kmeans_iters, chunk_size=cfg.chunk_size)

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, codebook_size={self.codebook_size}, update={self.update!r}, "
                f"beta={self.beta}, decay={self.decay}, restart_after={self.restart_after}")

    # ----------------------------------------------------------------------------- quantising

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared L2) of every row, chunked over rows.

        argmin_k ||z||^2 - 2 z.e_k + ||e_k||^2, computed in float32 as one addmm per chunk; the
        ||z||^2 term is the same for every k and is left out of the argmin. No intermediate is
        larger than (chunk_size, K), and no (N, K, D) tensor is ever formed.

        Args:
            flat: (N, D) vectors, any float dtype.
        Returns:
            (N,) int64 code indices.
        """
        with torch.autocast(device_type=flat.device.type, enabled=False):
            e = self.codebook.detach().float()  # (K, D)
            e_sq = (e * e).sum(1)  # (K,)
            codes = torch.empty(flat.shape[0], dtype=torch.long, device=flat.device)  # (N,)
            for start in range(0, flat.shape[0], self.chunk_size):
                x = flat[start:start + self.chunk_size].float()  # (c, D)
                d = torch.addmm(e_sq, x, e.t(), alpha=-2.0)  # (c, K) ||e||^2 - 2 x.e
                codes[start:start + x.shape[0]] = d.argmin(1)  # (c,)
        return codes

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """Code vectors of `codes`, channels at `channel_dim`: the exact inverse in eval mode.

        Args:
            codes: (B, ...) int64 code indices in [0, K).
        Returns:
            (B, D, ...) float32 (D inserted at `channel_dim`).
        """
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ModelError(f"codes must lie in [0, {self.codebook_size}) for this quantiser; "
                             f"got values in [{int(codes.min())}, {int(codes.max())}] (were they "
                             f"made by a model with another codebook_size?)")
        vectors = F.embedding(codes, self.codebook)  # (B, ..., D)
        return vectors.movedim(-1, self.channel_dim)  # (B, D, ...)

    def forward(self, z: torch.Tensor, return_stats: bool = False):
        """Quantise `z`; in training mode also update the codebook and its health counters.

        Args:
            z: (B, D, ...) encoder output with D at `channel_dim` (1-D, 2-D or 3-D maps).
            return_stats: also return a `VQStats`.
        Returns:
            quantized: z's shape and dtype; its value is the code vectors, its gradient passes
                straight through to z.
            codes: z's shape without the channel axis, int64.
            loss: () float32, the VQ loss (commitment, plus the codebook loss for 'gradient').
            stats: `VQStats`, only with `return_stats`.
        """
        if z.dim() < 2 or z.shape[self.channel_dim] != self.dim:
            raise ModelError(f"quantiser input of shape {tuple(z.shape)} must have {self.dim} "
                             f"channels at axis {self.channel_dim}; match the encoder's output "
                             f"dimension to model.quantizer.dim")
        with torch.autocast(device_type=z.device.type, enabled=False):
            z_last = z.movedim(self.channel_dim, -1)  # (B, ..., D)
            flat = z_last.reshape(-1, self.dim).float()  # (N, D)
            # (reading `initialised` syncs with the GPU: only done when k-means may be due)
            if self.training and self.kmeans_init and not bool(self.initialised):
                self._kmeans_init_(flat.detach())
            if self.training:
                self.initialised.fill_(True)
            codes = self.nearest(flat)  # (N,)
            q = F.embedding(codes, self.codebook.float())  # (N, D), carries the codebook grad
            commitment = F.mse_loss(flat, q.detach())
            loss = self.beta * commitment
            if self.update == "gradient":
                loss = loss + F.mse_loss(flat.detach(), q)
            usage = torch.bincount(codes, minlength=self.codebook_size)  # (K,)
            if self.training:
                _all_reduce_(usage)
                with torch.no_grad():
                    if self.update == "ema":
                        self._ema_update_(flat.detach(), codes, usage)
                    self.unused_steps.add_(1).masked_fill_(usage > 0, 0)
                    if self.restart_after > 0:
                        self.restart_dead_codes_(flat.detach())
            q = q.detach().view(z_last.shape).movedim(-1, self.channel_dim).to(z.dtype)  # z shape
            quantized = q + (z - z.detach())  # exact value q, gradient 1 to z (straight-through)
            codes = codes.view(z_last.shape[:-1])  # (B, ...)
            if not return_stats:
                return quantized, codes, loss
            probs = usage.float() / usage.sum().clamp(min=1)  # (K,)
            entropy = -(probs * probs.clamp(min=1e-10).log()).sum()
            stats = VQStats(entropy.exp(), (usage > 0).sum(), usage)
        return quantized, codes, loss, stats

    # ------------------------------------------------------------------------- state updates

    @torch.no_grad()
    def _ema_update_(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """Appendix A.1: N <- g N + (1-g) n, m <- g m + (1-g) sum z, e = m / smoothed N.

        `counts` (K,) are already summed over ranks; the per-code sums are summed here.
        """
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat)  # (K, D)
        _all_reduce_(sums)
        g = self.decay
        self.ema_count.mul_(g).add_(counts.float(), alpha=1 - g)  # (K,)
        self.ema_sum.mul_(g).add_(sums, alpha=1 - g)  # (K, D)
        self.codebook.copy_(self.ema_sum / self._smoothed_count().unsqueeze(1))  # (K, D)

    def _smoothed_count(self) -> torch.Tensor:
        """Laplace smoothing N_i = (N_i + eps) / (n + K eps) * n with n = sum_i N_i; (K,)."""
        n = self.ema_count.sum()
        return (self.ema_count + self.epsilon) / (n + self.codebook_size * self.epsilon) * n

    @torch.no_grad()
    def _pick_rows(self, flat: torch.Tensor, count: int) -> torch.Tensor | None:
        """`count` random rows of the batch over all ranks, the same on every rank.

        Rank 0 draws indices into the concatenation of all ranks' rows (distinct rows when there
        are enough) with torch's global generator and broadcasts them; each rank fills the rows
        it holds and a sum over ranks assembles them. Outside torch.distributed this is
        `flat[torch.randperm(N)[:count]]`. Returns (count, D) float32, or None if no rows.
        """
        sizes = torch.tensor([flat.shape[0]], device=flat.device)  # (1,)
        offset, total = 0, flat.shape[0]
        if _distributed():
            gathered = [torch.zeros_like(sizes) for _ in range(dist.get_world_size())]
            dist.all_gather(gathered, sizes)
            all_sizes = [int(s) for s in gathered]
            offset, total = sum(all_sizes[:dist.get_rank()]), sum(all_sizes)
        if total == 0:
            return None
        if total >= count:
            index = torch.randperm(total)[:count]  # (count,)
        else:
            index = torch.randint(total, (count,))  # (count,) some rows repeat
        index = index.to(flat.device)
        if not _distributed():
            return flat[index].float()  # (count, D)
        dist.broadcast(index, src=0)
        local = index - offset  # (count,)
        mine = (local >= 0) & (local < flat.shape[0])  # (count,)
        rows = torch.zeros(count, self.dim, device=flat.device)  # (count, D)
        rows[mine] = flat[local[mine]].float()
        return _all_reduce_(rows)

    @torch.no_grad()
    def _kmeans_init_(self, flat: torch.Tensor) -> None:
        """k-means (Lloyd) on the batch over all ranks: seeds picked on rank 0 and broadcast,
        per-cluster sums and counts summed over ranks, so every rank gets the same centroids."""
        centroids = self._pick_rows(flat, self.codebook_size)  # (K, D)
        if centroids is None:
            return
        self.codebook.copy_(centroids)
        for _ in range(self.kmeans_iters):
            codes = self.nearest(flat)  # (N,)
            counts = _all_reduce_(torch.bincount(codes, minlength=self.codebook_size))  # (K,)
            sums = _all_reduce_(torch.zeros_like(centroids).index_add_(0, codes, flat))  # (K, D)
            filled = counts > 0  # (K,) empty clusters keep their centroid
            centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).float()
            self.codebook.copy_(centroids)
        if self.update == "ema":
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(centroids)

    @torch.no_grad()
    def restart_dead_codes_(self, recent: torch.Tensor) -> int:
        """Re-seed codes unused for `restart_after` consecutive training steps.

        Each dead code becomes a random row of `recent` (drawn over all ranks, identical on every
        rank); for EMA its count is reset to 1 and its sum to that row, so e = m / N holds. Its
        unused-steps counter goes back to 0. Does nothing when `restart_after` is 0. Under
        torch.distributed, every rank must call it.

        Args:
            recent: (N, D) recent encoder outputs (this rank's share).
        Returns:
            Number of codes restarted (the same on every rank).
        """
        if self.restart_after <= 0:
            return 0
        dead = (self.unused_steps >= self.restart_after).nonzero().squeeze(1)  # (n_dead,)
        if dead.numel() == 0:
            return 0
        rows = self._pick_rows(recent.detach().reshape(-1, self.dim), dead.numel())  # (n_dead, D)
        if rows is None:
            return 0
        self.codebook[dead] = rows.to(self.codebook.dtype)
        if self.update == "ema":
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = rows
        self.unused_steps[dead] = 0
        return int(dead.numel())
