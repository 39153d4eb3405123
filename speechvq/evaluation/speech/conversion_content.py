"""Content of converted audio: does a conversion still say what its source said?

The converted audio is re-encoded with the model and compared with the source's codes in two
ways (`content_scores`):

- code agreement: the share of frames whose code equals the source's (frame-wise, both trimmed
  to the shorter), per file and over all frames;
- mapping accuracy: the code-to-phone mapping (van den Oord et al. 2017, arXiv 1711.00937;
  `speechvq.evaluation.speech.units.fit_code_to_phone`) of the converted codes scored against
  the source's phone alignment, beside the same accuracy of the unconverted source's codes. The
  mapping is fitted on the training data's codes when it has alignments, else on the sources'
  own codes (the result says which).

Part of `speechvq evaluate conversion` (`speechvq.evaluation.speech.conversion`).
"""

from __future__ import annotations

import numpy as np

from speechvq.data.speech.alignments import SIL
from speechvq.data.speech.utterances import Utterances
from speechvq.evaluation.speech.conversion_pairs import Conversions
from speechvq.evaluation.speech.unit_eval import phone_set
from speechvq.evaluation.speech.units import fit_code_to_phone, frame_phone_indices


def content_scores(vq, conv: Conversions, train: Utterances | None, *, batch_size: int,
                   progress: bool, train_codes: dict[str, dict[str, np.ndarray]]
                   ) -> tuple[dict, dict[str, float]]:
    """Code agreement and mapping accuracy of the conversions.

    Args:
        vq: the loaded `SpeechVQVAE` (eval mode). conv: the conversion dir
            (`speechvq.evaluation.speech.conversion_pairs.read_conversions`).
        train: ``--train`` or None; without it (or its alignments) the mapping is fitted on
            the sources.
        train_codes: training data path -> its codes, filled on first use, so several
            conversion dirs encode the training data once.
    Returns:
        (``code_agreement``, ``mapping_accuracy``, ``mapping_accuracy_source`` and
        ``mapping_fit_on``; converted utt -> (frames agreeing, frames compared, frames mapped
        to the source's phone or None without alignments, frames labelled)).
    """
    from speechvq.encode import encode_utterances

    codes_conv = encode_utterances(vq, conv.data, batch_size=batch_size, progress=progress)
    codes_src: dict[str, np.ndarray] = {}
    for data in conv.source_datas():
        mine = sorted(u for u, d in conv.sources.items() if d is data)
        codes_src.update(encode_utterances(vq, data, batch_size=batch_size, utts=mine,
                                           progress=progress))
    same = total = 0
    agree = {}
    for p in conv.pairs:
        c, s = codes_conv[p.converted], codes_src[p.source]
        n = min(len(c), len(s))
        eq = int(np.sum(c[:n] == s[:n]))
        agree[p.converted], same, total = (eq, n), same + eq, total + n
    metrics = {"code_agreement": same / max(total, 1)}
    mapped, hits = _mapping_accuracy(vq, conv, codes_conv, codes_src, train, batch_size,
                                     progress, train_codes)
    metrics.update(mapped)
    return metrics, {u: (*agree[u], *hits.get(u, (None, None))) for u in agree}


def _mapping_accuracy(vq, conv, codes_conv, codes_src, train, batch_size, progress,
                      train_codes) -> tuple[dict, dict[str, tuple[int, int]]]:
    """Mapping accuracy of converted and source codes against the sources' alignments, and
    converted utt -> (frames mapped to the source's phone, frames labelled)."""
    from speechvq.encode import encode_utterances

    src_data, sources = conv.source_datas(), conv.sources
    if any(d.phones is None for d in src_data):
        return {"mapping_accuracy": None, "mapping_accuracy_source": None,
                "mapping_fit_on": "no source alignments"}, {}
    rate = vq.sample_rate / vq.hop
    k = int(vq.quantizer.codebook.shape[0])
    fit_alg = train is not None and train.phones is not None
    phones = phone_set(*[d.phones for d in src_data], train.phones if fit_alg else None)
    labels = {p.source: frame_phone_indices(sources[p.source].segments(p.source),
                                            len(codes_src[p.source]), rate, phones, sil=SIL,
                                            utt=p.source) for p in conv.pairs}
    if fit_alg:
        key = str(train.path)
        if key not in train_codes:
            train_codes[key] = encode_utterances(vq, train, batch_size=batch_size,
                                                 progress=progress)
        fit_codes = train_codes[key]
        fit_lab = [frame_phone_indices(train.segments(u), len(c), rate, phones, sil=SIL, utt=u)
                   for u, c in fit_codes.items()]
        fit_c, fit_on = list(fit_codes.values()), str(train.path)
    else:
        fit_c, fit_lab, fit_on = [codes_src[s] for s in labels], list(labels.values()), "sources"
    mapping = fit_code_to_phone(np.concatenate(fit_c), np.concatenate(fit_lab), k, len(phones))
    hit_c = hit_s = n_c = n_s = 0
    per_utt = {}
    for p in conv.pairs:
        n = min(len(codes_conv[p.converted]), len(labels[p.source]))
        hit = int(np.sum(mapping[codes_conv[p.converted][:n]] == labels[p.source][:n]))
        per_utt[p.converted], hit_c, n_c = (hit, n), hit_c + hit, n_c + n
    for s in labels:
        hit_s += int(np.sum(mapping[codes_src[s]] == labels[s]))
        n_s += len(labels[s])
    return {"mapping_accuracy": hit_c / max(n_c, 1), "mapping_accuracy_source": hit_s / max(n_s, 1),
            "mapping_fit_on": fit_on}, per_utt
