"""Encoding: a trained VQ-VAE turns every utterance of any data into codes (stage 3).

    model = load_vqvae("exp/mini")                       # exp dir or .pt file
    data = Utterances("dump/test", model.sample_rate)    # a dump or a Kaldi data dir
    codes = encode_utterances(model, data)               # {utt: (ceil(T / hop),) int64}

Frame timing (DESIGN.md): code i covers samples [i*hop, (i+1)*hop) at the model's rate and there
are ceil(T / hop) codes per utterance. Units files are written by `speechvq.data.codes`; with
``--format km`` the wav2vec manifest fairseq reads beside a ``.km`` lists each utterance's audio
file (`audio_files`).
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import torch
from speechvq.progress import tqdm

from speechvq.checkpoint import resolve_checkpoint
from speechvq.data.codes import manifest_path, write_manifest, write_units
from speechvq.data.speech.dumpfile import SpeechDump
from speechvq.data.speech.kaldi import DataDir
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError
from speechvq.models.speech.vqvae import VQVAE, load_vqvae
from speechvq.device import pick_device
from speechvq.ownership import claim

UNLABELLED = "none"  # the condition of items that have none (video clips)

__all__ = ["load_vqvae", "encode_utterances", "encode_to_file", "audio_files", "pick_device"]


@torch.no_grad()
def encode_utterances(model: VQVAE, data: Utterances, *, batch_size: int = 8,
                      utts: Sequence[str] | None = None, vectors: bool = False,
                      progress: bool = True) -> dict[str, np.ndarray] | tuple[dict, dict]:
    """Codes (and optionally the encoder outputs z_e) of every utterance, batched.

    Args:
        model: a VQVAE in eval mode (see `load_vqvae`).
        data: the utterances, at the model's rate.
        batch_size: utterances per forward pass (padding is trimmed from the codes).
        utts: a subset to encode (default all, sorted).
        vectors: also return z_e per utterance, (T_codes, D) float32, for ABX.
        progress: tqdm bar over utterances.

    Returns:
        {utt: (ceil(T / hop),) int64 codes} [, {utt: (ceil(T / hop), D) float32}].
    """
    device = next(model.parameters()).device
    names = list(data.utts if utts is None else utts)
    codes_out: dict[str, np.ndarray] = {}
    vecs_out: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(names), desc="encode", unit="utt", disable=not progress)
    for batch_utts, wav, lengths in data.batches(batch_size, names):
        out = model.encode(wav.to(device), return_vectors=vectors,
                           lengths=lengths.to(device))  # (B, Tc)[, (B, D, Tc)]
        codes, z_e = out if vectors else (out, None)  # z_e only when asked: it is T-sized
        n_codes = (lengths + model.hop - 1) // model.hop  # (B,)
        for i, utt in enumerate(batch_utts):
            n = int(n_codes[i])
            codes_out[utt] = codes[i, :n].cpu().numpy().astype(np.int64)
            if vectors:
                vecs_out[utt] = z_e[i, :, :n].t().float().cpu().numpy()  # (n, D)
        bar.update(len(batch_utts))
    bar.close()
    return (codes_out, vecs_out) if vectors else codes_out


def audio_files(data_path: str | os.PathLike, utts: Sequence[str],
                sample_rate: int | None = None) -> list[tuple[Path, int]]:
    """The audio file of each utterance and its number of samples as stored, for a wav2vec
    manifest (`speechvq.data.codes.write_manifest`).

    Args:
        data_path: a Kaldi data dir with one file per utterance (no ``segments``), or a dump,
            whose source data dir (``dump.json``) is read.
        utts: the utterances, in manifest order.
        sample_rate: the model's rate; files at another rate get a warning, since fairseq reads
            the files themselves (HuBERT expects 16 kHz).
    Raises:
        DataError: segments (several utterances per file), a dump whose source dir is gone or
            lacks an utterance, or an unreadable file.
    """
    path = Path(data_path)
    if (path / "dump.json").is_file():
        source = Path(SpeechDump.open(path).meta.get("source") or "")
        if not (source / "wav.scp").is_file():
            raise DataError(f"--format km writes a manifest of audio files, but dump '{path}' "
                            f"holds no files and its source data dir '{source}' is gone; pass "
                            f"the Kaldi data dir as --data, or use --format kaldi or gslm")
        path = source
    data = DataDir.load(path, validate=False)
    if data.segments is not None:
        raise DataError(f"--format km writes a manifest of one audio file per utterance, but "
                        f"'{path}' cuts utterances from recordings (segments); write each "
                        f"utterance to its own file first, or use --format kaldi or gslm")
    out, rates = [], set()
    for utt in utts:
        if utt not in data.utt2spk:
            raise DataError(f"utterance {utt} is not in '{path}', the source data dir of the "
                            f"dump; dump it again or pass the data dir as --data")
        file = data.audio_source(utt)[0]
        try:
            info = sf.info(str(file))
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DataError(f"audio file '{file}' of {utt} cannot be read ({e}); run "
                            f"`speechvq validate {path}`") from None
        out.append((file, int(info.frames)))
        rates.add(int(info.samplerate))
    other = sorted(r for r in rates if r != sample_rate)
    if sample_rate is not None and other:
        warnings.warn(f"the manifest's files are at {', '.join(map(str, other))} Hz, the units "
                      f"at {sample_rate} Hz: fairseq reads the files themselves (HuBERT expects "
                      f"16 kHz), so resample them (`speechvq dump` does not write files)")
    return out


def encode_to_file(model_path: str | os.PathLike, data_path: str | os.PathLike,
                   out: str | os.PathLike, *, fmt: str = "kaldi", dedup: bool = False,
                   batch_size: int = 8, checkpoint: str | None = None, device: str = "auto",
                   progress: bool = True, utt_list: str | os.PathLike | None = None,
                   vectors_out: str | os.PathLike | None = None, nj: int = 1,
                   cmd: str | None = None) -> dict[str, np.ndarray]:
    """`speechvq encode`: encode DATA with the model and write a units file (atomically); with
    ``fmt="km"`` also the wav2vec manifest ``<stem>.tsv`` beside it, in the same order. Each
    file is written holding its lock, after the output rules (`speechvq.ownership`) are checked:
    it is never the checkpoint or inside DATA, and a file encode did not make is not replaced.

    Args:
        utt_list: encode only the utterances this file lists (`read_utt_list`).
        vectors_out: also write z_e per utterance there (`write_vectors`; one job only).
        nj, cmd: encode in `nj` parallel jobs (`speechvq.encode_jobs`; ``cmd`` the ``--cmd``
            prefix), logs in ``OUT_DIR/log/encode_<stem>.JOB.log``; the codes are the same.
    Returns:
        the frame-level codes per utterance (before any `dedup`).
    """
    from speechvq.encode_jobs import encode_in_jobs, read_utt_list, write_vectors
    from speechvq.jobs import in_jobs

    if vectors_out is not None and nj > 1:
        raise DataError("--vectors is written by one job; leave out --nj (or give --nj 1)")
    ckpt = resolve_checkpoint(model_path, checkpoint)
    tsv = manifest_path(out) if fmt == "km" else None
    with claim(out, "encode", inputs=[data_path, ckpt], kind="file"), \
            (claim(tsv, "encode", inputs=[data_path, ckpt], kind="file") if tsv
             else nullcontext()), \
            (claim(vectors_out, "encode", inputs=[data_path, ckpt], kind="file") if vectors_out
             else nullcontext()):
        # with jobs, this process only reads the utterance list: the model stays off the GPU
        model = load_vqvae(ckpt, device=pick_device("cpu" if nj > 1 else device))
        data = Utterances(data_path, model.sample_rate)
        utts = data.utts if utt_list is None else read_utt_list(utt_list, data.utts)
        # the manifest is checked before the encoding, so that a refusal costs nothing
        files = audio_files(data_path, utts, model.sample_rate) if tsv else None
        jobs = in_jobs(len(utts), nj, batch_size, cmd)
        if nj > 1 and not jobs:  # one local part: encoded here
            model = model.to(pick_device(device))
        if jobs:
            out_dir = Path(out).parent
            codes = encode_in_jobs(ckpt, data_path, utts, nj=nj, cmd=cmd, work_dir=out_dir,
                                   log_dir=out_dir / "log", name=f"encode_{Path(out).stem}",
                                   batch_size=batch_size, device=device)
        elif vectors_out is not None:
            codes, vecs = encode_utterances(model, data, batch_size=batch_size, utts=utts,
                                            vectors=True, progress=progress)
            write_vectors(vectors_out, vecs)
        else:
            codes = encode_utterances(model, data, batch_size=batch_size, utts=utts,
                                      progress=progress)
        if files is not None:
            write_manifest(tsv, files)  # codes are in utts order, as the files
        write_units(out, codes, format=fmt, dedup=dedup)
    return codes


@torch.no_grad()
def encode_images(model, dump, *, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Codes of every image of an image dump; (N, h, w) int64.

    Args:
        model: an image VQ-VAE in eval mode. dump: an `speechvq.data.images.dump.ImageDump`.
    """
    from speechvq.data.images.batches import to_batch

    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(dump), batch_size), desc="encode", unit="batch",
                      disable=not progress):
        images = np.asarray(dump.images[start:start + batch_size])  # (b, H, W, C)
        x = to_batch(images, dump.labels[start:start + len(images)])["image"].to(device)
        out.append(model.encode(x).cpu().numpy())  # (b, h, w)
    return np.concatenate(out).astype(np.int64)


