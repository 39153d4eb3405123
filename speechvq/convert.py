"""Voice conversion: source audio -> codes -> decoder(codes, target speaker) -> audio (stage 4).

The codes carry the content and the speaker enters only through the decoder's speaker embedding,
so decoding a source's codes with another speaker's embedding converts the voice (van den Oord
et al. 2017, section 4.3). Two decoders can render the codes:

- ``wavenet``: the paper's path, autoregressive sampling over 8-bit mu-law with the incremental
  (O(layers) per sample) generator, batched over utterances; on CPU by the fused kernel
  (`fast_wavenet`; ``engine`` picks another), still slow for the paper-size net; on CUDA by the
  step captured as a CUDA graph (`graph_wavenet`).
- ``mel``: the log-mel head + Griffin-Lim; fast anywhere, less natural.
- ``auto`` (default): the WaveNet on CUDA when the model has one, else the mel head when it has
  one, else the WaveNet.

Many conversions in one call are written as a Kaldi data dir (``wav.scp``, ``utt2spk`` = target
speaker, ``utt2src`` = source utterance, ``text`` copied from the source) so they can be scored
like any other data; finished wavs are kept when a run is restarted with the same model and
settings (``DIR/conversion.json`` records them, with the command that made the wavs and where it
ran; any change of model or settings converts afresh). Both hold their output's lock and follow
the output rules (`speechvq.ownership.claim`): the output is never the source, the data or the
checkpoint, and a file or folder convert did not make is not replaced.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from speechvq.progress import tqdm

from speechvq.audio import load_audio, resample, save_audio
from speechvq.checkpoint import resolve_checkpoint
from speechvq.data.speech.kaldi import DataDir, check_id
from speechvq.fileio import atomic_write_json
from speechvq.data.speech.utterances import Utterances
from speechvq.encode import pick_device
from speechvq.errors import DataError, ModelError
from speechvq.evaluation.results import command_line
from speechvq.models.speech.vqvae import VQVAE, load_vqvae
from speechvq.ownership import Claim, claim
from speechvq.provenance import provenance


def choose_head(model: VQVAE, head: str) -> str:
    """Resolve ``auto`` (see the module docstring, `VQVAE.resolve_head`); other names pass
    through."""
    return model.resolve_head(head)


@torch.no_grad()
def convert_waveforms(model: VQVAE, waves: Sequence[np.ndarray], speakers: Sequence[str], *,
                      head: str = "auto", temperature: float = 1.0, seed: int = 0,
                      engine: str | None = None) -> list[np.ndarray]:
    """Convert a batch of waveforms (at the model's rate) to the given target speakers.

    Args:
        model: VQVAE in eval mode.
        waves: source waveforms, float32 (T_i,) each.
        speakers: one target speaker name per waveform.
        head: 'wavenet', 'mel' or 'auto'.
        temperature: WaveNet sampling temperature.
        seed: seeds the WaveNet's sampling generator.
        engine: WaveNet sampling engine: 'auto', 'eager', 'fused', 'fused_bf16',
            'cuda_graph' (None: the model's ``model.decoder.wavenet.engine``).

    Returns:
        converted waveforms, float32 (T_i,) each (same lengths as the sources).
    """
    device = next(model.parameters()).device
    rows = torch.tensor([model.speaker_index(s) for s in speakers], device=device)  # (B,)
    lengths = torch.tensor([len(w) for w in waves], device=device)  # (B,)
    wav = torch.zeros(len(waves), int(lengths.max()), device=device)  # (B, T_max)
    for i, w in enumerate(waves):
        wav[i, :len(w)] = torch.from_numpy(np.ascontiguousarray(w)).to(device)
    codes = model.encode(wav, lengths=lengths)  # (B, Tc)
    generator = torch.Generator(device=device).manual_seed(seed)
    out = model.decode(codes, rows, choose_head(model, head), lengths=lengths,
                       temperature=temperature, generator=generator,
                       engine=engine)  # (B, T_max)
    return [out[i, :int(n)].cpu().numpy() for i, n in enumerate(lengths)]


def convert(model: VQVAE | str | os.PathLike, src, sample_rate: int | None = None, *,
            speaker: str, head: str = "auto", temperature: float = 1.0, seed: int = 0,
            checkpoint: str | None = None, device: str = "auto",
            engine: str | None = None) -> np.ndarray:
    """One utterance in another speaker's voice: ``speechvq.convert(model, "a.wav",
    speaker="p225")`` in the Python API (this module is callable; see the end of the file).

    Args:
        model: a loaded VQVAE (`speechvq.load`), or an exp dir / ``.pt`` file to load (with
            `checkpoint` and `device`).
        src: an audio file (any rate, resampled), or a (T,) waveform (numpy or tensor) at
            `sample_rate` Hz (None: the model's rate).
        speaker: the target speaker's name (one of ``model.speakers``).
        head, temperature, seed, engine: as `convert_waveforms`.
    Returns:
        (T',) float32 waveform at ``model.sample_rate``, as long as the source at that rate.
    Raises:
        ModelError: an unknown speaker (checked before any audio is read) or head.
    """
    if not isinstance(model, VQVAE):
        model = load_vqvae(model, checkpoint=checkpoint, device=pick_device(device))
    model.speaker_index(speaker)
    if isinstance(src, (str, os.PathLike)):
        wav, _ = load_audio(src, model.sample_rate)  # (T',)
    else:
        x = src.detach().float().cpu().numpy() if isinstance(src, torch.Tensor) else \
            np.asarray(src, dtype=np.float32)
        if x.ndim != 1:
            raise ModelError(f"convert takes one (T,) waveform, got shape {x.shape}; use "
                             f"convert_waveforms for a batch")
        rate = model.sample_rate if sample_rate is None else int(sample_rate)
        wav = resample(x, rate, model.sample_rate) if rate != model.sample_rate else x  # (T',)
    (y,) = convert_waveforms(model, [wav], [speaker], head=head, temperature=temperature,
                             seed=seed, engine=engine)
    return y


def convert_file(model_path: str | os.PathLike, src: str | os.PathLike, speaker: str,
                 out: str | os.PathLike, *, head: str = "auto", temperature: float = 1.0,
                 seed: int = 0, checkpoint: str | None = None, device: str = "auto",
                 engine: str | None = None) -> Path:
    """`speechvq convert --src a.wav --speaker S -o out.wav`: one file, any rate (resampled)."""
    ckpt = resolve_checkpoint(model_path, checkpoint)
    with claim(out, "convert", inputs=[src, ckpt], kind="file"):
        model = load_vqvae(ckpt, device=pick_device(device))
        y = convert(model, src, speaker=speaker, head=head, temperature=temperature, seed=seed,
                    engine=engine)
        save_audio(out, y, model.sample_rate)
    return Path(out)


def parallel_readers(ref: Utterances) -> dict[str, list[str]]:
    """{transcript: sorted speakers who read it in `ref`} (utterances without text are left out)."""
    readers: dict[str, set[str]] = {}
    for utt in ref.utts:
        text = ref.text(utt)
        if text:
            readers.setdefault(text, set()).add(ref.speaker(utt))
    return {t: sorted(s) for t, s in readers.items()}


def conversion_pairs(data: Utterances, targets: Sequence[str], max_utts: int | None,
                     per_speaker: int | None = None, *,
                     readers: Mapping[str, Sequence[str]] | None = None,
                     n_targets: int | None = None) -> list[tuple[str, str, str]]:
    """(output utt id, source utt, target speaker) pairs; ids are ``<target>-<src>``.

    Sources: the first `max_utts` utterances (sorted; with `per_speaker`, only the first that many
    of each source speaker count, each with a sentence no earlier source reads). Targets of a
    source: every speaker of `targets` but its own; with `readers` (see `parallel_readers`), only
    those who read the source's sentence, so every conversion has a real parallel target;
    `n_targets` keeps the first that many.
    """
    sources = list(data.utts)
    if per_speaker:  # spread the sources over speakers, and over sentences where known
        taken: dict[str, int] = {}
        texts: set[str] = set()
        kept = []
        for utt in sources:
            spk, text = data.speaker(utt), data.text(utt)
            if taken.get(spk, 0) < per_speaker and (text is None or text not in texts):
                taken[spk] = taken.get(spk, 0) + 1
                texts.add(text)
                kept.append(utt)
        sources = kept
    sources = sources[:max_utts] if max_utts else sources
    pairs = []
    for utt in sources:
        allowed = targets if readers is None else \
            [t for t in readers.get(data.text(utt) or "", []) if t in targets]
        chosen = [t for t in allowed if t != data.speaker(utt)][:n_targets]
        pairs += [(f"{tgt}-{utt}", utt, tgt) for tgt in chosen]
    return sorted(pairs)


def convert_data(model_path: str | os.PathLike, data_path: str | os.PathLike,
                 speakers: Sequence[str] | None, out_dir: str | os.PathLike, *,
                 head: str = "auto", max_utts: int | None = None, per_speaker: int | None = None,
                 parallel_to: str | os.PathLike | None = None, n_targets: int | None = None,
                 batch_size: int = 8, temperature: float = 1.0,
                 seed: int = 0, checkpoint: str | None = None, device: str = "auto",
                 progress: bool = True, engine: str | None = None,
                 pairs_file: str | os.PathLike | None = None, nj: int = 1,
                 cmd: str | None = None) -> DataDir:
    """`speechvq convert --data DATA --speakers S1,S2 --out DIR`: many conversions, batched.

    Every source utterance (the first `max_utts`, sorted; at most `per_speaker` of each source
    speaker) is converted to every listed target speaker except its own (`speakers` None: every
    speaker of the model). With `parallel_to` (a data dir or dump with text), only targets who
    read the source's sentence there are used, the first `n_targets` of them, so each conversion
    has a real reading to compare with. Wavs already in ``DIR/wav/`` from an interrupted run with
    the same checkpoint, head, temperature, seed and weight precision (``DIR/conversion.json``)
    are kept; otherwise they are converted afresh. Wavs of earlier runs that this one does not
    list are removed. `engine` picks the WaveNet's sampling engine (`convert_waveforms`).
    `pairs_file` gives the conversions instead (`speechvq.convert_jobs.read_pairs`; the
    speakers and source options are then unused). With `nj` > 1 the conversions are made by
    parallel jobs (`speechvq.convert_jobs`; ``cmd`` the ``--cmd`` prefix), the same wavs.

    Returns:
        the written DataDir (wav.scp, utt2spk = target, utt2src = source utt, text).
    Raises:
        LockedError: another run writes DIR. OutputError: DIR is, holds or lies inside DATA,
            REF or the checkpoint, or holds files convert did not make (nothing is deleted).
    """
    ckpt = resolve_checkpoint(model_path, checkpoint)
    with claim(out_dir, "convert", inputs=[data_path, parallel_to, ckpt],
               ours_if=_is_conversion_dir, kind="dir") as c:
        return _convert_data(c, model_path, checkpoint, ckpt, data_path, speakers, head=head,
                             max_utts=max_utts, per_speaker=per_speaker,
                             parallel_to=parallel_to, n_targets=n_targets,
                             batch_size=batch_size, temperature=temperature, seed=seed,
                             device=device, progress=progress, engine=engine,
                             pairs_file=pairs_file, nj=nj, cmd=cmd)


def _is_conversion_dir(path: Path) -> bool:
    """A conversion dir made before they carried the ownership marker (``utt2src`` is older
    than ``conversion.json``)."""
    return (path / "conversion.json").is_file() or (path / "utt2src").is_file()


def _convert_data(c: Claim, model_path, checkpoint: str | None, ckpt: Path, data_path,
                  speakers, *, head: str, max_utts: int | None, per_speaker: int | None,
                  parallel_to, n_targets: int | None, batch_size: int, temperature: float,
                  seed: int, device: str, progress: bool, engine: str | None,
                  pairs_file=None, nj: int = 1, cmd: str | None = None) -> DataDir:
    """`convert_data` once DIR (``c.path``) is claimed; `ckpt` is the checkpoint file that
    `model_path` and `checkpoint` name."""
    model = load_vqvae(ckpt, device=pick_device(device))
    given = None if speakers is None else list(speakers)
    speakers = list(model.speakers if speakers is None else speakers)
    for s in speakers:
        model.speaker_index(s)  # unknown targets fail before any work
    data = Utterances(data_path, model.sample_rate)
    readers = None if parallel_to is None else \
        parallel_readers(Utterances(parallel_to, model.sample_rate, "--parallel-to"))
    head = choose_head(model, head)
    out = c.path
    if pairs_file is not None:
        pairs = _listed_pairs(pairs_file, model, data, data_path)
    else:
        pairs = conversion_pairs(data, speakers, max_utts, per_speaker, readers=readers,
                                 n_targets=n_targets)
    if not pairs:
        why = (f"no target speaker reads the sources' sentences in '{parallel_to}'"
               if readers is not None else
               f"the targets ({', '.join(speakers)}) are the only speakers of '{data_path}'")
        raise DataError(f"nothing to convert: {why}; pick other --speakers or sources")
    for new_utt, _, _ in pairs:
        check_id(new_utt, "converted utterance id", f"--out {out}")
    wav_dir = out / "wav"
    from speechvq.models.speech.fast_wavenet import resolve_engine  # the choice generate makes
    device = next(model.parameters()).device
    bf16 = head == "wavenet" and resolve_engine(engine or model.wavenet.cfg.engine,
                                                device) == "fused_bf16"
    made_by = _made_by(ckpt, head, temperature, seed, bf16)
    wavenet = head == "wavenet"  # sampling settings (batches are seeded) matter to it only
    command = command_line([
        "speechvq", "convert", "--model", str(model_path), "--checkpoint", checkpoint,
        "--data", str(data_path), "--speakers", None if given is None else ",".join(given),
        "--parallel-to", None if parallel_to is None else str(parallel_to),
        "--n-targets", n_targets, "--per-speaker", per_speaker, "--max-utts", max_utts,
        "--head", head, "--temperature", temperature if wavenet else None,
        "--seed", seed if wavenet else None,
        "--batch-size", batch_size if wavenet else None,
        "--engine", engine if wavenet else None, "--out", str(out)])
    _prepare_out_dir(out, made_by, {f"{new}.wav" for new, _, _ in pairs},
                     {"command": command, **provenance()})
    todo = [p for p in pairs if not (wav_dir / f"{p[0]}.wav").exists()]
    if len(todo) < len(pairs):
        print(f"convert: {len(pairs) - len(todo)} of {len(pairs)} conversions already in "
              f"{wav_dir}, kept")
    sources = {src: data.waveform(src) for _, src, _ in todo}  # each decoded once
    # Long sources first, so a batch holds similar lengths (less padding in the WaveNet).
    todo.sort(key=lambda p: (-len(sources[p[1]]), p[0]))
    from speechvq.jobs import in_jobs
    if in_jobs(len(todo), nj, batch_size, cmd):
        from speechvq.convert_jobs import convert_in_jobs
        convert_in_jobs(todo, nj=nj, cmd=cmd, checkpoint=ckpt, data_path=data_path, out=out,
                        head=head, temperature=temperature, seed=seed, batch_size=batch_size,
                        device=str(device),
                        engine=engine)
        todo = []
    bar = tqdm(total=len(todo), desc=f"convert ({head})", unit="utt", disable=not progress)
    for k in range(0, len(todo), batch_size):
        batch = todo[k:k + batch_size]
        waves = [sources[src] for _, src, _ in batch]
        ys = convert_waveforms(model, waves, [t for _, _, t in batch], head=head,
                               temperature=temperature, seed=seed + k, engine=engine)
        for (new_utt, _, _), y in zip(batch, ys):
            save_audio(wav_dir / f"{new_utt}.wav", y, model.sample_rate)
        bar.update(len(batch))
    bar.close()
    texts = {new: data.text(src) for new, src, _ in pairs}
    result = DataDir(path=out,
                     wav_scp={new: str((wav_dir / f"{new}.wav").resolve()) for new, _, _ in pairs},
                     utt2spk={new: tgt for new, _, tgt in pairs},
                     utt2src={new: src for new, src, _ in pairs},
                     text=texts if all(t is not None for t in texts.values()) else None)
    result.save(out)
    return result


def _listed_pairs(pairs_file, model: VQVAE, data: Utterances, data_path) -> list:
    """The conversions of ``--pairs``, checked against the model's speakers and DATA."""
    from speechvq.convert_jobs import read_pairs
    pairs = read_pairs(pairs_file)
    have = set(data.utts)
    for _, src, tgt in pairs:
        model.speaker_index(tgt)
        if src not in have:
            raise DataError(f"--pairs {pairs_file}: source utterance {src!r} is not in "
                            f"'{data_path}'; list utterances of --data")
    return pairs


def _made_by(ckpt: Path, head: str, temperature: float, seed: int, bf16: bool = False) -> dict:
    """What the wavs of a conversion dir depend on, to tell a restart from a new run. The
    checkpoint is identified by path, size and modification time (retraining rewrites it); the
    sampling temperature and seed matter only to the WaveNet, and so do bf16 weights (the fp32
    engines draw the same samples)."""
    ckpt = ckpt.resolve()
    st = ckpt.stat()
    made_by = {"checkpoint": str(ckpt), "checkpoint_bytes": st.st_size,
               "checkpoint_mtime_ns": st.st_mtime_ns, "head": head}
    if head == "wavenet":
        made_by.update(temperature=float(temperature), seed=int(seed))
    if bf16:
        made_by["weights"] = "bfloat16"
    return made_by


CONVERSION_TABLES = ("wav.scp", "utt2spk", "spk2utt", "utt2src", "text")


def _prepare_out_dir(out: Path, made_by: dict, wanted: set[str], made_with: dict) -> None:
    """Make ``out`` (claimed: made by convert, or new) ready for this call's conversions.

    Wavs of another model or settings are deleted, and so are wavs this call does not list;
    finished wavs of the same model and settings are kept. ``conversion.json`` gets `made_by`
    and `made_with` (the command and where it ran, for the report); only `made_by` decides
    whether the wavs are kept.
    """
    wav_dir, stamp = out / "wav", out / "conversion.json"
    wavs = [p for p in wav_dir.glob("*.wav") if not p.name.startswith(".")] \
        if wav_dir.is_dir() else []
    try:
        before = json.loads(stamp.read_text()) if stamp.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        before = None  # a damaged stamp: start afresh
    if isinstance(before, dict):
        before = {k: v for k, v in before.items() if k not in made_with}
    if wavs and before != made_by:
        print(f"convert: the wavs in {wav_dir} were made by another model, checkpoint or "
              f"settings; converting afresh")
        for name in CONVERSION_TABLES:  # no table may point at wavs of two models
            (out / name).unlink(missing_ok=True)
        for old in wavs:
            old.unlink()
        wavs = []
    stale = [p for p in wavs if p.name not in wanted]
    for old in stale:  # from an earlier call with other sources or targets
        old.unlink()
    if stale:
        print(f"convert: removed {len(stale)} wavs of an earlier call from {wav_dir}")
    wav_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stamp, {**made_by, **made_with}, indent=1)


def list_speakers(model_path: str | os.PathLike, data_path: str | os.PathLike | None = None, *,
                  checkpoint: str | None = None) -> list[str]:
    """The model's speakers (conversion targets), restricted to those in DATA when given."""
    model = load_vqvae(model_path, checkpoint=checkpoint, device=torch.device("cpu"))
    if data_path is None:
        return list(model.speakers)
    present = set(Utterances(data_path, model.sample_rate).speakers())
    known = [s for s in model.speakers if s in present]
    if not known:
        raise ModelError(f"none of the model's speakers read anything in '{data_path}'")
    return known


class _CallableModule(types.ModuleType):
    """This module, callable: ``speechvq.convert(...)`` is `convert` while ``speechvq.convert``
    stays the module of DESIGN.md's layout (importing a submodule sets the package attribute of
    the same name, so a function there would be replaced by the module)."""

    def __call__(self, *args, **kwargs) -> np.ndarray:
        return convert(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
