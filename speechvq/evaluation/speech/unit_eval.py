"""`speechvq evaluate units`: score a model's codes, or any system's units, against alignments.

Two entry points, both writing ``EXP/eval/units_<name>.json`` (`speechvq.evaluation.results`):

- `evaluate_units_model`: encode DATA (and FIT_ON, where the code-to-phone mapping is fitted;
  default DATA itself) with a VQ-VAE, label every code frame with the phone at its centre
  (DESIGN.md timing), and score the VQ-VAE beside three baselines on the same frames, fitted the
  same way (majority phone, uniformly random codes, MFCC+deltas k-means with the same K): mapping
  accuracy (van den Oord et al. 2017), purity and PNMI (Hsu et al. 2021), perplexity, codes used,
  ZeroSpeech 2019 bitrate (`speechvq.evaluation.speech.units`), and ABX within and across
  speakers as the ZeroSpeech tool computes it (`speechvq.evaluation.speech.abx`; centre-phone
  items by default, ``abx_items`` names the span) on the encoder outputs z_e, on the code
  embeddings (``codebook[codes]``) and, for the MFCC baseline, on its MFCC+deltas frames; on
  request the ``.item`` file and those features, for the tool itself
  (`speechvq.evaluation.speech.abx_export`).
- `evaluate_units_file`: units from any system (``--units FILE --frame-rate R``) against
  alignments (a data dir, a dump, or a CTM file); deduplicated units are refused.

The JSON holds ``units.<name>`` (DESIGN.md: ``<system>.<metric>`` plus ``frame_rate_hz``,
``codebook_size``, ``fit_on``, ``n_phones``), ``command``, ``data`` and ``details`` (code counts,
the code-by-phone co-occurrence matrix and the fitted mapping, for the report's figures).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np
from speechvq.progress import tqdm

from speechvq.checkpoint import resolve_checkpoint
from speechvq.data.speech.alignments import SIL
from speechvq.data.codes import check_frame_level, read_units
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import ConfigError, DataError
from speechvq.evaluation.speech.abx import SPANS, ABXResult, abx, abx_items
from speechvq.evaluation.speech.abx_export import write_abx_inputs
from speechvq.evaluation.speech.baselines import (fit_mfcc_kmeans, kmeans_codes, majority_codes,
                                           mfcc_deltas_frames, random_codes)
from speechvq.evaluation.results import (check_name, command_line, default_name,
                                         resolve_exp_dir, write_result)
from speechvq.evaluation.speech.metrics import unit_columns
from speechvq.evaluation.speech.units import (cooccurrence, fit_code_to_phone,
                                              frame_phone_indices, label_free_units,
                                              units_report)

MAX_FIT_FRAMES = 200_000  # k-means fitting frames (seeded sample above this)


def _no_alignments(path) -> DataError:
    return DataError(f"unit scoring needs phone alignments (phones.ctm + phones.txt) and "
                     f"'{path}' has none; give a Kaldi dir with phones.ctm (or a dump made from "
                     f"one), or score units of another system with --units FILE --frame-rate R "
                     f"--alignments CTM")


def frame_labels_for(segments: Mapping[str, list], n_frames: Mapping[str, int],
                     frame_rate_hz: float, phones: Sequence[str]) -> dict[str, np.ndarray]:
    """Phone index per frame for every utterance that has both frames and a non-empty alignment.

    Args:
        segments: utt -> [(start_s, dur_s, phone)]. n_frames: utt -> number of unit frames.
        frame_rate_hz: units per second. phones: the inventory (index order).
    Returns:
        utt -> (n_frames,) int64, in the order of ``n_frames``.
    """
    return {u: frame_phone_indices(segments[u], n, frame_rate_hz, phones, sil=SIL, utt=u)
            for u, n in n_frames.items() if segments.get(u)}


def _alignments(data: Utterances) -> dict[str, list]:
    if data.phones is None:
        raise _no_alignments(data.path)
    return {u: data.segments(u) for u in data.utts}


def phone_set(*inventories: Sequence[str] | None) -> list[str]:
    """One phone inventory for several data sets: SIL first, then every other phone in order of
    first appearance over the inventories."""
    out = [SIL]
    for inv in inventories:
        for p in inv or ():
            if p not in out:
                out.append(p)
    return out


def _scored(labels: dict[str, np.ndarray], what) -> list[str]:
    if not labels:
        raise DataError(f"no utterance of '{what}' has both units and a phone alignment; check "
                        "that the utterance ids of the units and of phones.ctm match")
    return list(labels)


def _details(codes: dict, labels: dict, mapping: np.ndarray, k: int, phones: list[str]) -> dict:
    c = np.concatenate([codes[u] for u in labels])  # (N,)
    lab = np.concatenate([labels[u] for u in labels])  # (N,)
    return {"phones": list(phones), "code_counts": np.bincount(c, minlength=k).tolist(),
            "cooccurrence": cooccurrence(c, lab, k, len(phones)).tolist(),
            "mapping": [phones[int(i)] for i in mapping]}


class _ABXSettings(NamedTuple):
    """`evaluate_units_model`'s ABX arguments, passed on as one."""

    max_triplets: int
    items: str
    export: str | os.PathLike | None


