"""What a task's step function returns, and the metric names every task shares, defined once.

A step function is ``step_fn(model, batch) -> (loss, metrics)`` (`StepFn`): ``loss`` is the scalar
tensor the Trainer backpropagates, ``metrics`` a flat dict name -> detached scalar tensor. The
Trainer averages each metric over a logging interval and writes one ``metrics.jsonl`` record::

    {"step": 200, "loss": ..., <the step function's metrics>, "step_time": ..., "data_wait": ...,
     "lr": ...}

Every name that reaches a file is a `Metric` here or in a task's metrics module
(`speechvq.evaluation.speech.metrics`), with how a report shows it; tables, figures and
comparisons take their lists from those modules, never spell names of their own. The codebook
statistics follow van den Oord et al. 2017 (arXiv 1711.00937): perplexity = exp(entropy of code
use), and the number of distinct codes in use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # the report reads these names without importing torch
    import torch
    from torch import nn

NOT_AVAILABLE = "n/a"  # a table cell without a number: never 0 where nothing was measured

StepFn = Callable[["nn.Module", Mapping[str, Any]], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


def format_value(value, fmt: str) -> str:
    """One table cell: ``%`` = a fraction shown as a percent with one decimal, ``d`` = integer,
    else a format spec; ``n/a`` where there is no value (it could not be computed, or does not
    apply); never ``-0.0``."""
    if value is None:
        return NOT_AVAILABLE
    if fmt == "%":
        return f"{100 * value + 0.0:.1f}"
    return format(int(value) if fmt == "d" else float(value) + 0.0, fmt)


@dataclass(frozen=True)
class Metric:
    """One named number of metrics.jsonl, ``eval/*.json`` or report.json, and how to show it."""

    name: str           # its key in every file
    label: str          # how a report names it (a table row, a sentence)
    better: str = ""    # "higher" or "lower" where one direction is better; "" for counts, rates
    fmt: str = ".4g"    # `format_value` spec: "%" (fraction as percent), "d", or a format spec
    unit: str = ""      # printed after a value in prose ("dB"); "%" is implied by fmt "%"
    short: str = ""     # column header of a wide table (default: the label)
    legend: str = ""    # what a figure's legend says of it, with its unit

    def format(self, value) -> str:
        """The bare number, as a table cell (`format_value`)."""
        return format_value(value, self.fmt)

    def show(self, value) -> str:
        """The number with its unit (``48.2 %``, ``7.53 dB``); ``n/a`` when missing."""
        unit = "%" if self.fmt == "%" else self.unit
        return NOT_AVAILABLE if value is None else f"{self.format(value)} {unit}".rstrip()

    def interval(self, ci) -> str:
        """A 95 % interval ``[low, high]`` as ``low–high`` in this metric's format; ``n/a``
        where there is none. Counts (fmt ``d``) keep one decimal: a resampled count is not
        whole at its percentiles."""
        if not ci or ci[0] is None:
            return NOT_AVAILABLE
        fmt = ".1f" if self.fmt == "d" else self.fmt
        return f"{format_value(ci[0], fmt)}–{format_value(ci[1], fmt)}"

    @property
    def header(self) -> str:
        return self.short or self.label


def by_name(*groups) -> dict[str, Metric]:
    """name -> Metric over groups of metrics (the first definition of a name wins)."""
    out: dict[str, Metric] = {}
    for group in groups:
        for m in group:
            out.setdefault(m.name, m)
    return out


# -------------------------------------------------------------- what every VQ-VAE step returns

LOSS = Metric("loss", "total loss", "lower", legend="total")
VQ_LOSS = Metric("vq_loss", "VQ loss", "lower", legend="VQ, squared distance")
PERPLEXITY = Metric("perplexity", "perplexity", short="ppl", fmt=".1f")
CODES_USED = Metric("codes_used", "codes used", short="used", fmt="d")
CODEBOOK = (PERPLEXITY, CODES_USED)
# the same names in metrics.jsonl: the step function measures them on its batch
BATCH_CODEBOOK = (replace(PERPLEXITY, label="code perplexity (batch)"),
                  replace(CODES_USED, label="codes used (batch)"))


def codebook_metrics(stats) -> dict[str, torch.Tensor]:
    """The codebook health a step function logs, from the quantiser's `VQStats`."""
    return {PERPLEXITY.name: stats.perplexity, CODES_USED.name: stats.codes_used}


# ---------------------------------------------------------- what the Trainer adds to each record

STEP = "step"  # the record's training step
STEP_TIME = Metric("step_time", "step time (s, mean over the last interval)")
DATA_WAIT = Metric("data_wait", "data wait (s per step, mean over the last interval)")
LR = Metric("lr", "learning rate")
TRAINER = (STEP_TIME, DATA_WAIT, LR)
