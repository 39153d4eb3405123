"""`speechvq evaluate conversion`: objective voice-conversion scores of a conversion data dir.

The conversions of `speechvq convert --data ... --out DIR` form a Kaldi dir whose ``utt2spk`` is
the target speaker and ``utt2src`` the source utterance. Three questions, each answered beside
the number that says whether the answer means anything:

1. Speaker: a speaker-ID classifier (utterance-level mean and standard deviation of log-mel and
   MFCC frames, standardised, multinomial logistic regression; scikit-learn) is trained on real
   training audio (``--train``). Its accuracy on held-out real audio comes first: the reference
   data's real utterances of the training speakers when it has any, else a seeded 20 % split of
   the training utterances. Then the share of converted files it assigns to the target speaker,
   and to the source speaker (over sources the classifier knows).
2. Content: the converted audio is re-encoded with the model; the code agreement with the
   source's codes (frame-wise, both trimmed to the shorter), and the code-to-phone mapping
   accuracy (van den Oord et al. 2017) of the converted codes against the source's alignment,
   with the mapping fitted on the training data's codes (or the sources' own when the training
   data has no alignment), beside the same accuracy of the unconverted source's codes.
3. Quality: mel-cepstral distortion (`speechvq.evaluation.speech.mcd`, Kubichek 1993; order 24,
   alpha 0.42, 5 ms, DTW, c0 and silent frames excluded) between each converted file and the
   target speaker's real reading of the same sentence in ``--ref`` (same ``text``; files without
   one are skipped and counted); beside it the source-to-target MCD of the unconverted source
   (baseline) and a topline: two real readings of the sentence by the target when the reference
   has them (``--ref`` takes several dirs, e.g. the built-in corpus's ``test`` and
   ``test_reread``), else the target's reading against another training speaker's reading (the
   result says which).

Writes ``EXP/eval/conversion_<name>.json``: ``conversion.<name>.<metric>``, ``command``, ``data``
and ``details`` (per-utterance scores, and the source / converted / target triples the report
draws spectrograms of).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechvq.data.speech.kaldi import DataDir
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError
from speechvq.evaluation.speech.mcd import mcd
from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)
from speechvq.evaluation.speech.units import fit_code_to_phone, frame_phone_indices
from speechvq.data.speech.alignments import SIL
from speechvq.evaluation.speech.unit_eval import phone_set

N_MFCC = 13
SPEECH_RANGE = 5.0  # frames more than this (nats of mean log-mel, ~43 dB) below the loudest drop


def speaker_features(wav: np.ndarray, data_cfg) -> np.ndarray:
    """Utterance-level speaker features: mean and std of log-mel and MFCC frames.

    Frames whose mean log-mel lies more than `SPEECH_RANGE` below the loudest frame's are left
    out, so the statistics describe the voice, not the pauses.

    Args:
        wav: (T,) float waveform at ``data_cfg.sample_rate``.
        data_cfg: a `speechvq.config.DataConfig` (the model's log-mel parameters).
    Returns:
        (2 * (n_mels + 13),) float64: [mean log-mel, mean MFCC, std log-mel, std MFCC].
    """
    from speechvq.audio import dct_matrix, log_mel_cfg

    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))  # (T,)
    lm = log_mel_cfg(x, data_cfg).double()  # (M, F)
    m = lm.shape[0]
    dct = dct_matrix(N_MFCC, m, lm.device, torch.float64)  # (13, M), as speechvq.audio.mfcc
    feats = torch.cat([lm, dct @ lm]).numpy()  # (M + 13, F)
    level = feats[:m].mean(0)  # (F,)
    speech = feats[:, level >= level.max() - SPEECH_RANGE]  # (M + 13, F')
    return np.concatenate([speech.mean(1), speech.std(1)])


def train_speaker_classifier(features: np.ndarray, speakers: Sequence[str], seed: int = 0):
    """StandardScaler + multinomial LogisticRegression (scikit-learn) on utterance features.

    Args:
        features: (N, F) from `speaker_features`. speakers: (N,) labels.
    Returns:
        The fitted pipeline (``predict``, ``classes_``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(speakers)) < 2:
        raise DataError("speaker identification needs real audio of at least two speakers in "
                        "--train; give the training data")
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0,
                                                             random_state=seed))
    return clf.fit(np.asarray(features), list(speakers))


