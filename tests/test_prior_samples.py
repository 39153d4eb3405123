"""Speech samples scored by a phone bigram: phone strings, the add-one bigram, every source and
the continuations on small code dumps made on the fly."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from speechvq.data.code_dump import CodeItem, write_code_dump
from speechvq.errors import DataError
from speechvq.evaluation.speech.prior_samples import (SOURCES, PhoneBigram, phone_string,
                                                      score_speech_samples)
from speechvq.models.prior.causal import CausalPrior

PHONES = ["SIL", "AA", "B", "K"]
RATE = 10.0  # codes per second; a phone lasts 0.3 s = 3 codes, each 2 * phone or 2 * phone + 1


def test_phone_string_collapses_runs_then_drops_sil():
    assert phone_string([0, 0, 1, 1, 0, 1, 2, 2, 0], sil=0) == [1, 1, 2]


def test_phone_bigram_add_one():
    bigram = PhoneBigram([[1, 2]], n_phones=3)  # <s> 1 2 </s>; 4 outcomes per context
    assert math.isclose(bigram.perplexity([[1, 2]]), 2.5)  # each transition (1 + 1) / (1 + 4)
    assert bigram.perplexity([[2, 1]]) > bigram.perplexity([[1, 2]])


def dumps(tmp_path):
    rng = np.random.default_rng(0)
    ckpt = tmp_path / "vqvae.pt"
    ckpt.write_bytes(b"not a model")
    ctm, out = [], {}
    for split, n in (("train", 12), ("test", 5)):
        items = []
        for u in range(n):
            utt = f"s{u % 2}_{split}{u:02d}"
            phones = [0] + list(rng.integers(1, 4, 6)) + [0]
            codes = np.repeat(2 * np.asarray(phones), 3) + rng.integers(0, 2, 3 * len(phones))
            items.append(CodeItem(utt, codes, f"s{u % 2}"))
            if split == "train":
                ctm += [f"{utt} 1 {0.3 * i:.3f} 0.300 {PHONES[p]}" for i, p in enumerate(phones)]
        out[split] = write_code_dump(tmp_path / split, items, modality="speech", codebook_size=8,
                                     conditions=["s0", "s1"], checkpoint=ckpt,
                                     source=tmp_path, frame_rate_hz=RATE)
    (tmp_path / "phones.ctm").write_text("\n".join(sorted(ctm)) + "\n")
    return out["train"], out["test"], tmp_path / "phones.ctm"


@pytest.mark.usefixtures("one_thread")
def test_score_speech_samples_every_source(tmp_path):
    train, test, ctm = dumps(tmp_path)
    torch.manual_seed(0)
    cfg = SimpleNamespace(arch="wavenet", channels=8, layers=2, kernel_size=2, dilation_cycle=2,
                          dropout=0.0, conditional=True)
    prior = CausalPrior.from_config(cfg, codebook_size=8, n_classes=2).eval()
    scores = score_speech_samples(prior, train, test, ctm, prompt_seconds=1.0, engine="eager")
    for block in ("samples", "continuation"):
        assert set(scores[block]["phone_bigram_ppl"]) == set(SOURCES)
        assert all(v > 1.0 for v in scores[block]["phone_bigram_ppl"].values())
    # real codes read through the map are the training grammar's phones: better than unigram's
    ppl = scores["samples"]["phone_bigram_ppl"]
    assert ppl["real"] < ppl["unigram"]
    assert scores["samples"]["n_sequences"] == 5
    assert scores["continuation"]["prompt_codes"] == 10
    again = score_speech_samples(prior, train, test, ctm, prompt_seconds=1.0, engine="eager")
    assert again == scores  # seeded
    for block in ("samples", "continuation"):  # 95 % intervals around every figure
        for source, (lo, hi) in scores[block]["ci95"]["phone_bigram_ppl"].items():
            assert lo <= scores[block]["phone_bigram_ppl"][source] <= hi
    more = score_speech_samples(prior, train, test, ctm, prompt_seconds=1.0, engine="eager",
                                draws=3)
    assert more["samples"]["n_sequences"] == 15 and more["samples"]["n_utterances"] == 5
    assert more["samples"]["phone_bigram_ppl"]["real"] == ppl["real"]  # real: each utterance once
    with pytest.raises(DataError, match="prompt"):
        score_speech_samples(prior, train, test, ctm, prompt_seconds=100.0)
    with pytest.raises(DataError, match="alignments"):
        score_speech_samples(prior, train, test, tmp_path / "missing.ctm")
