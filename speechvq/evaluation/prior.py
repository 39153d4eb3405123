"""``speechvq evaluate prior``: the held-out likelihood of a prior over codes beside simple
baselines on the same codes, and, for a class-conditional image prior, whether its samples look
like the class asked for.

Systems (DESIGN.md, report keys ``prior.<split>.<system>.bits_per_code``), every one scored on
the same codes of the scored dump (the test split), in raster order:

- ``prior``: the trained model, -log2 p(code | the codes before it [, class or speaker]);
- ``uniform``: log2 K;
- ``unigram``: code frequencies of the prior's training items, add-one smoothed;
- ``bigram``: p(b | a) = lam * c(a, b) / c(a) + (1 - lam) * unigram(b) over the previous code in
  raster order (the unigram alone where c(a) = 0, and for the first code of each item), counts
  from the prior's training items, lam tuned on a grid of 100 values on the ``data.held_out``
  fraction of the training items that the prior never trained on (the same seeded split).

Each with a 95 % bootstrap interval over items (``ci95.bits_per_code``). For an image VQ-VAE with
the categorical decoder also ``bits_per_dim`` = (the system's bits for z + -log2 p(x|z)) /
(H W C), the paper's CIFAR-10 measure (uniform: what ``evaluate images`` reports).

Sample quality (``prior.samples``, ``prior.classifier``; class-conditional image priors): a small
CNN trained once on the real training images (`speechvq.evaluation.image_classifier`) labels
``--samples-per-class`` samples of every class decoded by the VQ-VAE; ``class_match`` is the
share labelled as the class asked for, beside ``chance`` (1 / classes), the classifier's accuracy
on the real test images and on their VQ-VAE reconstructions (the ceiling a perfect prior would
reach). For a speech prior given the training alignments (``--alignments``), its samples and
its continuations of the test utterances read as phones and scored by a phone bigram, beside the
code bigram's, the unigram's and the real codes' (``prior.samples.phone_bigram_ppl.<source>``,
``prior.continuation...``; `speechvq.evaluation.speech.prior_samples`). Results go to
``EXP/eval/prior_<name>.json`` with a PNG of the samples (a row per class).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)
from speechvq.models.outputs import Metric

__all__ = ["NgramBaselines", "evaluate_prior", "format_prior_table", "SYSTEMS", "BITS_PER_DIM",
           "information_text"]

SYSTEMS = ("prior", "uniform", "unigram", "bigram")
SYSTEM_LABELS = {"prior": "prior", "uniform": "uniform (log2 K)", "unigram": "unigram",
                 "bigram": "bigram + unigram"}
BITS_PER_CODE = Metric("bits_per_code", "bits per code", "lower", fmt=".3f", short="bits/code")
BITS_PER_DIM = Metric("bits_per_dim", "bits/dim, (bits for z + -log2 p(x|z)) / (H W C)", "lower",
                      fmt=".3f", short="bits/dim")
CLASS_MATCH = Metric("class_match", "samples labelled as the class asked for", "higher", fmt="%")
BOOTSTRAP = 1000
DRAWS_PER_UTTERANCE = 10  # speech samples per test utterance and source (sampling noise)
LAMBDAS = np.linspace(0.0, 0.99, 100)


class NgramBaselines:
    """Unigram and interpolated bigram over codes in raster order (module docstring).

    Args:
        seqs: the training items' codes, each flattened in raster order. codebook_size: K.
    """

    def __init__(self, seqs: list[np.ndarray], codebook_size: int):
        k = self.k = codebook_size
        allc = np.concatenate(seqs)
        self.unigram = (np.bincount(allc, minlength=k) + 1.0) / (allc.size + k)  # (K,)
        prev = np.concatenate([s[:-1] for s in seqs])
        nxt = np.concatenate([s[1:] for s in seqs])
        self.pairs, self.pair_counts = np.unique(prev * k + nxt, return_counts=True)
        self.prev_counts = np.bincount(prev, minlength=k)  # (K,)
        self.lam = 0.0

    def _parts(self, seq: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unigram p (T,), bigram ML p (T,), whether the bigram applies (T,))."""
        uni = self.unigram[seq]
        ml = np.zeros(seq.size)
        has = np.zeros(seq.size, bool)
        if seq.size > 1:
            key = seq[:-1] * self.k + seq[1:]
            pos = np.clip(np.searchsorted(self.pairs, key), 0, len(self.pairs) - 1)
            count = np.where(self.pairs[pos] == key, self.pair_counts[pos], 0)
            denom = self.prev_counts[seq[:-1]]
            has[1:] = denom > 0
            ml[1:] = np.where(has[1:], count / np.maximum(denom, 1), 0.0)
        return uni, ml, has

    def tune_(self, seqs: list[np.ndarray]) -> float:
        """Set and return the interpolation weight minimising the bits of `seqs`."""
        uni, ml, has = (np.concatenate(x) for x in zip(*(self._parts(s) for s in seqs)))
        lam = LAMBDAS[:, None]
        p = np.where(has, lam * ml + (1 - lam) * uni, uni)  # (L, N)
        self.lam = float(LAMBDAS[np.argmin(-np.log2(p).sum(1))])
        return self.lam

    def bits(self, seq: np.ndarray) -> tuple[float, float]:
        """(unigram bits, bigram bits) of one item's codes."""
        uni, ml, has = self._parts(seq)
        bi = np.where(has, self.lam * ml + (1 - self.lam) * uni, uni)
        return float(-np.log2(uni).sum()), float(-np.log2(bi).sum())