def heldout_split(utts: Sequence[str], speakers: Sequence[str], fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[str], list[str]]:
    """Seeded per-speaker split: about `fraction` of each speaker's utterances (at least one,
    when the speaker has two or more) are held out. Returns: (train utts, held-out utts)."""
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for u, s in zip(utts, speakers):
        by_spk[s].append(u)
    held = set()
    for s in sorted(by_spk):
        us = sorted(by_spk[s])
        n = min(len(us) - 1, max(1, int(round(fraction * len(us)))))
        held.update(rng.permutation(us)[:n].tolist() if n > 0 else [])
    return [u for u in utts if u not in held], [u for u in utts if u in held]


class _Audio:
    """Speaker features, waveforms and real-vs-real MCDs of (data dir, utt), each computed once
    per `evaluate conversion` call (the baselines and toplines of several conversion dirs share
    their sources and targets)."""

    def __init__(self, data_cfg):
        self.cfg = data_cfg
        self._feats: dict[tuple[str, str], np.ndarray] = {}
        self._wavs: dict[tuple[str, str], np.ndarray] = {}
        self._mcds: dict[tuple, float] = {}
        # what depends only on the training data (classifier, its codes), kept across the
        # conversion dirs of one `evaluate conversion` call
        self.memo: dict[tuple, object] = {}

    def features(self, data: Utterances, utts: Sequence[str], progress: bool, desc: str):
        out = []
        for u in tqdm(utts, desc=desc, unit="utt", disable=not progress):
            key = (str(data.path), u)
            if key not in self._feats:
                self._feats[key] = speaker_features(data.waveform(u), self.cfg)
            out.append(self._feats[key])
        return np.stack(out)  # (N, F)

    def wav(self, data: Utterances, utt: str) -> np.ndarray:
        key = (str(data.path), utt)
        if key not in self._wavs:
            self._wavs[key] = data.waveform(utt)
        return self._wavs[key]

    def mcd(self, a: tuple[Utterances, str], b: tuple[Utterances, str], sr: int) -> float:
        """MCD between two real recordings (data, utt), memoised."""
        key = ((str(a[0].path), a[1]), (str(b[0].path), b[1]))
        if key not in self._mcds:
            self._mcds[key] = mcd(self.wav(*a), self.wav(*b), sr)
        return self._mcds[key]


def _find_sources(src_utts: set[str], candidates: list[Path], sample_rate: int
                  ) -> dict[str, Utterances]:
    """Source utt -> the first candidate data (dump or Kaldi dir) that holds it."""
    found: dict[str, Utterances] = {}
    for path in candidates:
        missing = src_utts - set(found)
        if not missing:
            break
        data = Utterances(path, sample_rate, "--src")
        for u in missing & set(data.utts):
            found[u] = data
    return found