def _put_abx(system: dict, prefix: str, result: ABXResult, span: str) -> None:
    """ABX figures into a system's block: ``<prefix>within`` and ``<prefix>across`` (error
    rates), their triplet counts, ``abx_items`` (the span), ``<prefix>sampled`` (true when a
    condition scored a sample of its triplets) and ``ci95.<prefix>within`` = [low, high] (the
    bootstrap over items)."""
    system["abx_items"] = span
    system[f"{prefix}sampled"] = False
    for cond, score in (("within", result.within), ("across", result.across)):
        system[f"{prefix}{cond}"] = score.error
        system[f"{prefix}n_triplets_{cond}"] = score.n_triplets
        system[f"{prefix}sampled"] |= score.n_triplets < score.n_population
        if score.ci95 is not None:
            system.setdefault("ci95", {})[f"{prefix}{cond}"] = list(score.ci95)


def _mfcc_features(data: Utterances, utts: Sequence[str], hop: int, n_frames: Mapping[str, int],
                   progress: bool, lengths: dict | None = None) -> dict[str, np.ndarray]:
    """MFCC+deltas pooled to the unit frames, trimmed or edge-padded to the units' frame count;
    `lengths` (when given) receives each waveform's length in samples."""
    out = {}
    for u in tqdm(utts, desc=f"mfcc {data.path.name}", unit="utt", disable=not progress):
        wav = data.waveform(u)  # (T,)
        if lengths is not None:
            lengths[u] = len(wav)
        f = mfcc_deltas_frames(wav, data.sample_rate, hop)  # (ceil(T / hop), 39)
        n = n_frames[u]
        out[u] = f[:n] if len(f) >= n else np.concatenate([f, np.repeat(f[-1:], n - len(f), 0)])
    return out


def _systems(main: str, codes_eval, labels_eval, k, seed, fit: "_FitSide | None" = None,
             feats_eval=None):
    """{system: (codes_eval, codes_fit or None)} for units_report (fit None = fit on eval):
    the scored units under the name `main` ("vqvae", or "units" for a units file), then the
    baselines."""
    ev = [len(labels_eval[u]) for u in labels_eval]
    fi = None if fit is None else [len(fit.labels[u]) for u in fit.labels]
    systems = {
        main: ([codes_eval[u] for u in labels_eval],
               None if fit is None else [fit.codes[u] for u in fit.labels]),
        "majority": (majority_codes(ev), None if fit is None else majority_codes(fi)),
        "random": (random_codes(ev, k, seed), None if fit is None else random_codes(fi, k, seed + 1)),
    }
    if feats_eval is not None:
        eval_feats = [feats_eval[u] for u in labels_eval]
        if fit is None:  # k-means fitted on the scored frames themselves
            systems["mfcc_kmeans"] = (_kmeans(eval_feats, k, seed)[1], None)
        else:
            systems["mfcc_kmeans"] = (kmeans_codes(fit.kmeans, eval_feats), fit.kmeans_codes)
    return systems


def _kmeans(feats: list[np.ndarray], k: int, seed: int) -> tuple[object, list[np.ndarray]]:
    """The MFCC k-means baseline fitted on `feats`, and their codes."""
    km = fit_mfcc_kmeans(feats, k, seed, max_fit_frames=MAX_FIT_FRAMES)
    return km, kmeans_codes(km, feats)


class _FitSide(NamedTuple):
    """What --fit-on gives every scored split: codes, frame labels, the MFCC k-means."""

    codes: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    kmeans: object
    kmeans_codes: list[np.ndarray]