@torch.no_grad()
def encode_clips(model, clips: np.ndarray, *, batch_size: int = 8,
                 progress: bool = False) -> np.ndarray:
    """Codes of video clips; (N, t, h, w) int64.

    Args:
        model: a video VQ-VAE in eval mode. clips: (N, T, H, W, C) uint8 (a dump's memory map
            is fine: it is read `batch_size` clips at a time).
    """
    from speechvq.data.video.batches import to_clip_batch

    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(clips), batch_size), desc="encode", unit="batch",
                      disable=not progress):
        x = to_clip_batch(np.asarray(clips[start:start + batch_size]))["clip"].to(device)
        out.append(model.encode(x).cpu().numpy())  # (b, t, h, w)
    return np.concatenate(out).astype(np.int64)


def encode_to_code_dump(model_path: str | os.PathLike, data_path: str | os.PathLike,
                        out: str | os.PathLike, *, batch_size: int = 8,
                        checkpoint: str | None = None, device: str = "auto",
                        progress: bool = True):
    """`speechvq encode --codes-out OUT`: the code dump a prior trains on
    (`speechvq.data.code_dump`). A speech checkpoint gives one sequence per utterance of DATA
    (a dump or Kaldi dir) with its speaker as the condition; an image checkpoint one h x w grid
    per image of DATA (an image dump) with its label as the condition; a video checkpoint one
    t x h x w grid per clip of DATA (a video dump), all with the condition `UNLABELLED`. OUT is
    claimed (lock and
    output rules) for the whole encoding.

    Returns:
        The written `speechvq.data.code_dump.CodeDump`.
    """
    from speechvq.checkpoint import checkpoint_kind, load_checkpoint, load_model
    from speechvq.data.code_dump import CodeItem, write_code_dump

    ckpt = resolve_checkpoint(model_path, checkpoint)
    with claim(out, "encode", inputs=[data_path, ckpt],
               ours_if=lambda p: (p / "codes.json").is_file(), kind="dir"):
        kind = checkpoint_kind(load_checkpoint(ckpt))
        dev = pick_device(device)
        if kind == "image":
            from speechvq.tasks.image import open_image_dump

            model = load_model(ckpt, kind="image", device=dev)
            dump = open_image_dump(data_path, model.config, "--data")
            codes = encode_images(model, dump, batch_size=batch_size, progress=progress)
            width = len(str(len(dump) - 1))
            items = [CodeItem(f"{i:0{width}d}", codes[i], dump.classes[dump.labels[i]])
                     for i in range(len(dump))]
            return write_code_dump(out, items, modality="image",
                                   codebook_size=model.codebook_size,
                                   conditions=list(dump.classes), checkpoint=ckpt,
                                   source=data_path, grid=codes.shape[1:])
        if kind == "video":
            from speechvq.tasks.video import open_video_dump

            model = load_model(ckpt, kind="video", device=dev)
            dump = open_video_dump(data_path, model.config, "--data")
            codes = encode_clips(model, dump.clips, batch_size=batch_size, progress=progress)
            items = [CodeItem(name, c, UNLABELLED) for name, c in zip(dump.names, codes)]
            return write_code_dump(out, items, modality="video",
                                   codebook_size=model.codebook_size, conditions=[UNLABELLED],
                                   checkpoint=ckpt, source=data_path, grid=codes.shape[1:])
        if kind != "speech":
            raise DataError(f"checkpoint '{ckpt}' holds a '{kind}' model; `encode --codes-out` "
                            f"takes a speech, image or video VQ-VAE")
        model = load_vqvae(ckpt, device=dev)
        data = Utterances(data_path, model.sample_rate)
        seqs = encode_utterances(model, data, batch_size=batch_size, progress=progress)
        unknown = sorted({data.speaker(u) for u in seqs} - set(model.speakers))
        conditions = list(model.speakers) + unknown  # unseen speakers: no embedding, kept named
        items = [CodeItem(u, c, data.speaker(u)) for u, c in seqs.items()]
        return write_code_dump(out, items, modality="speech",
                               codebook_size=model.quantizer.codebook_size,
                               conditions=conditions, checkpoint=ckpt, source=data_path,
                               frame_rate_hz=model.sample_rate / model.hop)