def _ci(bits: np.ndarray, n_codes: np.ndarray, picks: np.ndarray) -> list[float]:
    values = bits[picks].sum(1) / n_codes[picks].sum(1)
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def _prior_bits(model: Any, dump: Any, cond: np.ndarray | None, batch_size: int, device: Any,
                progress: bool) -> np.ndarray:
    """-log2 p of every item's codes under the prior; (N,) float64."""
    import torch
    import torch.nn.functional as F
    from speechvq.progress import tqdm

    out = np.zeros(len(dump))
    order = np.argsort(dump.lengths, kind="stable")  # similar lengths together: little padding
    for k in tqdm(range(0, len(order), batch_size), desc="evaluate prior", unit="batch",
                  disable=not progress):
        index = order[k:k + batch_size]
        shape = dump.shapes[index[-1]]
        codes = np.zeros((len(index), *shape), np.int64)
        mask = np.zeros(codes.shape, bool)
        for row, i in enumerate(index):
            item = dump.item(int(i))
            codes[(row, *map(slice, item.shape))] = item
            mask[(row, *map(slice, item.shape))] = True
        x = torch.from_numpy(codes).to(device)
        c = None if cond is None else torch.from_numpy(cond[index]).to(device)
        with torch.no_grad():
            nats = F.cross_entropy(model(x, c).float(), x, reduction="none")  # (B, *grid)
        bits = (nats.cpu().double().numpy() * mask).reshape(len(index), -1).sum(1) / math.log(2)
        out[index] = bits
    return out


MAX_CONDITIONS_SCORED = 64  # class_information scores items once per condition
CONDITION_ITEMS = 500  # ... on this many of them, evenly spaced


class _Subset:
    """The items `index` of a code dump, as `_prior_bits` reads a dump."""

    def __init__(self, dump: Any, index: np.ndarray):
        self._dump, self._index = dump, index
        self.lengths, self.shapes = dump.lengths[index], [dump.shapes[i] for i in index]

    def __len__(self) -> int:
        return len(self._index)

    def item(self, i: int) -> np.ndarray:
        return self._dump.item(int(self._index[i]))


