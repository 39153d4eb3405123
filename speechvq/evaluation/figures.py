"""The report's PNG figures (matplotlib, Agg backend), each with a title, axis labels and units.

- `training_curves`: loss terms and codebook statistics of ``metrics.jsonl`` against the step
  (the caller's `Metric` lists, e.g. `speechvq.evaluation.speech.metrics.LOSS_CURVES`).
- `code_usage`: the share of frames per code, codes sorted from most to least used.
- `cooccurrence_map`: P(phone | code) with codes ordered by the phone they map to (van den Oord
  et al. 2017, the code-to-phone mapping), so a phone-like codebook shows a staircase.
- `spectrograms`: log-mel spectrograms (`speechvq.audio.log_mel`) of source, converted and target
  real reading for a few converted sentences; `wav_spectrograms`: of any wavs (prior samples).

Each writes atomically (`speechvq.fileio.atomic_path`); each returns the file name (for
Markdown) or None when there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from speechvq.fileio import atomic_path
from speechvq.models.outputs import Metric


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 110) -> str:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    _plt().close(fig)
    return path.name


def data_config(config_yaml: Path):
    """The exp's `DataConfig` (its config.yaml), or the defaults when it has none."""
    from speechvq.config import load_config

    return load_config(config_yaml if config_yaml.is_file() else None).data


def training_curves(records: list[dict], path: Path, losses: Sequence[Metric],
                    codebook: Sequence[Metric]) -> str | None:
    """Loss terms (left) and batch codebook statistics (right) against the training step.

    Args:
        records: the metrics.jsonl records. path: the PNG to write.
        losses: the loss terms to draw (each legend names its `Metric.legend`); absent and
            all-zero terms are skipped. codebook: the codebook statistics (perplexity, codes used).
    """
    if not records:
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in records]
    drawn = []
    for m in losses:
        values = [r.get(m.name, np.nan) for r in records]
        if any(v for v in values if v == v):  # skip absent and all-zero terms
            a.plot(steps, values, label=f"{m.name} ({m.legend})" if m.legend else m.name)
            drawn += [v for v in values if v == v]
    a.set(title="Training losses", xlabel="training step", ylabel="loss (see legend for units)")
    if drawn and min(drawn) > 0:
        a.set_yscale("log")
    if a.lines:
        a.legend(fontsize=8)
    for m in codebook:
        if any(m.name in r for r in records):
            b.plot(steps, [r.get(m.name, np.nan) for r in records], label=m.name)
    b.set(title="Codebook use per batch", xlabel="training step", ylabel="codes (count)")
    if b.lines:
        b.legend()
    return _save(fig, path)


def code_usage(details: dict, split: str, path: Path) -> str | None:
    """Share of frames per code, codes sorted by use (log scale)."""
    counts = np.asarray(details.get("code_counts") or [], dtype=np.float64)
    if counts.size == 0 or counts.sum() == 0:
        return None
    plt = _plt()
    share = np.sort(counts)[::-1] / counts.sum() * 100  # (K,) percent, most used first
    used = int((counts > 0).sum())
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.bar(np.arange(1, share.size + 1), np.where(share > 0, share, np.nan), width=1.0)
    ax.set_yscale("log")
    ax.set(title=f"Code usage on {split}: {used} of {share.size} codes used",
           xlabel="code rank (most used first)", ylabel="share of frames (%)")
    return _save(fig, path)


def cooccurrence_map(details: dict, split: str, path: Path) -> str | None:
    """P(phone | code) heatmap; used codes ordered by mapped phone, then by frequency."""
    counts = np.asarray(details.get("cooccurrence") or [], dtype=np.float64)  # (K, P)
    phones = details.get("phones") or []
    mapping = details.get("mapping") or []
    if counts.ndim != 2 or counts.sum() == 0 or len(phones) != counts.shape[1]:
        return None
    plt = _plt()
    index = {p: i for i, p in enumerate(phones)}
    mapped = np.array([index.get(p, 0) for p in mapping]) if len(mapping) == counts.shape[0] \
        else counts.argmax(1)
    total = counts.sum(1)  # (K,)
    codes = [c for c in np.lexsort((-total, mapped)) if total[c] > 0]
    prob = (counts[codes] / total[codes, None]).T  # (P, K_used)
    fig, ax = plt.subplots(figsize=(max(6, 0.06 * len(codes) + 3), max(4, 0.16 * len(phones))))
    im = ax.imshow(prob, aspect="auto", origin="lower", cmap="viridis", vmin=0, vmax=1,
                   interpolation="nearest")
    ax.set_yticks(range(len(phones)), phones, fontsize=6)
    if len(codes) <= 64:
        ax.set_xticks(range(len(codes)), [str(c) for c in codes], fontsize=5, rotation=90)
    ax.set(title=f"Code-phone co-occurrence on {split} ({len(codes)} codes used)",
           xlabel="code (ordered by mapped phone, then frequency)", ylabel="phone")
    fig.colorbar(im, ax=ax, label="P(phone | code) (probability)")
    return _save(fig, path)