def _fit_side(vq, fit: Utterances, fit_on, phones, rate, k, seed, batch_size,
              progress, encode: "_Encode") -> _FitSide:
    seg_fit = _alignments(fit)
    codes = encode(fit, fit_on, f"fit_{default_name(fit_on)}", False)
    labels = frame_labels_for(seg_fit, {u: len(c) for u, c in codes.items()}, rate, phones)
    _scored(labels, fit_on)
    feats = _mfcc_features(fit, list(labels), vq.hop, {u: len(v) for u, v in labels.items()},
                           progress)
    return _FitSide(codes, labels, *_kmeans([feats[u] for u in labels], k, seed))


def evaluate_units_model(model: str | os.PathLike,
                         data: str | os.PathLike | Sequence[str | os.PathLike], *,
                         fit_on: str | os.PathLike | None = None, name: str | None = None,
                         exp_dir: str | os.PathLike | None = None, checkpoint: str | None = None,
                         batch_size: int = 8, abx_max_triplets: int = 5000,
                         abx_items: str = "phone", export_abx: str | os.PathLike | None = None,
                         seed: int = 0, device: str = "auto", progress: bool = True,
                         nj: int = 1, cmd: str | None = None) -> dict | list[dict]:
    """`speechvq evaluate units --model M --data DATA [DATA ...] [--fit-on FIT]`.

    The VQ-VAE and the baselines are scored on each DATA; everything fitted on FIT_ON (its codes
    and labels, the MFCC k-means) is computed once and shared by every DATA.

    Args:
        model: exp dir or ``.pt`` checkpoint (``checkpoint`` picks another in an exp dir).
        data: the scored utterances (dump or Kaldi dir) with phone alignments; or several.
        fit_on: where the code-to-phone mappings and the MFCC k-means are fitted (default: each
            DATA itself; the result's ``fit_on`` says ``eval`` then).
        name: result name of a single DATA (default: DATA's folder name); exp_dir: default the
            model's exp dir.
        batch_size: utterances per encoder batch.
        abx_max_triplets: ABX triplets enumerated per condition, else sampled
            (`speechvq.evaluation.speech.abx.abx`); abx_items: their span (``phone``, ``triphone``);
            export_abx: a folder for the ZeroSpeech tool's inputs (`write_abx_inputs`), or None.
        seed: random baseline, k-means and ABX sampling; device: ``auto``, ``cpu``, ``cuda:N``.
        nj, cmd: encode in `nj` parallel jobs (`speechvq.encode_jobs`; ``cmd`` the ``--cmd``
            prefix), logs in ``EXP/eval/log/encode_<name>.JOB.log``; everything fitted or scored
            (mapping, k-means, ABX) is computed once here, and the results are the same.
    Returns:
        The JSON written to ``EXP/eval/units_<name>.json`` (with ``output``, its path); a list of
        them, in DATA order, when several DATA are given.
    """
    from speechvq.encode import load_vqvae, pick_device

    several = not isinstance(data, (str, os.PathLike))
    datas = list(data) if several else [data]
    if name is not None and len(datas) > 1:
        raise ConfigError("--name names one result; give one --data with it, or leave it out "
                          "(each result is named after its data folder)")
    names = [check_name(name or default_name(d)) for d in datas]
    if abx_items not in SPANS:
        raise ConfigError(f"--abx-items {abx_items!r} is unknown; use one of {', '.join(SPANS)}")
    exp = resolve_exp_dir(model, exp_dir)
    vq = load_vqvae(model, checkpoint=checkpoint, device=pick_device(device))
    evs = [Utterances(d, vq.sample_rate) for d in datas]
    # every DATA is checked before any work; one without alignments gets label-free figures
    segs = [None if ev.phones is None else _alignments(ev) for ev in evs]
    rate = vq.sample_rate / vq.hop
    k = int(vq.quantizer.codebook.shape[0])
    encode = _encoder(vq, resolve_checkpoint(model, checkpoint), exp, batch_size, device,
                      progress, nj, cmd)
    shared = phones = None
    if any(seg is not None for seg in segs):
        fit = None if fit_on is None else Utterances(fit_on, vq.sample_rate)
        phones = phone_set(*(ev.phones for ev in evs), fit.phones if fit else None)
        shared = None if fit is None else _fit_side(vq, fit, fit_on, phones, rate, k, seed,
                                                    batch_size, progress, encode)
    abx_set = _ABXSettings(abx_max_triplets, abx_items, export_abx)
    results = [_score_split(vq, ev, seg, d, n, shared, phones, rate, k, model, checkpoint,
                            fit_on, exp, exp_dir, batch_size, abx_set, seed, progress, encode)
               if seg is not None else
               _describe_split(vq, ev, d, n, rate, k, model, checkpoint, exp, exp_dir,
                               batch_size, seed, progress, encode)
               for ev, seg, d, n in zip(evs, segs, datas, names)]
    return results if several else results[0]


