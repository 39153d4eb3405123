"""Discretized mixture of logistics over mu-law classes: NLL and sampler.

The output distribution of PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517) as used for audio
by Parallel WaveNet (Oord et al. 2018) and r9y9/wavenet_vocoder (``mixture.py``), here over the
``num_classes`` mu-law bins: class i sits at ``2 i / (num_classes - 1) - 1`` in [-1, 1], each bin
is ``2 / (num_classes - 1)`` wide, and the two edge bins take the tails of the distribution, so the
probabilities of all classes sum to one. A network predicts ``3 * M`` channels per sample: M
mixture logits, M means and M log-scales (in that order).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_SCALE_MIN = -7.0  # r9y9/wavenet_vocoder's floor on the log-scales


def split_params(params: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, ...]:
    """Split ``3 * M`` channels into (logits, means, log_scales), log-scales floored.

    Args:
        params: (..., 3M, ...) with the mixture channels at `dim`.
    Returns:
        three tensors with M channels at `dim`.
    """
    logits, means, log_scales = params.chunk(3, dim=dim)
    return logits, means, log_scales.clamp(min=LOG_SCALE_MIN)


def class_to_value(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mu-law classes (int64, any shape) -> bin centres in [-1, 1] (float32, same shape)."""
    return classes.float() * (2.0 / (num_classes - 1)) - 1.0


def value_to_class(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Values in [-1, 1] (any shape) -> the nearest mu-law class (int64, same shape)."""
    q = torch.round((x.float().clamp(-1.0, 1.0) + 1.0) * (num_classes - 1) / 2.0)
    return q.long().clamp_(0, num_classes - 1)


def mol_nll(params: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Negative log-likelihood in nats of each target class under the mixture, in float32.

    Args:
        params: (B, 3M, T) mixture logits, means, log-scales.
        targets: (B, T) int64 classes in [0, num_classes).
        num_classes: number of mu-law bins (256 for 8 bits).
    Returns:
        (B, T) float32 NLL.
    """
    logits, means, log_scales = split_params(params.float(), dim=1)  # (B, M, T) each
    y = class_to_value(targets, num_classes).unsqueeze(1)  # (B, 1, T)
    half_bin = 1.0 / (num_classes - 1)
    centred = y - means  # (B, M, T)
    inv_s = torch.exp(-log_scales)
    plus_in = inv_s * (centred + half_bin)
    min_in = inv_s * (centred - half_bin)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in): the bottom edge bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 - sigmoid(min_in)): the top edge bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centred
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    # Interior bins: log of the CDF difference, or the density times the bin width where the
    # difference underflows (as in PixelCNN++).
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp(min=1e-12)),
                           log_pdf_mid + math.log(2.0 * half_bin))
    log_probs = torch.where(y < -0.999, log_cdf_plus,
                            torch.where(y > 0.999, log_one_minus_cdf_min, interior))  # (B, M, T)
    log_probs = log_probs + F.log_softmax(logits, dim=1)
    return -torch.logsumexp(log_probs, dim=1)  # (B, T)


def mol_sample(params: torch.Tensor, num_classes: int, temperature: float = 1.0,
               noise: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one class per row from the mixture.

    The component is picked by Gumbel-max on ``logits / temperature`` and the value is
    ``mean + temperature * scale * logistic noise``, clipped to [-1, 1] and rounded to the nearest
    class. Temperature 0 gives the mean of the most probable component.

    Args:
        params: (B, 3M) mixture parameters of one time step.
        num_classes: number of mu-law bins.
        temperature: >= 0.
        noise: (B, M + 1) uniform [0, 1) numbers (M for the component, 1 for the value); drawn
            with the global generator when None.
    Returns:
        (B,) int64 classes.
    """
    logits, means, log_scales = split_params(params.float(), dim=-1)  # (B, M) each
    if temperature == 0:
        pick = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        return value_to_class(means.gather(-1, pick).squeeze(-1), num_classes)
    if noise is None:
        noise = torch.rand(logits.shape[0], logits.shape[1] + 1, device=logits.device)
    gumbel, logistic = mol_noise(noise)  # (B, M), (B,)
    pick = (logits / temperature + gumbel).argmax(dim=-1, keepdim=True)  # (B, 1)
    mean = means.gather(-1, pick).squeeze(-1)  # (B,)
    scale = torch.exp(log_scales.gather(-1, pick).squeeze(-1))  # (B,)
    x = mean + temperature * scale * logistic  # (B,)
    return value_to_class(x, num_classes)


def mol_noise(noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's noise from uniform numbers: Gumbel draws for the component, a logistic
    draw for the value (both float32; the uniforms are clamped off 0 and 1).

    Args:
        noise: (..., M + 1) uniform [0, 1) numbers.
    Returns:
        gumbel (..., M) and logistic (...).
    """
    u = noise.float().clamp(1e-7, 1.0 - 1e-7)  # (..., M + 1)
    v = u[..., -1]
    return -torch.log(-torch.log(u[..., :-1])), torch.log(v) - torch.log1p(-v)