def spectrograms(details: dict, split: str, data_cfg, path: Path) -> tuple[str | None, str]:
    """Rows of source / converted / target log-mel spectrograms.

    Returns:
        (file name or None, a note on the triples left out because their audio is gone).
    """
    import torch

    from speechvq.audio import log_mel_cfg
    from speechvq.data.speech.utterances import Utterances
    from speechvq.errors import SpeechVQError

    triples = details.get("spectrograms") or []
    sr = int(details.get("sample_rate") or data_cfg.sample_rate)
    rows, missing = [], []
    opened: dict[str, Utterances] = {}
    for t in triples:
        try:
            mels = []
            for role in ("source", "converted", "target"):
                d = t[role]["data"]
                if d not in opened:
                    opened[d] = Utterances(d, sr)
                wav = torch.from_numpy(np.ascontiguousarray(opened[d].waveform(t[role]["utt"])))
                mels.append(log_mel_cfg(wav, data_cfg).numpy())  # (M, F)
            rows.append((t, mels))
        except (SpeechVQError, KeyError) as e:
            missing.append(f"{t.get('utt')} ({' '.join(str(e).split())[:120]})")
    if not rows:
        return None, "; ".join(missing)
    plt = _plt()
    fig, axes = plt.subplots(len(rows), 3, figsize=(13, 2.8 * len(rows)), squeeze=False)
    hop_s = data_cfg.hop_length / sr
    lo = min(float(m.min()) for _, ms in rows for m in ms)
    hi = max(float(m.max()) for _, ms in rows for m in ms)
    for r, (t, mels) in enumerate(rows):
        for c, (role, m) in enumerate(zip(("source", "converted", "target"), mels)):
            ax = axes[r, c]
            im = ax.imshow(m, aspect="auto", origin="lower", vmin=lo, vmax=hi, cmap="magma",
                           extent=(0, m.shape[1] * hop_s, 0, m.shape[0]))
            ax.set(title=f"{role}: {t[role]['utt']}", xlabel="time (s)",
                   ylabel="mel band (index)")
            fig.colorbar(im, ax=ax, label="log magnitude (nats)")
    fig.suptitle(f"Log-mel spectrograms, conversions of {split}")
    return _save(fig, path, dpi=80), "; ".join(missing)


def wav_spectrograms(items: Sequence[tuple[str, Path]], data_cfg, path: Path,
                     title: str) -> str | None:
    """One log-mel spectrogram per (caption, wav file), side by side; None when none exists."""
    import torch

    from speechvq.audio import load_audio, log_mel_cfg

    mels = []
    for caption, wav_path in items:
        if Path(wav_path).is_file():
            wav, _ = load_audio(wav_path, data_cfg.sample_rate)
            wav = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
            mels.append((caption, log_mel_cfg(wav, data_cfg).numpy()))  # (M, F)
    if not mels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(mels), figsize=(6.5 * len(mels), 3.0), squeeze=False)
    hop_s = data_cfg.hop_length / data_cfg.sample_rate
    for ax, (caption, m) in zip(axes[0], mels):
        im = ax.imshow(m, aspect="auto", origin="lower", cmap="magma",
                       extent=(0, m.shape[1] * hop_s, 0, m.shape[0]))
        ax.set(title=caption, xlabel="time (s)", ylabel="mel band (index)")
        fig.colorbar(im, ax=ax, label="log magnitude (nats)")
    fig.suptitle(title)
    return _save(fig, path, dpi=80)
