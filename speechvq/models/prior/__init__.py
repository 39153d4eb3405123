"""Autoregressive priors over VQ-VAE codes (van den Oord et al. 2017, section 4), one class per
grid shape, all following one contract so that the prior task, `speechvq sample` and `speechvq
evaluate prior` build and use any of them alike:

    class SomePrior(nn.Module):
        @classmethod
        def from_config(cls, model_cfg, *, codebook_size: int, n_classes: int) -> "SomePrior"
            # model_cfg: the prior task's `model` section; n_classes: 0 = unconditional
        def forward(self, codes, cond=None) -> logits
            # codes (B, *grid) int64 -> (B, K, *grid); logits at a position depend only on the
            # codes strictly before it in raster order (and on cond (B,))
        @torch.no_grad()
        def sample(self, n, grid, *, cond=None, prompt=None, temperature=1.0, generator=None)
            # -> (n, *grid); prompt (n, L): the first L codes in raster order, kept;
            # temperature 0 = greedy
        code_embedding: nn.Embedding
            # its first K rows embed the input codes (`codebook_rows` may start them); every
            # other nn.Embedding of a prior embeds its condition (`condition_parameter_names`)

`ARCHS` maps ``model.arch`` to the class's dotted path; `prior_class` imports it when asked, so a
prior whose module is missing costs the others nothing and fails with a clear message.
"""

from __future__ import annotations

import importlib

import torch

from speechvq.errors import ModelError

ARCHS = {"pixelcnn": "speechvq.models.prior.pixelcnn.PixelCNNPrior",
         "wavenet": "speechvq.models.prior.causal.CausalPrior",
         "video": "speechvq.models.prior.video.VideoPrior"}

__all__ = ["ARCHS", "prior_class", "build_prior", "draw", "codebook_rows",
           "condition_parameter_names"]


def prior_class(arch: str) -> type:
    """The prior class of ``model.arch`` = `arch`.

    Raises:
        ModelError: an unknown arch, or one whose module this speechvq does not have.
    """
    if arch not in ARCHS:
        raise ModelError(f"unknown prior model.arch {arch!r}; choose one of {', '.join(ARCHS)}")
    module, _, name = ARCHS[arch].rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise ModelError(f"model.arch={arch} needs {module}, which this speechvq does not have; "
                         f"choose another arch ({', '.join(ARCHS)}) or upgrade") from None


def build_prior(model_cfg, *, codebook_size: int, n_classes: int) -> torch.nn.Module:
    """The prior `model_cfg.arch` names, built through its `from_config`."""
    return prior_class(model_cfg.arch).from_config(model_cfg, codebook_size=codebook_size,
                                                   n_classes=n_classes)


def condition_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters that embed a prior's condition (class or speaker): those of
    every nn.Embedding other than its `code_embedding` (the module docstring's contract)."""
    code = model.code_embedding
    return [f"{name}.{p}" if name else p for name, module in model.named_modules()
            if isinstance(module, torch.nn.Embedding) and module is not code
            for p, _ in module.named_parameters(recurse=False)]


def draw(logits: torch.Tensor, temperature: float,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """One code per row of `logits` (B, K): argmax at temperature 0, else a draw from
    softmax(logits / temperature) with `generator`; (B,) int64."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def codebook_rows(codebook: torch.Tensor, width: int) -> torch.Tensor:
    """Starting rows (K, width) for a prior's code embedding from the VQ-VAE's codewords
    (K, D): centred, projected on their `width` principal components when D > width (else
    zero-padded to `width`), and scaled by one factor to a mean variance of 1 per column, as
    N(0, 1) rows have. One factor for all columns keeps the codewords' geometry: distances
    between rows are the codewords' (projected) distances, scaled.

    Why: a randomly embedded code tells the prior nothing about which codes look alike, so it
    must learn from the codes' co-occurrence alone that, say, two codes are both dark strokes.
    Starting from the codewords, codes the decoder draws alike start alike (README "Priors"
    measures what that buys).
    """
    e = codebook.detach().double()
    e = e - e.mean(0)  # (K, D)
    k, d = e.shape
    if d > width:
        _, _, v = torch.linalg.svd(e, full_matrices=False)  # v: (min(K, D), D)
        e = e @ v[:width].T  # (K, min(K, D, width))
    e = torch.cat([e, e.new_zeros(k, width - e.shape[1])], 1)  # (K, width): zero-padded
    scale = e.var(0).mean().clamp(min=1e-12).sqrt()
    return (e / scale).float()