_Encode = Callable[[Utterances, "str | os.PathLike", str, bool], "dict | tuple[dict, dict]"]


def _encoder(vq, ckpt: Path, exp: Path, batch_size: int, device: str, progress: bool, nj: int,
             cmd: str | None) -> _Encode:
    """``encode(data, path, name, vectors)``: codes [and z_e] of every utterance of `data`
    (read from `path`), by `vq` here or, with `nj` > 1, by parallel jobs named after `name`."""
    from speechvq.encode import encode_utterances
    from speechvq.encode_jobs import encode_in_jobs
    from speechvq.jobs import in_jobs

    def encode(data: Utterances, path, name: str, vectors: bool):
        if not in_jobs(len(data.utts), nj, batch_size, cmd):
            return encode_utterances(vq, data, batch_size=batch_size, vectors=vectors,
                                     progress=progress)
        return encode_in_jobs(ckpt, path, data.utts, nj=nj, cmd=cmd, work_dir=exp / "eval",
                              log_dir=exp / "eval" / "log", name=f"encode_{name}",
                              batch_size=batch_size, device=device, vectors=vectors)
    return encode


UNSCORED = "units_unscored"  # the result kind of data without alignments


def _describe_split(vq, ev: Utterances, data, name, rate, k, model, checkpoint, exp, exp_dir,
                    batch_size, seed, progress, encode: _Encode) -> dict:
    """Label-free statistics of one DATA without alignments (`label_free_units`), written as
    ``EXP/eval/units_unscored_<name>.json`` (``units_unscored.<name>``)."""
    codes = encode(ev, data, name, False)
    seqs = [codes[u] for u in sorted(codes)]
    result = {
        "kind": UNSCORED,
        UNSCORED: {name: label_free_units(seqs, n_codes=k, frame_rate_hz=rate, seed=seed)},
        "command": command_line(["speechvq", "evaluate", "units", "--model", str(model),
                                 "--checkpoint", checkpoint, "--data", str(data),
                                 "--name", name, "--exp", None if exp_dir is None else str(exp),
                                 "--seed", seed]),
        "data": {"model": str(model), "checkpoint": checkpoint, "data": str(data),
                 "n_utts": len(seqs), "alignments": None},
        "details": {"code_counts": np.bincount(np.concatenate(seqs), minlength=k).tolist()},
    }
    write_result(exp, UNSCORED, name, result)
    return result