def class_information(prior: Any, dump: Any, cond: np.ndarray, batch_size: int, device: Any,
                      progress: bool) -> dict:
    """How much a conditional prior uses its condition (class or speaker), on up to
    CONDITION_ITEMS evenly spaced scored items, each scored under every condition c
    (b_c = -log2 p(codes | c)): ``bits_saved_per_item``, the mean over items of the mean of
    b_c over the wrong conditions minus b_true (a likelihood ratio: it is not bounded, a wrong
    speaker can cost hundreds of bits); ``information_bits_per_item``, log2 C minus the mean of
    -log2 p(true c | codes) under the prior's posterior with a uniform prior over the C
    conditions: an estimate of how much of the condition the prior reads from the codes, at
    most ``ceiling_bits_per_item`` = log2 C (negative when the posterior is worse than a
    uniform guess); and ``prior_classifier_accuracy``, how often the true condition is the
    likeliest (argmin_c b_c), beside ``chance``."""
    n = int(prior.prior_info["n_classes"])
    index = np.unique(np.linspace(0, len(dump) - 1, min(len(dump), CONDITION_ITEMS)).astype(int))
    items = _Subset(dump, index)
    bits = np.stack([_prior_bits(prior, items, np.full(len(items), c), batch_size, device,
                                 progress) for c in range(n)], 1)  # (N, C)
    true = cond[index]
    own = bits[np.arange(len(index)), true]
    wrong = (bits.sum(1) - own) / (n - 1)
    # -log2 posterior of the true condition: b_true - (-log2 sum_c 2^-b_c), in a stable form
    lowest = bits.min(1)
    evidence = lowest - np.log2(np.exp2(lowest[:, None] - bits).sum(1))  # -log2 sum_c 2^-b_c
    return {"bits_saved_per_item": float((wrong - own).mean()),
            "information_bits_per_item": float(math.log2(n) - (own - evidence).mean()),
            "ceiling_bits_per_item": math.log2(n),
            "prior_classifier_accuracy": float((bits.argmin(1) == true).mean()),
            "chance": 1.0 / n, "n_items": int(len(index))}


def information_text(info: dict) -> str:
    """'I of the log2 C bits' of a class_information block (results before the key: '?')."""
    held = info.get("information_bits_per_item")
    return (f"{'?' if held is None else f'{held:.2f}'} of the "
            f"{info['ceiling_bits_per_item']:.2f} bits (log2 C)")


def _conditions(prior: Any, dump: Any) -> np.ndarray | None:
    """The scored items' conditions as the prior's indices (None: an unconditional prior)."""
    from speechvq.errors import DataError

    info = prior.prior_info
    if not info["n_classes"]:
        return None
    index = {c: i for i, c in enumerate(info["conditions"])}
    names = [dump.conditions[c] for c in dump.condition_ids]
    unknown = sorted({n for n in names if n not in index})
    if unknown:
        raise DataError(f"the scored codes' conditions {', '.join(unknown[:5])} are not among "
                        f"the prior's ({len(index)} from its training codes); score codes of "
                        f"known classes/speakers, or train an unconditional prior "
                        f"(model.conditional=false)")
    return np.array([index[n] for n in names], np.int64)


