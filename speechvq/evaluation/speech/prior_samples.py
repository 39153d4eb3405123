"""How speech-like a speech prior's samples are: their phones scored by a phone bigram.

The VQ-VAE paper (sec. 4.3) says its speech prior's samples "contain clear words and
part-sentences"; this measures that without listening. Every code sequence is read as phones
with the code-to-phone map fitted on the training codes and their alignments (van den Oord et al.
2017; `speechvq.evaluation.speech.units.fit_code_to_phone`, each frame labelled with the phone at
its centre), runs of one phone collapsed, SIL dropped; the phone string is scored by the
perplexity of a phone bigram fitted on the training alignments (phones.ctm, read the same way:
runs collapsed, SIL dropped) with add-one (Laplace) smoothing over the phones and the
end-of-sequence symbol. Lower is more like the training speech, but not without bound: the
number to match is the real test utterances', read through the same map.

Sources, ``draws`` sequences per test utterance with that utterance's length (and speaker, for
a speaker-conditioned prior), pooled: with one sequence per utterance the code bigram's figure
on the mini recipe's 180 test utterances moved by 2.6 between sampling seeds (79.0 to 81.6),
about the gap between the sources:

- ``prior``: the prior's samples (temperature 1 unless asked);
- ``code_bigram``: drawn from the maximum-likelihood code bigram of the training codes (the first
  code from the training utterances' first codes; an unseen previous code falls back to the
  unigram);
- ``unigram``: codes drawn independently from the training codes' unigram;
- ``real``: the test utterances' own codes.

Continuations: the first ``prompt_seconds`` of each test utterance longer than that is given and
the rest is drawn by each source (the bigram continues from the prompt's last code, ``real`` is
the utterance's own rest); only the drawn part is scored. Every figure has a 95 % bootstrap
interval over the test utterances, each resampled with all its sequences
(``ci95.phone_bigram_ppl.<source>``).

    scores = score_speech_samples(prior, CodeDump.open("dump/codes/train"),
                                  CodeDump.open("dump/codes/test"), "data/train/phones.ctm")
    scores["samples"]["phone_bigram_ppl"]["prior"]   # beside "real", "code_bigram", "unigram"

The blocks go under ``prior`` in ``speechvq evaluate prior``'s result, so report.json has
``prior.samples.phone_bigram_ppl.<source>`` and ``prior.continuation.phone_bigram_ppl.<source>``
(DESIGN.md "Report keys").
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from speechvq.data.speech.alignments import SIL, read_ctm, read_phones_txt
from speechvq.errors import DataError
from speechvq.evaluation.speech.unit_eval import frame_labels_for, phone_set
from speechvq.evaluation.speech.units import fit_code_to_phone

SOURCES = ("prior", "code_bigram", "unigram", "real")
SMOOTHING = "add-one"  # of the phone bigram


# --------------------------------------------------------------------------- phones of codes


def read_alignments(path: str | os.PathLike) -> tuple[dict[str, list], list[str]]:
    """(utt -> [(start, dur, phone)], phone inventory) of a phones.ctm or a Kaldi dir holding
    one (phones.txt beside it names the inventory; else the CTM's phones, SIL first)."""
    path = Path(path)
    ctm = path / "phones.ctm" if path.is_dir() else path
    if not ctm.is_file():
        raise DataError(f"scoring speech samples needs the training alignments and '{ctm}' does "
                        f"not exist; give the training data dir (with phones.ctm) or its CTM")
    segments = read_ctm(ctm)
    txt = ctm.parent / "phones.txt"
    phones = read_phones_txt(txt) if txt.is_file() else phone_set(
        sorted({p for segs in segments.values() for _, _, p in segs}))
    return segments, phones


def phone_string(phones: Sequence[int], sil: int) -> list[int]:
    """Runs of one phone collapsed, then SIL dropped (so a phone either side of a pause counts
    twice)."""
    return [int(p) for p, _ in itertools.groupby(phones) if p != sil]


def fit_mapping(train, segments: Mapping[str, list], phones: list[str]) -> np.ndarray:
    """(K,) phone index per code, fitted on the training codes whose utterance is aligned."""
    rate = float(train.meta.get("frame_rate_hz") or 0)
    if rate <= 0:
        raise DataError(f"code dump '{train.path}' has no frame rate: it is not speech codes")
    n_frames = {u: int(n) for u, n in zip(train.ids, train.lengths)}
    labels = frame_labels_for(segments, n_frames, rate, phones)
    if not labels:
        raise DataError(f"no utterance of code dump '{train.path}' is in the alignments: give "
                        f"the alignments of the data the codes were encoded from")
    where = {u: i for i, u in enumerate(train.ids)}
    codes = np.concatenate([train.item(where[u]) for u in labels])
    return fit_code_to_phone(codes, np.concatenate(list(labels.values())),
                             train.codebook_size, len(phones))


class PhoneBigram:
    """Add-one smoothed phone bigram with start and end symbols, over phone indices."""

    def __init__(self, strings: Sequence[Sequence[int]], n_phones: int):
        self.n = n_phones  # phone indices 0..n-1; n = start (as context) and end (as outcome)
        counts = np.zeros((n_phones + 1, n_phones + 1), np.float64)
        for s in strings:
            seq = [n_phones, *s, n_phones]
            np.add.at(counts, (seq[:-1], seq[1:]), 1.0)
        self.log_p = np.log((counts + 1.0) / (counts.sum(1, keepdims=True) + n_phones + 1))

    def scores(self, strings: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(negative log-probability (N,), symbols scored (N,)) of each string, the end
        symbols included."""
        nll, count = np.zeros(len(strings)), np.zeros(len(strings))
        for i, s in enumerate(strings):
            seq = [self.n, *s, self.n]
            nll[i] = -float(self.log_p[seq[:-1], seq[1:]].sum())
            count[i] = len(seq) - 1
        return nll, count

    def perplexity(self, strings: Sequence[Sequence[int]]) -> float:
        """exp of the mean negative log-probability per symbol (the end symbols included)."""
        nll, count = self.scores(strings)
        return math.exp(nll.sum() / count.sum()) if count.sum() else float("nan")


# ---------------------------------------------------------------------------- code baselines


class CodeNgrams:
    """Maximum-likelihood code unigram and bigram of the training codes, to draw from."""

    def __init__(self, train):
        k = train.codebook_size
        self.unigram = np.bincount(np.asarray(train.codes, np.int64), minlength=k).astype(float)
        self.unigram /= self.unigram.sum()
        pairs = np.zeros((k, k), np.float64)
        first = np.zeros(k, np.float64)
        for i in range(len(train)):
            c = train.item(i)
            first[c[0]] += 1
            np.add.at(pairs, (c[:-1], c[1:]), 1.0)
        rows = pairs.sum(1, keepdims=True)
        bigram = np.where(rows > 0, pairs / np.maximum(rows, 1), self.unigram)  # (K, K)
        self.bigram_cdf = np.cumsum(bigram, axis=1)  # (K, K)
        self.first_cdf = np.cumsum(first / first.sum())  # (K,)

    def _pick(self, cdf: np.ndarray, u: float) -> int:
        return min(int(np.searchsorted(cdf, u * cdf[-1], side="right")), cdf.size - 1)

    def draw_unigram(self, length: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(self.unigram.size, size=length, p=self.unigram)

    def draw_bigram(self, length: int, rng: np.random.Generator,
                    prev: int | None = None) -> np.ndarray:
        """`length` codes after `prev` (None: the first from the first codes' distribution)."""
        out = np.empty(length, np.int64)
        for t, u in enumerate(rng.random(length)):
            cdf = self.first_cdf if prev is None else self.bigram_cdf[prev]
            prev = out[t] = self._pick(cdf, float(u))
        return out


# --------------------------------------------------------------------------------- scoring


def _prior_draws(prior, lengths: Sequence[int], cond: np.ndarray | None,
                 prompts: Sequence[np.ndarray] | None, temperature: float, seed: int,
                 batch_size: int, engine: str | None) -> list[np.ndarray]:
    """The prior's sequences, `batch_size` of similar lengths at a time, each cut to its
    length; in the order of `lengths`."""
    out: list[np.ndarray] = [np.zeros(0, np.int64)] * len(lengths)
    gen = torch.Generator().manual_seed(seed)
    order = [int(i) for i in np.argsort(lengths, kind="stable")]
    for b0 in range(0, len(order), batch_size):
        part = order[b0:b0 + batch_size]
        steps = max(lengths[i] for i in part)
        prompt = None
        if prompts is not None:
            short = min(len(prompts[i]) for i in part)
            prompt = torch.as_tensor(np.stack([prompts[i][:short] for i in part]))
        c = None if cond is None else torch.as_tensor(cond[part])
        codes = prior.sample(len(part), (steps,), cond=c, prompt=prompt,
                             temperature=temperature, generator=gen, engine=engine).cpu().numpy()
        for j, i in enumerate(part):
            out[i] = codes[j, :lengths[i]]
    return out


def _ppl_and_ci(bigram: PhoneBigram, strings: Sequence[Sequence[int]], units: np.ndarray,
                counts: np.ndarray) -> tuple[float, list[float] | None]:
    """Perplexity of `strings` and its 95 % interval over the test utterances they belong to
    (`units`; every resample of `counts` takes an utterance with all its sequences)."""
    from speechvq.evaluation.bootstrap import ratio_ci

    nll, n_symbols = bigram.scores(strings)
    per_nll = np.bincount(units, nll, minlength=counts.shape[1])
    per_n = np.bincount(units, n_symbols, minlength=counts.shape[1])
    ci = ratio_ci(per_nll, per_n, counts)
    return (math.exp(per_nll.sum() / per_n.sum()) if per_n.sum() else float("nan"),
            None if ci is None else [math.exp(ci[0]), math.exp(ci[1])])


def score_speech_samples(prior, train, test, alignments: str | os.PathLike, *,
                         cond: np.ndarray | None = None, prompt_seconds: float = 1.0,
                         temperature: float = 1.0, seed: int = 0, max_utts: int | None = None,
                         batch_size: int = 64, engine: str | None = None,
                         draws: int = 1) -> dict:
    """Phone-bigram perplexity of each source's sequences, unprompted and continued.

    Args:
        prior: a `CausalPrior` (eval mode). train, test: `CodeDump`s of the VQ-VAE the prior
            models. alignments: the training data's phones.ctm (or its Kaldi dir).
        cond: (len(test),) the test items' speakers as the prior's indices (a conditional
            prior; None: the test dump's own indices when the prior is conditional).
        prompt_seconds: the continuations' given part. temperature: the prior's.
        seed: every draw and the bootstrap. max_utts: the first this many test utterances
            (None = all). batch_size: prior sequences drawn together (not `evaluate prior
            --batch-size`, the scoring batch; which draws share a batch changes the codes
            drawn; 64 at a time draw 2.6x faster per sequence than 16 on one CPU thread).
            engine: the WaveNet sampling engine. draws: sequences each drawn source gives per
            test utterance (its length, speaker and prompt), to shrink the sampling noise;
            ``real`` is each once.
    Returns:
        ``{"samples": {"phone_bigram_ppl": {source: ppl}, "ci95": {"phone_bigram_ppl":
        {source: [low, high]}}, "sil_share": {source: share of the codes read as SIL},
        "phones_per_second": {source: phones of the strings per second of codes},
        "n_utterances", "draws_per_utterance", "n_sequences",
        "temperature", "phone_bigram_smoothing"}, "continuation": {the same, "prompt_codes",
        "prompt_seconds"}}`` for the sources of SOURCES; intervals: 95 % bootstrap over the
        test utterances (`speechvq.evaluation.bootstrap`).
    """
    from speechvq.evaluation.bootstrap import resample_counts

    if test.codebook_size != train.codebook_size or prior.codebook_size != train.codebook_size:
        raise DataError(f"the prior (K = {prior.codebook_size}) and the code dumps (train K = "
                        f"{train.codebook_size}, test K = {test.codebook_size}) must share K")
    if draws < 1:
        raise DataError(f"draws per test utterance must be at least 1, got {draws}")
    segments, phones = read_alignments(alignments)
    sil = phones.index(SIL) if SIL in phones else -1
    mapping = fit_mapping(train, segments, phones)
    index, train_utts = {p: i for i, p in enumerate(phones)}, set(train.ids)
    unknown = sorted({p for segs in segments.values() for _, _, p in segs} - set(index))
    if unknown:
        raise DataError(f"phones {unknown[:5]} of '{alignments}' are not in its phones.txt; "
                        f"add them")
    bigram = PhoneBigram([phone_string([index[p] for _, _, p in segs], sil)
                          for u, segs in segments.items() if u in train_utts], len(phones))
    ngrams = CodeNgrams(train)

    def block(seqs: Mapping[str, Sequence[np.ndarray]], utts: Sequence[int]) -> dict:
        """Perplexities and intervals; drawn sources hold `draws` sequences per utterance."""
        counts = resample_counts(len(utts), seed)
        ppl, ci, sil_share, phone_rate = {}, {}, {}, {}
        for src in SOURCES:
            units = np.arange(len(utts)) if src == "real" else np.repeat(np.arange(len(utts)),
                                                                        draws)
            read = [mapping[q] for q in seqs[src]]
            strings = [phone_string(r, sil) for r in read]
            ppl[src], ci[src] = _ppl_and_ci(bigram, strings, units, counts)
            frames = sum(len(r) for r in read)
            sil_share[src] = float(sum(int((r == sil).sum()) for r in read) / max(frames, 1))
            phone_rate[src] = float(sum(map(len, strings)) / max(frames, 1) * rate)
        return {"phone_bigram_ppl": ppl, "ci95": {"phone_bigram_ppl": ci},
                "sil_share": sil_share, "phones_per_second": phone_rate,
                "n_utterances": len(utts), "draws_per_utterance": draws,
                "n_sequences": len(utts) * draws}

    rate = float(test.meta["frame_rate_hz"])
    n = len(test) if max_utts is None else min(len(test), max_utts)
    real = [test.item(i) for i in range(n)]
    lengths = [len(r) for r in real]
    if getattr(prior, "n_classes", 0) > 0:
        cond = (test.condition_ids if cond is None else np.asarray(cond, np.int64))[:n]
    else:
        cond = None
    rep = np.repeat(np.arange(n), draws)  # drawn sequence -> its test utterance
    rep_lengths = [lengths[i] for i in rep]
    rng = np.random.default_rng([seed, 13])
    draw = {"prior": _prior_draws(prior, rep_lengths, None if cond is None else cond[rep], None,
                                  temperature, seed, batch_size, engine),
            "code_bigram": [ngrams.draw_bigram(t, rng) for t in rep_lengths],
            "unigram": [ngrams.draw_unigram(t, rng) for t in rep_lengths],
            "real": real}
    samples = {**block(draw, range(n)), "temperature": temperature,
               "phone_bigram_smoothing": SMOOTHING}

    p = int(round(prompt_seconds * rate))
    cont = [i for i in range(n) if lengths[i] > p]
    if p < 1 or not cont:
        raise DataError(f"no test utterance is longer than the {prompt_seconds} s prompt "
                        f"({p} codes); give a shorter prompt")
    c_rep = np.repeat(np.asarray(cont), draws)
    prompts = [real[i][:p] for i in c_rep]
    c_lengths = [lengths[i] for i in c_rep]
    rest = {"prior": [q[p:] for q in _prior_draws(prior, c_lengths, None if cond is None
                                                  else cond[c_rep], prompts, temperature,
                                                  seed + 1, batch_size, engine)],
            "code_bigram": [ngrams.draw_bigram(t - p, rng, int(q[-1]))
                            for t, q in zip(c_lengths, prompts)],
            "unigram": [ngrams.draw_unigram(t - p, rng) for t in c_lengths],
            "real": [real[i][p:] for i in cont]}
    return {"samples": samples,
            "continuation": {**block(rest, cont), "prompt_codes": p,
                             "prompt_seconds": prompt_seconds}}