def _score_split(vq, ev: Utterances, seg_ev, data, name, fit: _FitSide | None, phones, rate, k,
                 model, checkpoint, fit_on, exp, exp_dir, batch_size, abx_set: _ABXSettings, seed,
                 progress, encode: _Encode) -> dict:
    """Score one DATA (see `evaluate_units_model`) and write its JSON."""
    codes_ev, z_e = encode(ev, data, name, True)
    labels_ev = frame_labels_for(seg_ev, {u: len(c) for u, c in codes_ev.items()}, rate, phones)
    utts = _scored(labels_ev, data)
    n_ev = {u: len(labels_ev[u]) for u in utts}
    samples: dict[str, int] = {}
    feats_ev = _mfcc_features(ev, utts, vq.hop, n_ev, progress, samples)
    durations = [samples[u] / vq.sample_rate for u in utts]

    systems = _systems("vqvae", codes_ev, labels_ev, k, seed, fit, feats_ev)
    block = units_report(systems, [labels_ev[u] for u in utts],
                         labels_fit=None if fit is None else list(fit.labels.values()),
                         phones=phones, frame_rate_hz=rate, codebook_size=k,
                         fit_on="eval" if fit_on is None else str(fit_on),
                         durations_s=durations, sil=SIL, seed=seed)

    items = abx_items(seg_ev, {u: ev.speaker(u) for u in utts}, n_ev, rate,
                      span=abx_set.items, sil=SIL)
    codebook = vq.quantizer.codebook.detach().float().cpu().numpy()  # (K, D)
    feature_sets = {"encoder": {u: z_e[u] for u in utts},
                    "codes": {u: codebook[codes_ev[u]] for u in utts}, "mfcc": feats_ev}
    r = {kind: abx(f, items, max_triplets=abx_set.max_triplets, seed=seed)
         for kind, f in feature_sets.items()}
    _put_abx(block["vqvae"], "abx_", r["encoder"], abx_set.items)
    _put_abx(block["vqvae"], "abx_codes_", r["codes"], abx_set.items)
    block["vqvae"]["abx_n_items"] = r["encoder"].n_items
    _put_abx(block["mfcc_kmeans"], "abx_", r["mfcc"], abx_set.items)
    if abx_set.export is not None:
        write_abx_inputs(abx_set.export, name, abx_set.items, items, feature_sets, rate)

    if fit is None:
        mapping = fit_code_to_phone(np.concatenate([codes_ev[u] for u in utts]),
                                    np.concatenate([labels_ev[u] for u in utts]), k, len(phones))
    else:
        mapping = fit_code_to_phone(np.concatenate([fit.codes[u] for u in fit.labels]),
                                    np.concatenate(list(fit.labels.values())), k, len(phones))
    result = {
        "units": {name: block},
        "command": command_line(["speechvq", "evaluate", "units", "--model", str(model),
                                 "--checkpoint", checkpoint, "--data", str(data),
                                 "--fit-on", None if fit_on is None else str(fit_on),
                                 "--name", name, "--exp", None if exp_dir is None else str(exp),
                                 "--abx-triplets", abx_set.max_triplets,
                                 "--abx-items", abx_set.items, "--export-abx",
                                 None if abx_set.export is None else str(abx_set.export),
                                 "--seed", seed]),
        "data": {"model": str(model), "checkpoint": checkpoint, "data": str(data),
                 "fit_on": None if fit_on is None else str(fit_on),
                 "n_utts": len(utts), "n_utts_unaligned": len(codes_ev) - len(utts)},
        "details": _details(codes_ev, labels_ev, mapping, k, phones),
    }
    write_result(exp, "units", name, result)
    return result


# ------------------------------------------------------------------------------- units files


def _file_alignments(path: Path) -> tuple[dict[str, list], list[str], dict[str, float] | None,
                                          Utterances | None]:
    """(segments, phones, real durations or None, audio access or None) of --alignments."""
    from speechvq.data.speech.kaldi import read_ctm, read_phones_txt
    from speechvq.data.speech.dumpfile import SpeechDump

    if path.is_file():  # a CTM: phones.txt beside it when present, no audio
        ctm = read_ctm(path)
        txt = path.parent / "phones.txt"
        phones = read_phones_txt(txt) if txt.is_file() else phone_set(
            sorted({p for segs in ctm.values() for _, _, p in segs}))
        return ctm, phones, None, None
    if (path / "dump.json").exists():
        dump = SpeechDump.open(path)
        data = Utterances(path, dump.sample_rate)
        durations = {u: int(n) / dump.sample_rate for u, n in zip(dump.utts, dump.lengths)}
    else:
        from speechvq.audio import audio_info
        from speechvq.data.speech.kaldi import DataDir
        data = Utterances(path, 16000)
        d = DataDir.load(path, validate=False)  # Utterances validated it already
        durations = {}
        for u in data.utts:
            f, start, end = d.audio_source(u)
            if start is None:
                frames, rate = audio_info(f)
                durations[u] = frames / rate
            else:
                durations[u] = end - start
    return _alignments(data), list(data.phones), durations, data