def evaluate_prior(model: str | os.PathLike, data: str | os.PathLike, *,
                   fit_on: str | os.PathLike | None = None, name: str | None = None,
                   exp_dir: str | os.PathLike | None = None, checkpoint: str | None = None,
                   batch_size: int = 64, samples_per_class: int = 50,
                   temperature: float = 1.0, seed: int = 0, device: str = "auto",
                   progress: bool = True, alignments: str | os.PathLike | None = None,
                   guidance: float = 0.0, draws_per_utterance: int | None = None) -> dict:
    """Score a prior and the baselines on the code dump `data`; writes
    ``EXP/eval/prior_<name>.json`` (and the sample figure) and returns the result.

    Args:
        model: exp dir or checkpoint of a prior run. data: the scored code dump (test split).
        fit_on: the code dump the baselines count on (default: the prior's training codes; its
            ``data.held_out`` items tune the bigram and are not counted).
        samples_per_class: class-conditional image priors: samples per class scored by the
            classifier (0: none). temperature: of those samples.
        seed: sampling, the classifier and the bootstrap.
        alignments: speech priors: the training data's phones.ctm (or its data dir), to score
            samples and continuations by their phones (None: not scored).
        draws_per_utterance: speech: sequences each drawn source gives per test utterance
            (None: `DRAWS_PER_UTTERANCE`).
    """
    draws_per_utterance = draws_per_utterance or DRAWS_PER_UTTERANCE
    from speechvq.checkpoint import load_model
    from speechvq.data.code_dump import held_out_split
    from speechvq.device import pick_device
    from speechvq.tasks.prior import open_code_dump

    exp = resolve_exp_dir(model, exp_dir)
    name = check_name(name or default_name(data))
    dev = pick_device(device, option="--device")
    prior = load_model(model, checkpoint, kind="prior", device=dev)
    info, arch = prior.prior_info, prior.config.model.arch
    dump = open_code_dump(data, arch, "scored")
    fit_path = fit_on or info["train_codes"]
    fit = open_code_dump(fit_path, arch, "--fit-on")
    if dump.codebook_size != info["codebook_size"] or fit.codebook_size != dump.codebook_size:
        from speechvq.errors import DataError
        raise DataError(f"the prior models K = {info['codebook_size']} codes, the scored dump "
                        f"holds K = {dump.codebook_size}, --fit-on K = {fit.codebook_size}: "
                        f"encode them with the prior's VQ-VAE")
    train_items, held = held_out_split(len(fit), prior.config.data.held_out, prior.config.seed)
    flat = lambda d, i: d.item(int(i)).reshape(-1)  # noqa: E731  raster order
    ngram = NgramBaselines([flat(fit, i) for i in train_items], dump.codebook_size)
    lam = ngram.tune_([flat(fit, i) for i in held]) if len(held) else 0.0
    n_codes = dump.lengths.astype(np.float64)
    cond = _conditions(prior, dump)
    bits = {"prior": _prior_bits(prior, dump, cond, batch_size, dev, progress),
            "uniform": n_codes * math.log2(dump.codebook_size)}
    both = np.array([ngram.bits(flat(dump, i)) for i in range(len(dump))])  # (N, 2)
    bits["unigram"], bits["bigram"] = both[:, 0], both[:, 1]
    picks = np.random.default_rng(seed).integers(0, len(dump), (BOOTSTRAP, len(dump)))
    block: dict[str, Any] = {
        s: {BITS_PER_CODE.name: float(bits[s].sum() / n_codes.sum()),
            "ci95": {BITS_PER_CODE.name: _ci(bits[s], n_codes, picks)}} for s in SYSTEMS}
    block.update(n_items=len(dump), n_codes=int(n_codes.sum()), codebook_size=dump.codebook_size,
                 modality=dump.modality, grid=list(dump.grid) if dump.grid else None,
                 bigram_weight=lam, fit_on=str(fit_path), n_fit_items=len(train_items),
                 n_tune_items=len(held), arch=arch)
    if cond is not None and info["n_classes"] <= MAX_CONDITIONS_SCORED:
        block["class_information"] = class_information(prior, dump, cond, batch_size, dev,
                                                       progress)
    result: dict[str, Any] = {"prior": {name: block}, "details": {"figures": {}}}
    if dump.modality == "image":
        from speechvq.evaluation.prior_images import add_bits_per_dim, sample_quality

        vq = add_bits_per_dim(block, bits, dump, info, dev)
        if samples_per_class and info["n_classes"]:
            samples, classifier, figure = sample_quality(
                prior, vq, dump, fit, exp / "eval" / f"prior_{name}_samples.png",
                samples_per_class=samples_per_class, temperature=temperature, seed=seed,
                device=dev, progress=progress, guidance=guidance)
            result["prior"].update(samples=samples, classifier=classifier)
            result["details"]["figures"]["samples"] = str(figure)
    if dump.modality == "speech" and alignments is not None:
        from speechvq.evaluation.speech.prior_samples import score_speech_samples

        result["prior"].update(score_speech_samples(
            prior, fit, dump, alignments, cond=_conditions(prior, dump),
            temperature=temperature, seed=seed, draws=draws_per_utterance))
    result.update(
        command=command_line(["speechvq", "evaluate", "prior", "--model", str(model),
                              "--checkpoint", checkpoint, "--data", str(data),
                              "--fit-on", None if fit_on is None else str(fit_on),
                              "--name", name, "--exp", None if exp_dir is None else str(exp),
                              "--samples-per-class", samples_per_class,
                              "--temperature", temperature, "--guidance", guidance or None,
                              "--seed", seed, "--draws-per-utterance", draws_per_utterance,
                              "--alignments", None if alignments is None else str(alignments)]),
        data={"model": str(model), "checkpoint": checkpoint, "data": str(data),
              "fit_on": str(fit_path),
              "alignments": None if alignments is None else str(alignments)})
    write_result(exp, "prior", name, result)
    return result