def _norm(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


def _speaker_id(audio, clf_data, heldout, conv, pairs, progress) -> dict:
    """Train the classifier, score it on held-out real audio, then on the conversions."""
    (train_data, train_utts), (held_data, held_utts, held_kind) = clf_data, heldout
    key = ("classifier", str(train_data.path), tuple(train_utts))
    if key not in audio.memo:
        x = audio.features(train_data, train_utts, progress, "speaker features (train)")
        audio.memo[key] = train_speaker_classifier(x, [train_data.speaker(u) for u in train_utts])
    clf = audio.memo[key]
    classes = set(clf.classes_)
    xh = audio.features(held_data, held_utts, progress, "speaker features (held out)")
    truth = [held_data.speaker(u) for u in held_utts]
    acc = float(np.mean(clf.predict(xh) == np.asarray(truth)))
    pred = clf.predict(audio.features(conv, [c for c, _, _, _ in pairs], progress,
                                      "speaker features (converted)"))
    tgt = np.array([t for _, _, t, _ in pairs])
    src_spk = np.array([s for _, _, _, s in pairs])
    seen = np.array([s in classes for s in src_spk])
    return {"speaker_id_heldout_accuracy": acc, "speaker_id_heldout_set": held_kind,
            "speaker_id_n_heldout": len(held_utts), "speaker_id_n_train": len(train_utts),
            "speaker_id_n_speakers": len(classes),
            "speaker_id_target": float(np.mean(pred == tgt)),
            "speaker_id_source": float(np.mean(pred[seen] == src_spk[seen])) if seen.any()
            else None,
            "n_seen_sources": int(seen.sum()),
            "n_targets_unknown_to_classifier": int(sum(t not in classes for t in tgt)),
            "_pred": pred.tolist()}


def evaluate_conversions(converted: Sequence[str | os.PathLike],
                         ref: str | os.PathLike | Sequence[str | os.PathLike],
                         model: str | os.PathLike, *, names: Sequence[str | None] | None = None,
                         checkpoint: str | None = None, device: str = "auto",
                         **kwargs) -> list[dict]:
    """`evaluate_conversion` of several conversion dirs against one ``ref``: the model is loaded,
    and the speaker classifier and the training codes are computed, once for all of them.

    ``names`` (one per dir, default each dir's folder name); other arguments as
    `evaluate_conversion`. Returns one result per dir, in order.
    """
    from speechvq.encode import load_vqvae, pick_device

    converted = [converted] if isinstance(converted, (str, os.PathLike)) else list(converted)
    refs = _unique_dirs([ref] if isinstance(ref, (str, os.PathLike)) else list(ref))
    if not converted or not refs:
        raise DataError("give at least one conversion dir (--data) and one reference dir (--ref)")
    names = list(names) if names is not None else [None] * len(converted)
    if len(names) != len(converted):
        raise DataError(f"{len(names)} names for {len(converted)} conversion dirs; give one name "
                        f"per --data, or none")
    # every name checked before anything is scored, so a bad one costs nothing
    names = [check_name(n.strip() if n else default_name(c)) for c, n in zip(converted, names)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"two conversion dirs would both be written as conversion_{twice[0]}.json;"
                        f" give each its own name with --name a,b")
    vq = load_vqvae(model, checkpoint=checkpoint, device=pick_device(device))
    audio = _Audio(vq.cfg.data)
    return [_evaluate_one(c, refs, model, vq, audio, name=n, checkpoint=checkpoint,
                          device=device, **kwargs)
            for c, n in zip(converted, names)]


def _unique_dirs(paths: list) -> list:
    """``paths`` without repeats (by resolved path): a dir given twice would pair each reading
    with itself and fake a 0 dB topline."""
    seen, out = set(), []
    for p in paths:
        key = Path(p).resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def evaluate_conversion(converted: str | os.PathLike,
                        ref: str | os.PathLike | Sequence[str | os.PathLike],
                        model: str | os.PathLike, *, train: str | os.PathLike | None = None,
                        src: str | os.PathLike | None = None, name: str | None = None,
                        exp_dir: str | os.PathLike | None = None, checkpoint: str | None = None,
                        device: str = "auto", batch_size: int = 8, seed: int = 0,
                        n_spectrograms: int = 3, progress: bool = True) -> dict:
    """`speechvq evaluate conversion --data CONVERTED --ref DATA --model M [--train DATA]`.

    Args:
        converted: the conversion data dir (``utt2src`` required).
        ref: real recordings (dump or Kaldi dir with ``text``) holding the targets' readings,
            or several: the first also gives the speaker classifier's held-out set, the others
            only add readings (a second reading by the target is the MCD topline).
        model: exp dir or ``.pt`` (re-encodes the audio; its log-mel settings give the features).
        train: real training audio for the speaker classifier and the code-to-phone mapping
            (default: the first ``ref``, with a seeded held-out split).
        src: where the source utterances are (default: looked up in ``ref``, ``train``, then the
            data dirs beside ``ref``).
        name: result name (default: CONVERTED's folder name); exp_dir: default the model's.
        seed: classifier and split seed; n_spectrograms: triples kept for the report's figure.
    Returns:
        The JSON written to ``EXP/eval/conversion_<name>.json`` (with ``output``, its path).
    """
    return evaluate_conversions([converted], ref, model, names=[name], train=train, src=src,
                                exp_dir=exp_dir, checkpoint=checkpoint, device=device,
                                batch_size=batch_size, seed=seed, n_spectrograms=n_spectrograms,
                                progress=progress)[0]


def _evaluate_one(converted, refs, model, vq, audio, *, train=None, src=None, name=None,
                  exp_dir=None, checkpoint=None, device="auto", batch_size=8, seed=0,
                  n_spectrograms=3, progress=True) -> dict:
    from speechvq.encode import encode_utterances

    ref, *more_refs = refs  # further real readings (second takes): MCD targets, toplines only

    name = check_name(name or default_name(converted))
    exp = resolve_exp_dir(model, exp_dir)
    sr = vq.sample_rate
    cdir = DataDir.load(converted)
    if not cdir.utt2src:
        raise DataError(f"'{converted}' has no utt2src, so its sources are unknown; give the "
                        "output dir of `speechvq convert --data ... --out DIR`")
    conv = Utterances(converted, sr)
    ref_u = Utterances(ref, sr, "--ref")
    ref_all = [ref_u] + [Utterances(r, sr, "--ref") for r in more_refs]
    train_u = Utterances(train, sr, "--train") if train is not None else None
    candidates = [Path(src)] if src is not None else [Path(r) for r in [ref, *more_refs]] + (
        [Path(train)] if train is not None else []) + sorted(
        p for p in Path(ref).parent.iterdir()
        if p.resolve() not in {Path(r).resolve() for r in [ref, *more_refs]}
        and p.resolve() != Path(converted).resolve()
        and ((p / "wav.scp").exists() or (p / "dump.json").exists()))
    sources = _find_sources(set(cdir.utt2src.values()), candidates, sr)
    lost = sorted(set(cdir.utt2src.values()) - set(sources))
    if lost:
        raise DataError(f"source utterance {lost[0]!r} of '{converted}' is in none of "
                        f"{', '.join(map(str, candidates))}; pass --src DATA (the data given to "
                        f"`speechvq convert`)")
    pairs = [(c, cdir.utt2src[c], conv.speaker(c), sources[cdir.utt2src[c]].speaker(
        cdir.utt2src[c])) for c in conv.utts]  # (converted, source, target, source speaker)

    # 1. speaker identification ---------------------------------------------------------------
    base = train_u if train_u is not None else ref_u
    base_spk = [base.speaker(u) for u in base.utts]
    known, fitted = set(base_spk), set(base.utts)
    held_ref = [u for u in ref_u.utts if ref_u.speaker(u) in known
                and u not in fitted] if train_u is not None else []
    if held_ref:
        clf_data, heldout = (base, list(base.utts)), (ref_u, held_ref, f"ref ({ref})")
    else:
        fit_utts, held = heldout_split(base.utts, base_spk, 0.2, seed)
        if not held:
            raise DataError(f"'{base.path}' has too few real utterances per speaker to hold any "
                            "out for the speaker classifier; give --train with the training "
                            "data")
        clf_data, heldout = (base, fit_utts), (base, held, f"seeded 20% split of {base.path}")
    metrics = {"n_converted": len(pairs)}
    sid = _speaker_id(audio, clf_data, heldout, conv, pairs, progress)
    predicted = sid.pop("_pred")
    metrics.update(sid)

    # 2. content -------------------------------------------------------------------------------
    codes_conv = encode_utterances(vq, conv, batch_size=batch_size, progress=progress)
    codes_src: dict[str, np.ndarray] = {}
    for data in {id(d): d for d in sources.values()}.values():
        mine = sorted(u for u, d in sources.items() if d is data)
        codes_src.update(encode_utterances(vq, data, batch_size=batch_size, utts=mine,
                                           progress=progress))
    same = total = 0
    agree = {}
    for c, s, _, _ in pairs:
        n = min(len(codes_conv[c]), len(codes_src[s]))
        eq = int(np.sum(codes_conv[c][:n] == codes_src[s][:n]))
        agree[c], same, total = eq / max(n, 1), same + eq, total + n
    metrics["code_agreement"] = same / max(total, 1)
    metrics.update(_content_mapping(vq, pairs, sources, codes_conv, codes_src, train_u,
                                    batch_size, progress, audio.memo))

    # 3. MCD -----------------------------------------------------------------------------------
    per_utt, spectro = _mcd_block(audio, metrics, pairs, conv, sources, ref_all, train_u, vq,
                                  n_spectrograms, converted, progress)
    for row, pred in zip(per_utt, predicted):
        row.update(predicted_speaker=pred, code_agreement=agree[row["utt"]])

    result = {
        "conversion": {name: metrics},
        "command": command_line(["speechvq", "evaluate", "conversion", "--model", str(model),
                                 "--checkpoint", checkpoint, "--data", str(converted),
                                 "--ref", *map(str, [ref, *more_refs]), "--train",
                                 None if train is None else str(train),
                                 "--src", None if src is None else str(src), "--name", name,
                                 "--exp", None if exp_dir is None else str(exp),
                                 "--batch-size", batch_size, "--device", device,
                                 "--seed", seed]),
        "data": {"converted": str(converted), "ref": str(ref),
                 "more_refs": [str(r) for r in more_refs],
                 "train": None if train is None else str(train), "model": str(model),
                 "checkpoint": checkpoint,
                 "sources": sorted({str(d.path) for d in sources.values()})},
        "details": {"sample_rate": sr, "utterances": per_utt, "spectrograms": spectro},
    }
    write_result(exp, "conversion", name, result)
    return result


def _content_mapping(vq, pairs, sources, codes_conv, codes_src, train_u, batch_size,
                     progress, memo) -> dict:
    """Mapping accuracy of converted and source codes against the sources' alignments."""
    from speechvq.encode import encode_utterances

    src_data = {id(d): d for d in sources.values()}.values()
    if any(d.phones is None for d in src_data):
        return {"mapping_accuracy": None, "mapping_accuracy_source": None,
                "mapping_fit_on": "no source alignments"}
    rate = vq.sample_rate / vq.hop
    k = int(vq.quantizer.codebook.shape[0])
    fit_alg = train_u is not None and train_u.phones is not None
    phones = phone_set(*[d.phones for d in src_data], train_u.phones if fit_alg else None)
    labels = {s: frame_phone_indices(sources[s].segments(s), len(codes_src[s]), rate, phones,
                                     sil=SIL, utt=s) for _, s, _, _ in pairs}
    if fit_alg:
        key = ("codes", str(train_u.path))
        if key not in memo:
            memo[key] = encode_utterances(vq, train_u, batch_size=batch_size, progress=progress)
        fit_codes = memo[key]
        fit_lab = [frame_phone_indices(train_u.segments(u), len(c), rate, phones, sil=SIL,
                                       utt=u) for u, c in fit_codes.items()]
        fit_c, fit_on = list(fit_codes.values()), str(train_u.path)
    else:
        fit_c, fit_lab, fit_on = [codes_src[s] for s in labels], list(labels.values()), "sources"
    mapping = fit_code_to_phone(np.concatenate(fit_c), np.concatenate(fit_lab), k, len(phones))
    hit_c = hit_s = n_c = n_s = 0
    for c, s, _, _ in pairs:
        n = min(len(codes_conv[c]), len(labels[s]))
        hit_c += int(np.sum(mapping[codes_conv[c][:n]] == labels[s][:n]))
        n_c += n
    for s in labels:
        hit_s += int(np.sum(mapping[codes_src[s]] == labels[s]))
        n_s += len(labels[s])
    return {"mapping_accuracy": hit_c / max(n_c, 1), "mapping_accuracy_source": hit_s / max(n_s, 1),
            "mapping_fit_on": fit_on}


def _mcd_block(audio, metrics, pairs, conv, sources, ref_all, train_u, vq, n_spectrograms,
               converted, progress):
    """MCD of every converted file with a parallel target reading, its baseline and topline."""
    sr = vq.sample_rate
    readings = defaultdict(list)  # (speaker, text) -> [(data, utt)]
    for data in ref_all + ([train_u] if train_u is not None else []):
        for u in data.utts:
            readings[(data.speaker(u), _norm(data.text(u)))].append((data, u))
    by_text = defaultdict(list)
    for (spk, text), items in readings.items():
        by_text[text] += [(spk, d, u) for d, u in items]
    toplines: dict[tuple[str, str], tuple[float | None, str | None]] = {}
    rows, spectro, skipped = [], [], 0
    for c, s, tgt, src_spk in tqdm(pairs, desc="mcd", unit="utt", disable=not progress):
        text = _norm(conv.text(c) or sources[s].text(s))
        row = {"utt": c, "source": s, "target": tgt, "mcd_db": None, "mcd_baseline_db": None,
               "mcd_topline_db": None}
        rows.append(row)
        refs = [(d, u) for d, u in readings.get((tgt, text), [])
                if any(d is r for r in ref_all) and u != s]
        if text is None or not refs:
            skipped += 1
            continue
        d_t, u_t = refs[0]
        row["mcd_db"] = mcd(audio.wav(d_t, u_t), audio.wav(conv, c), sr)
        row["mcd_baseline_db"] = audio.mcd((d_t, u_t), (sources[s], s), sr)
        if (tgt, text) not in toplines:
            toplines[(tgt, text)] = _topline(audio, refs, by_text[text], tgt, src_spk,
                                             vq.speakers, sr)
        row["mcd_topline_db"], row["topline"] = toplines[(tgt, text)]
        if len(spectro) < n_spectrograms:
            spectro.append({"utt": c, "text": text,
                            "source": {"data": str(sources[s].path.resolve()), "utt": s},
                            "converted": {"data": str(Path(converted).resolve()), "utt": c},
                            "target": {"data": str(d_t.path.resolve()), "utt": u_t}})
    scored = [r for r in rows if r["mcd_db"] is not None]
    tops = [r for r in scored if r["mcd_topline_db"] is not None]
    kinds = sorted({r["topline"] for r in tops})
    metrics.update(
        mcd_db=float(np.mean([r["mcd_db"] for r in scored])) if scored else None,
        mcd_baseline_db=float(np.mean([r["mcd_baseline_db"] for r in scored])) if scored else None,
        mcd_topline_db=float(np.mean([r["mcd_topline_db"] for r in tops])) if tops else None,
        mcd_topline="; ".join(f"{k} ({sum(r['topline'] == k for r in tops)})" for k in kinds)
        or None,
        n_mcd=len(scored), n_no_parallel=skipped, n_topline=len(tops))
    return rows, spectro


def _topline(audio, refs, same_text, tgt, src_spk, train_speakers, sr):
    """(MCD, kind): two real readings by the target, else the target vs another training
    speaker's reading of the sentence (not the source speaker when another exists)."""
    # a second reading is another utterance id: the same id in two dirs is the same recording
    second = next(((d, u) for d, u in refs[1:] if u != refs[0][1]), None)
    if second is not None:
        return audio.mcd(refs[0], second, sr), "two readings by the target"
    others = [(spk, d, u) for spk, d, u in same_text if spk != tgt and spk in train_speakers]
    others.sort(key=lambda x: (x[0] == src_spk, x[0], x[2]))
    if not others:
        return None, None
    _, d, u = others[0]
    return audio.mcd(refs[0], (d, u), sr), "target vs another training speaker"


def format_conversion(result: dict) -> str:
    """The conversion block(s) of a result as readable lines (percent with one decimal, dB),
    one per metric of `speechvq.evaluation.speech.metrics.conversion_rows`."""
    from speechvq.evaluation.speech.metrics import conversion_rows

    lines = []
    for name, m in result["conversion"].items():
        lines.append(f"conversion {name}: {m.get('n_converted')} converted files")
        lines += [f"  {c.label:<46} {c.show(m.get(c.name))}" + (f"  ({note})" if note else "")
                  for c, note in conversion_rows(m)]
    return "\n".join(lines)