def evaluate_units_file(units_path: str | os.PathLike, frame_rate: float,
                        alignments: str | os.PathLike, *,
                        fit_units: str | os.PathLike | None = None,
                        fit_alignments: str | os.PathLike | None = None,
                        codebook_size: int | None = None, name: str | None = None,
                        exp_dir: str | os.PathLike | None = None, seed: int = 0,
                        progress: bool = True) -> dict:
    """`speechvq evaluate units --units FILE --frame-rate R --alignments DATA_OR_CTM`.

    Args:
        units_path: a units file (``utt c1 c2 ...`` or GSLM ``utt|c1 c2 ...``), one unit per frame.
        frame_rate: units per second (50 for HuBERT, 25 for the phone-study VQ-VAE ...).
        alignments: a Kaldi dir or dump with phones.ctm (real durations are checked, and the
            MFCC k-means baseline is added when the frame hop is a whole number of samples), or
            a phones.ctm file (durations unknown, no MFCC baseline).
        fit_units, fit_alignments: where the mappings are fitted (default: the scored units).
        codebook_size: K (default: largest unit + 1 over both units files).
        name: result name (default: the units file's stem); exp_dir: required (EXP/eval/).
    Returns:
        The JSON written to ``EXP/eval/units_<name>.json`` (with ``output``, its path).
    """
    if exp_dir is None:
        raise ConfigError("--units needs --exp EXP: the exp dir whose eval/ gets the results")
    if (fit_units is None) != (fit_alignments is None):
        raise ConfigError("give --fit-units and --fit-alignments together, or neither")
    if not frame_rate or frame_rate <= 0:
        raise ConfigError(f"--frame-rate must be a positive number of units per second, got "
                          f"{frame_rate}")
    name = check_name(name or default_name(units_path))
    units = read_units(units_path)
    seg, phones, durations, audio = _file_alignments(Path(alignments))
    fit = None
    if fit_units is not None:
        fu = read_units(fit_units)
        fseg, fphones, fdur, faudio = _file_alignments(Path(fit_alignments))
        fit = (fu, fseg, fdur, faudio)
        phones = phone_set(phones, fphones)
    k = codebook_size or int(max(max(int(c.max(initial=0)) for c in u.values())
                                 for u in [units] + ([fit[0]] if fit else []))) + 1

    def labelled(u, segments, dur, src, what):
        lab = frame_labels_for(segments, {x: len(c) for x, c in u.items()}, frame_rate, phones)
        utts = _scored(lab, what)
        missing = [x for x in utts if dur is not None and x not in dur]
        if missing:
            raise DataError(f"{src}: utterance {missing[0]!r} has an alignment but no audio")
        check_frame_level([u[x] for x in utts], source=str(src), frame_rate_hz=frame_rate,
                          durations_s=None if dur is None else [dur[x] for x in utts])
        return lab

    labels_ev = labelled(units, seg, durations, units_path, alignments)
    labels_fit = None if fit is None else labelled(fit[0], fit[1], fit[2], fit_units,
                                                   fit_alignments)
    utts = list(labels_ev)
    feats_ev = feats_fit = None
    hop = None if audio is None else audio.sample_rate / frame_rate
    if hop is not None and abs(hop - round(hop)) < 1e-6 and (fit is None or fit[3] is not None):
        feats_ev = _mfcc_features(audio, utts, int(round(hop)), {u: len(labels_ev[u])
                                                                for u in utts}, progress)
        feats_fit = None if fit is None else _mfcc_features(
            fit[3], list(labels_fit), int(round(hop)),
            {u: len(v) for u, v in labels_fit.items()}, progress)
    shared = None
    if fit is not None:
        km = km_codes = None
        if feats_fit is not None:
            km, km_codes = _kmeans([feats_fit[u] for u in labels_fit], k, seed)
        shared = _FitSide(fit[0], labels_fit, km, km_codes)
    systems = _systems("units", units, labels_ev, k, seed, shared, feats_ev)
    block = units_report(systems, [labels_ev[u] for u in utts],
                         labels_fit=None if labels_fit is None else list(labels_fit.values()),
                         phones=phones, frame_rate_hz=frame_rate, codebook_size=k,
                         fit_on="eval" if fit is None else str(fit_units),
                         durations_s=None if durations is None else [durations[u] for u in utts],
                         sil=SIL, seed=seed)
    src_codes, src_labels = (units, labels_ev) if fit is None else (fit[0], labels_fit)
    mapping = fit_code_to_phone(np.concatenate([src_codes[u] for u in src_labels]),
                                np.concatenate(list(src_labels.values())), k, len(phones))
    result = {
        "units": {name: block},
        "command": command_line(["speechvq", "evaluate", "units", "--units", str(units_path),
                                 "--frame-rate", f"{frame_rate:g}", "--alignments",
                                 str(alignments), "--fit-units",
                                 None if fit_units is None else str(fit_units),
                                 "--fit-alignments",
                                 None if fit_alignments is None else str(fit_alignments),
                                 "--codebook-size", codebook_size, "--name", name,
                                 "--exp", str(exp_dir), "--seed", seed]),
        "data": {"units": str(units_path), "alignments": str(alignments),
                 "fit_units": None if fit_units is None else str(fit_units),
                 "fit_alignments": None if fit_alignments is None else str(fit_alignments),
                 "n_utts": len(utts), "n_utts_unaligned": len(units) - len(utts),
                 "mfcc_kmeans": "scored" if feats_ev is not None else "skipped (no audio at a whole-sample hop)"},
        "details": _details(units, labels_ev, mapping, k, phones),
    }
    write_result(exp_dir, "units", name, result)
    return result