# ------------------------------------------------------------------------------------ table


def gain_line(block: dict) -> str:
    """One sentence: the prior's bits per code against the bigram's."""
    p, b = block["prior"][BITS_PER_CODE.name], block["bigram"][BITS_PER_CODE.name]
    share = f", {100 * (b - p) / b:+.1f} % under" if b > 1e-6 else ""
    return (f"prior vs bigram: {p:.3f} vs {b:.3f} bits per code{share}"
            + ("" if p < b else " (the bigram wins)"))


def format_prior_table(result: dict) -> str:
    """The prior block(s) of a result as plain text: systems x bits/code (and bits/dim)."""
    lines = []
    for split, block in result["prior"].items():
        if split in ("samples", "classifier", "continuation"):
            continue
        shape = "x".join(map(str, block["grid"])) if block.get("grid") else "1-D"
        lines.append(f"prior {split}: {block['n_items']} items, {block['n_codes']} codes "
                     f"({shape}) of K={block['codebook_size']}; bigram weight "
                     f"{block['bigram_weight']:.2f}")
        cols = [m for m in (BITS_PER_CODE, BITS_PER_DIM) if m.name in block["prior"]]
        head = f"{'system':<18}" + "".join(f"{m.header:>12}" for m in cols)
        lines += [head, "-" * len(head)]
        for s in SYSTEMS:
            lines.append(f"{SYSTEM_LABELS[s]:<18}" + "".join(
                f"{m.format(block[s].get(m.name)):>12}" for m in cols))
        lines.append(gain_line(block))
        info = block.get("class_information")
        if info:
            lines.append(f"the true condition saves the prior {info['bits_saved_per_item']:.2f} "
                         f"bits per item against a wrong one; the prior's posterior holds "
                         f"{information_text(info)} of the condition; as a classifier: "
                         f"{100 * info['prior_classifier_accuracy']:.1f} % (chance "
                         f"{100 * info['chance']:.1f} %), {info['n_items']} items")
    samples, classifier = result["prior"].get("samples"), result["prior"].get("classifier")
    for what in ("samples", "continuation"):
        ppl = (result["prior"].get(what) or {}).get("phone_bigram_ppl")
        if ppl:
            lines.append(f"phone-bigram perplexity of {what} (real speech: {ppl['real']:.1f}): "
                         + ", ".join(f"{s} {v:.1f}" for s, v in ppl.items() if s != "real"))
    if samples and "class_match" in samples:
        guided = f" at guidance {samples['guidance']:g}" if samples.get("guidance") else ""
        lines.append(f"class-conditional samples{guided} labelled as asked: "
                     f"{CLASS_MATCH.show(samples['class_match'])} (chance "
                     f"{CLASS_MATCH.show(samples['chance'])}; classifier on real test images "
                     f"{CLASS_MATCH.show(classifier['real_test_accuracy'])}, on VQ-VAE "
                     f"reconstructions {CLASS_MATCH.show(classifier['reconstruction_accuracy'])})")
    return "\n".join(lines)