def describe_units_file(units_path: str | os.PathLike, frame_rate: float, *,
                        codebook_size: int | None = None, name: str | None = None,
                        exp_dir: str | os.PathLike | None = None, seed: int = 0) -> dict:
    """`speechvq evaluate units --units FILE --frame-rate R` without ``--alignments``: the
    label-free statistics of any system's frame-level units (`label_free_units`), written as
    ``EXP/eval/units_unscored_<name>.json``."""
    if exp_dir is None:
        raise ConfigError("--units needs --exp EXP: the exp dir whose eval/ gets the results")
    if not frame_rate or frame_rate <= 0:
        raise ConfigError(f"--frame-rate must be a positive number of units per second, got "
                          f"{frame_rate}")
    name = check_name(name or default_name(units_path))
    units = read_units(units_path)
    seqs = [units[u] for u in sorted(units)]
    check_frame_level(seqs, source=str(units_path), frame_rate_hz=frame_rate)
    k = codebook_size or int(max(int(c.max(initial=0)) for c in seqs)) + 1
    result = {
        "kind": UNSCORED,
        UNSCORED: {name: label_free_units(seqs, n_codes=k, frame_rate_hz=frame_rate, seed=seed)},
        "command": command_line(["speechvq", "evaluate", "units", "--units", str(units_path),
                                 "--frame-rate", f"{frame_rate:g}", "--codebook-size",
                                 codebook_size, "--name", name, "--exp", str(exp_dir),
                                 "--seed", seed]),
        "data": {"units": str(units_path), "data": str(units_path), "n_utts": len(seqs),
                 "alignments": None},
        "details": {"code_counts": np.bincount(np.concatenate(seqs), minlength=k).tolist()},
    }
    write_result(exp_dir, UNSCORED, name, result)
    return result


# ------------------------------------------------------------------------------------ table


def format_units_table(result: dict) -> str:
    """The units block(s) of a result as a plain-text table: systems x metrics (percent, 1 dp)."""
    lines = []
    for split, b in result.get(UNSCORED, {}).items():
        ci = b.get("ci95") or {}

        def cell(name: str, fmt: str) -> str:
            lo_hi = ci.get(name)
            return format(b[name], fmt) + (f" [{lo_hi[0]:{fmt}}, {lo_hi[1]:{fmt}}]"
                                           if lo_hi else "")
        lines.append(f"units {split}: no phone alignments, label-free statistics only "
                     f"({b['n_utterances']} utterances, {b['hours']:.2f} h, "
                     f"{b['frame_rate_hz']:g} Hz, K={b['codebook_size']}; 95 % intervals)")
        lines.append(f"  codes used {b['codes_used']}, perplexity {cell('perplexity', '.1f')}, "
                     f"bitrate {cell('bitrate_bps', '.1f')} bits/s, deduplicated "
                     f"{cell('bitrate_bps_dedup', '.1f')} bits/s")
    for split, block in result.get("units", {}).items():
        systems = [s for s in block if isinstance(block[s], dict)]
        cols = unit_columns(block, systems)
        fit = block["fit_on"]
        lines.append(f"units {split}: {block['frame_rate_hz']:g} Hz, K={block['codebook_size']}, "
                     f"{block['n_phones']} phones, mapping fitted on "
                     f"{'the scored data' if fit == 'eval' else fit}")
        head = f"{'system':<12}" + "".join(f"{c.header:>9}" for c in cols)
        lines += [head, "-" * len(head)]
        for s in systems:
            lines.append(f"{s:<12}" + "".join(f"{c.format(block[s].get(c.name)):>9}"
                                               for c in cols))
        vq = block.get("vqvae", {})
        if vq.get("abx_n_triplets_within") is not None:
            lines.append(f"ABX: {SPANS[vq['abx_items']]}; {vq['abx_n_triplets_within']} within / "
                         f"{vq['abx_n_triplets_across']} across triplets"
                         f"{', sampled' if vq.get('abx_sampled') else ', all'} (error %, lower is better; "
                         "w = within, a = across speaker; ABXq = on code embeddings)")
    return "\n".join(lines)
