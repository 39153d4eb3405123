"""The dump: a Kaldi data dir decoded once into one contiguous int16 array plus an index.

Stage 1 of DESIGN.md. Training then reads random windows through a memory map without decoding a
single file, as nanoGPT's ``get_batch`` reads its token memmap and fairseq's ``simple_kmeans``
reads its feature dump (one array + per-utterance offsets/lengths). Layout of ``OUT/``:

- ``audio.npy``: int16 (N,), every utterance back to back in index order, at the model rate.
  Quantisation: ``q = clip(round(x * 32768), -32768, 32767)``, read back as ``q / 32768``,
  as libsndfile reads 16-bit PCM, so 16-bit sources are stored losslessly (error otherwise at
  most 0.5 / 32768, about -96 dBFS).
- ``index.tsv``: a header line, then ``utt speaker offset length seg_offset seg_count`` (tabs),
  one line per utterance, sorted by utt (byte order); offsets contiguous from 0.
- ``speakers.txt``: sorted unique speakers, one per line; a speaker's id is its 0-based line.
- ``utt2spk`` and, when the data dir has one, ``text``: Kaldi tables of the dumped utterances.
- ``phones.npy``: int32 (n_seg, 3) start_sample, end_sample, phone_index relative to the
  utterance (an utt's rows are ``[seg_offset, seg_offset + seg_count)``), and ``phones.txt``
  (``PHONE INDEX``); only when the data dir has ``phones.ctm``. CTM and ``segments`` times
  become samples as ``floor(t * sample_rate + 0.5)``.
- ``skipped.txt``: ``utt file reason`` for each utterance left out by ``skip_bad=True``.
- ``dump.json`` (written last): version, sample_rate, n_utts, n_samples, n_speakers, normalize,
  source, source_digest (of the data dir's text files), has_alignments, n_skipped, pcm_scale,
  and checksums (SHA-256 of every file above, taken when the dump is made; ``speechvq validate
  DUMP`` checks them, `SpeechDump.verify`).
- ``.speechvq``: the marker saying `speechvq dump` made the folder (`speechvq.ownership`).

Each file is decoded once (all its ``segments`` are cut from it) by ``nj`` spawned worker
processes, in order. Work is committed in parts (``OUT.tmp/parts/part_00012.{npy,tsv}``, each
written atomically, the ``.tsv`` last), so a rerun after a kill continues from the last finished
part; the finished dump is assembled in ``OUT.tmp/`` and renamed to ``OUT``. The whole run holds
OUT's lock and follows the output rules (`speechvq.ownership.claim`): a second dump to the same
OUT at once is refused, and an OUT or OUT.tmp that `speechvq dump` did not make is never replaced.
The reader, `SpeechDump`, lives in `speechvq.data.speech.dumpfile`.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from speechvq.progress import tqdm

from speechvq.audio import is_silent, load_audio
from speechvq.data.speech.dumpfile import (DUMP_VERSION, INDEX_HEADER, PCM_SCALE, SpeechDump,
                                           dump_checksums)
from speechvq.data.speech.kaldi import DataDir, write_table
from speechvq.errors import ConfigError, DataError, DiskFullError, SpeechVQError
from speechvq.fileio import atomic_save_npy, atomic_write_json, atomic_write_text, disk_full_error
from speechvq.ownership import MARKER, Claim, claim
from speechvq.workers import die_with_parent, worker_initargs

__all__ = ["dump_data_dir", "SpeechDump", "SILENCE_DB", "PART_FILES"]

SILENCE_DB = -60.0  # an utterance whose peak is below this (dBFS) is silent, hence bad
PART_FILES = 64  # audio files per committed part (the unit of resumption)
_SOURCE_FILES = ("wav.scp", "segments", "utt2spk", "text", "phones.ctm", "phones.txt")


def _say(msg: str, progress: bool) -> None:
    if progress:
        tqdm.write(f"speechvq dump: {msg}", file=sys.stderr)


def _sample(seconds: float, sample_rate: int) -> int:
    """Seconds -> sample index, rounded half up (the convention of the segments and CTM cuts)."""
    return int(math.floor(seconds * sample_rate + 0.5))


def _clean(s: str) -> str:
    return re.sub(r"\s+", " ", str(s)).strip()


# ---------------------------------------------------------------------------------- the worker


def _decode_file(item: tuple) -> list[tuple]:
    """Decode one audio file and cut its utterances (runs in a worker process).

    Args:
        item: (path, sample_rate, normalize, [(utt, start_s | None, end_s | None), ...]).
    Returns:
        [(utt, "ok", int16 array (T,)) or (utt, "bad", reason), ...] in the item's order.
    """
    path, sample_rate, normalize, utts = item
    try:
        x, _ = load_audio(path, sample_rate)  # (T,) float32
    except SpeechVQError as e:
        return [(utt, "bad", _clean(e)) for utt, _, _ in utts]
    out = []
    for utt, start_s, end_s in utts:
        a = 0 if start_s is None else min(_sample(start_s, sample_rate), x.size)
        b = x.size if end_s is None or end_s < 0 else min(_sample(end_s, sample_rate), x.size)
        seg = x[a:b]  # (T_utt,)
        if seg.size == 0:
            out.append((utt, "bad", f"empty (segment [{start_s}, {end_s}) s holds no samples)"))
            continue
        peak = float(np.abs(seg).max())
        if is_silent(seg, SILENCE_DB):
            db = "-inf" if peak == 0 else f"{20 * math.log10(peak):.1f}"
            out.append((utt, "bad", f"silent (peak {db} dBFS, below {SILENCE_DB:g} dBFS)"))
            continue
        full_scale = (PCM_SCALE - 1) / PCM_SCALE  # the largest positive int16 sample
        if normalize or peak > full_scale:
            seg = seg * (full_scale / peak)  # peak-normalise, or scale down only what would clip
        q = np.clip(np.rint(seg.astype(np.float64) * PCM_SCALE), -PCM_SCALE, PCM_SCALE - 1)
        out.append((utt, "ok", q.astype(np.int16)))
    return out


def _decoded(items: list[tuple], nj: int):
    """Yield `_decode_file(item)` for each item, in order, with `nj` spawned processes.

    A process pool executor rather than ``multiprocessing.Pool``: a worker that dies (killed for
    memory) raises BrokenProcessPool instead of hanging, and on an error (a bad file) the
    queued work is cancelled instead of decoded. Workers end with the parent (`die_with_parent`).
    """
    if nj == 1 or len(items) <= 1:
        for item in items:
            yield _decode_file(item)  # looked up at call time (tests patch it)
        return
    ctx = mp.get_context("spawn")  # no fork: the parent may hold torch threads
    chunk = max(1, min(8, len(items) // (4 * nj)))
    pool = ProcessPoolExecutor(min(nj, len(items)), mp_context=ctx, initializer=die_with_parent,
                               initargs=worker_initargs())
    try:
        yield from pool.map(_decode_file, items, chunksize=chunk)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------------- the parts


def _write_part(parts_dir: Path, k: int, results: list[list[tuple]], files: list[str]) -> None:
    """Commit part k: the concatenated int16 audio, then its index (the commit marker)."""
    chunks, lines = [], []
    for file, result in zip(files, results):
        for utt, status, payload in result:
            if status == "ok":
                chunks.append(payload)
                lines.append(f"ok\t{utt}\t{payload.size}")
            else:
                lines.append(f"bad\t{utt}\t{_clean(file)}\t{_clean(payload)}")
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)  # (T_part,)
    # a stable temp name: a rerun after a kill mid-write overwrites it, so none is left over
    atomic_save_npy(parts_dir / f"part_{k:05d}.npy", audio, stable_name=True)
    atomic_write_text(parts_dir / f"part_{k:05d}.tsv", "".join(x + "\n" for x in lines))


def _read_part(parts_dir: Path, k: int, utts: list[str]) -> list[list[str]] | None:
    """The committed lines of part k, or None if it is missing, partial, or not for `utts`."""
    tsv, npy = parts_dir / f"part_{k:05d}.tsv", parts_dir / f"part_{k:05d}.npy"
    if not (tsv.is_file() and npy.is_file()):
        return None
    rows = [line.split("\t") for line in tsv.read_text(encoding="utf-8").splitlines()]
    try:
        n = np.load(npy, mmap_mode="r", allow_pickle=False).shape[0]
        total = sum(int(r[2]) for r in rows if r[0] == "ok")
    except (ValueError, OSError, IndexError):
        return None
    if [r[1] for r in rows] != utts or n != total:
        return None
    return rows


# ------------------------------------------------------------------------------------ the dump


def _source_digest(data_dir: Path) -> str:
    h = hashlib.sha256()
    for name in _SOURCE_FILES:
        p = data_dir / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _is_dump(path: Path) -> bool:
    """A dump made before dumps carried the ownership marker."""
    return (path / "dump.json").is_file()


def _is_dump_tmp(path: Path) -> bool:
    """An ``OUT.tmp`` that `dump_data_dir` left (killed or stopped by a bad file)."""
    return (path / "plan.json").is_file() or (path / "dump.json").is_file()


def _check_existing(out: Path, want: dict, progress: bool) -> None:
    """Return if `out` is a complete dump made the same way; otherwise raise DataError."""
    meta_path = out / "dump.json"
    if not meta_path.is_file():
        raise DataError(f"output '{out}' exists and is not a complete dump (no dump.json); "
                        f"remove it or choose another OUT")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        meta = {}
    diff = [f"{k} {meta.get(k)!r} there, {v!r} asked" for k, v in want.items()
            if meta.get(k) != v]
    if diff:
        raise DataError(f"dump '{out}' exists but was made differently ({'; '.join(diff)}); "
                        f"remove it (rm -r {out}) or choose another OUT")
    _say(f"'{out}' is complete ({meta.get('n_utts')} utterances); skipping", progress)


def _phone_rows(data: DataDir, utts: list[str], lengths: list[int], phones: list[str],
                sample_rate: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """CTM times -> (phones.npy rows (n_seg, 3) int32, [(seg_offset, seg_count)] per utt)."""
    index = {p: i for i, p in enumerate(phones)}
    rows, spans = [], []
    for utt, length in zip(utts, lengths):
        first = len(rows)
        for start_s, dur_s, phone in (data.ctm or {}).get(utt, []):
            a = min(max(_sample(start_s, sample_rate), 0), length)
            b = min(max(_sample(start_s + dur_s, sample_rate), 0), length)
            if b > a:
                rows.append((a, b, index[phone]))
        spans.append((first, len(rows) - first))
    return np.asarray(rows, dtype=np.int32).reshape(-1, 3), spans


def dump_data_dir(data_dir, out_dir, *, sample_rate: int = 16000, normalize: bool = False,
                  nj: int = 1, skip_bad: bool = False, progress: bool = True) -> Path:
    """Decode a Kaldi data dir once into a dump (layout in the module docstring).

    Args:
        data_dir: Kaldi data dir (validated on load; ``segments`` cut [start, end) from their
            recording; ``phones.ctm`` + ``phones.txt`` become frame-exact sample alignments).
        out_dir: the dump to make; built in ``OUT.tmp/`` and renamed when complete. If it exists
            and was made from the same source, rate and normalisation, nothing is done.
        sample_rate: model rate in Hz; every file is resampled to it (soxr).
        normalize: peak-normalise each utterance (default: scale down only where |x| > 1).
        nj: worker processes decoding files in parallel (the result does not depend on it).
        skip_bad: leave out corrupt, empty or silent utterances (listed in ``skipped.txt``)
            instead of stopping at the first one.
        progress: show a progress bar and messages on stderr.
    Returns:
        The path of the complete dump.
    Raises:
        DataError: invalid data dir, a bad file (naming file and utterance; OUT is not created,
            finished parts stay in OUT.tmp for the rerun), or OUT is a dump made differently.
        LockedError: another run is writing OUT. OutputError: OUT is inside (or holds) the
            data dir, or OUT / OUT.tmp exist and were not made by `speechvq dump`.
        DiskFullError: the disk filled up (the partial file is removed, finished parts kept).
    """
    data_dir, out = Path(data_dir), Path(out_dir)
    if nj < 1:
        raise ConfigError(f"--nj must be at least 1 (got {nj})")
    if sample_rate < 1:
        raise ConfigError(f"sample_rate must be positive (got {sample_rate})")
    want = {"version": DUMP_VERSION, "source": str(data_dir.resolve()), "sample_rate":
            int(sample_rate), "normalize": bool(normalize), "source_digest": None}
    tmp = out.with_name(out.name + ".tmp")
    with claim(out, "dump", inputs=[data_dir], ours_if=_is_dump, kind="dir") as c:
        c.check(tmp, ours_if=_is_dump_tmp)
        try:
            return _dump(c, data_dir, out, tmp, want, nj=nj, skip_bad=skip_bad,
                         progress=progress)
        except DiskFullError as e:
            if not tmp.exists():
                raise
            raise DiskFullError(f"{e}; the finished parts stay in '{tmp}' for the rerun (remove "
                                f"that folder to free their space)") from None


def _dump(c: Claim, data_dir: Path, out: Path, tmp: Path, want: dict, *, nj: int,
          skip_bad: bool, progress: bool) -> Path:
    """`dump_data_dir` once OUT is claimed."""
    if (data_dir / "wav.scp").is_file():
        want["source_digest"] = _source_digest(data_dir)
    if out.exists() and any(e.name != MARKER for e in out.iterdir()):
        _check_existing(out, want, progress)
        return out
    data = DataDir.load(data_dir)  # validates; DataError naming the file and line otherwise
    # validation made sure phones.txt exists beside phones.ctm and holds every CTM phone
    phones = list(data.phones) if data.ctm else None
    utts = sorted(data.utterances())

    files: dict[str, list[tuple]] = {}  # audio path -> [(utt, start_s, end_s)], first-use order
    for utt in utts:
        path, start_s, end_s = data.audio_source(utt)
        files.setdefault(str(path), []).append((utt, start_s, end_s))
    paths = list(files)
    parts = [paths[i:i + PART_FILES] for i in range(0, len(paths), PART_FILES)]
    part_utts = [[u for p in part for u, _, _ in files[p]] for part in parts]

    parts_dir = tmp / "parts"
    plan = dict(want, part_files=PART_FILES, n_files=len(paths), n_utts=len(utts))
    plan_path = tmp / "plan.json"
    if tmp.exists():
        if _finished(tmp, want):  # killed between the last write and the rename
            _rename(tmp, out)
            return out
        try:
            old = json.loads(plan_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            old = None
        if old != plan:
            _say(f"'{tmp}' was left by a different run; starting over", progress)
            shutil.rmtree(tmp)
    if not tmp.exists():
        parts_dir.mkdir(parents=True)
        c.mark(tmp)
        atomic_write_json(plan_path, plan)

    done = {k: rows for k in range(len(parts))
            if (rows := _read_part(parts_dir, k, part_utts[k])) is not None}
    if done:
        _say(f"resuming: {len(done)} of {len(parts)} parts already done in '{tmp}'", progress)
    todo = [(k, p) for k in range(len(parts)) if k not in done for p in parts[k]]
    if not skip_bad:  # a part committed by an earlier --skip-bad run may hold bad files
        for k in sorted(done):
            for r in done[k]:
                if r[0] == "bad":
                    raise DataError(f"bad audio '{r[2]}' (utterance {r[1]}): {r[3]}; fix or "
                                    f"remove it in {data_dir}, or rerun with --skip-bad")

    items = [(p, want["sample_rate"], want["normalize"], files[p]) for _, p in todo]
    left = {k: len(parts[k]) for k, _ in todo}
    pending: dict[int, list] = {}
    with tqdm(total=len(paths), initial=len(paths) - len(todo), unit="file", disable=not progress,
              desc=f"dump {data_dir.name}", file=sys.stderr) as bar, \
            closing(_decoded(items, nj)) as results:  # an error stops the workers at once
        for (k, path), result in zip(todo, results):
            for utt, status, reason in result:
                if status != "ok" and not skip_bad:
                    raise DataError(f"bad audio '{path}' (utterance {utt}): {reason}; fix or "
                                    f"remove it in {data_dir} (then `speechvq fix {data_dir}`), "
                                    f"or rerun with --skip-bad to leave it out; finished parts "
                                    f"are kept in '{tmp}'")
            pending.setdefault(k, []).append(result)
            bar.update(1)
            left[k] -= 1
            if left[k] == 0:
                _write_part(parts_dir, k, pending.pop(k), parts[k])
                done[k] = _read_part(parts_dir, k, part_utts[k])
    assert not pending and len(done) == len(parts), "every part is committed"

    _assemble(tmp, data, data_dir, [done[k] for k in range(len(parts))], phones, want, progress)
    _rename(tmp, out)
    return out


def _rename(tmp: Path, out: Path) -> None:
    """Move the finished ``OUT.tmp`` onto OUT (which is absent, or empty: the claim checked)."""
    if out.is_dir():
        (out / MARKER).unlink(missing_ok=True)
        out.rmdir()
    os.replace(tmp, out)


def _reserve(path: Path) -> None:
    """Allocate the whole file now, so a full disk fails here with `DiskFullError` instead of
    as a SIGBUS in the middle of writing through the memory map."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        full = disk_full_error(e, path, size=size)
        if full is None:
            raise
        raise full from None
    finally:
        os.close(fd)



def _assemble(tmp: Path, data: DataDir, data_dir: Path, part_rows: list[list[list[str]]],
              phones: list[str] | None, want: dict, progress: bool) -> None:
    """Join the committed parts into the final files of the dump, in ``tmp``."""
    where, skipped = {}, []  # utt -> (part, offset in part, length)
    for k, rows in enumerate(part_rows):
        off = 0
        for r in rows:
            if r[0] == "ok":
                where[r[1]] = (k, off, int(r[2]))
                off += int(r[2])
            else:
                skipped.append((r[1], r[2], r[3]))
    utts = sorted(where)
    if not utts:
        raise DataError(f"no usable audio in {data_dir}: all {len(skipped)} utterances are bad "
                        f"(see the reasons with --skip-bad off)")
    lengths = [where[u][2] for u in utts]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(offsets[-1])

    audio = open_memmap(tmp / "audio.npy", mode="w+", dtype=np.int16, shape=(total,))  # (N,)
    try:
        _reserve(tmp / "audio.npy")
    except DiskFullError:
        (tmp / "audio.npy").unlink()  # nothing was written through the map yet
        raise
    src = {}
    for i, u in enumerate(utts):
        k, off, n = where[u]
        if k not in src:
            src[k] = np.load(tmp / "parts" / f"part_{k:05d}.npy", mmap_mode="r")
        audio[offsets[i]:offsets[i] + n] = src[k][off:off + n]
    audio.flush()
    del audio, src

    spans = [(0, 0)] * len(utts)
    if phones is not None:
        rows, spans = _phone_rows(data, utts, lengths, phones, want["sample_rate"])
        atomic_save_npy(tmp / "phones.npy", rows, stable_name=True)
        atomic_write_text(tmp / "phones.txt", "".join(f"{p} {i}\n" for i, p in enumerate(phones)))
    spk = [data.utt2spk[u] for u in utts]
    atomic_write_text(tmp / "index.tsv", INDEX_HEADER + "".join(
        f"{u}\t{s}\t{offsets[i]}\t{lengths[i]}\t{spans[i][0]}\t{spans[i][1]}\n"
        for i, (u, s) in enumerate(zip(utts, spk))))
    speakers = sorted(set(spk))
    atomic_write_text(tmp / "speakers.txt", "".join(s + "\n" for s in speakers))
    write_table(tmp / "utt2spk", [(u, s) for u, s in zip(utts, spk)])
    if data.text is not None:
        write_table(tmp / "text", [(u, data.text[u]) for u in utts if u in data.text])
    if skipped:
        atomic_write_text(tmp / "skipped.txt", "".join(f"{u} {f} {r}\n" for u, f, r in skipped))
        _say(f"skipped {len(skipped)} bad utterance(s), listed in skipped.txt", progress)
    meta = dict(want, n_utts=len(utts), n_samples=total, n_speakers=len(speakers),
                has_alignments=phones is not None, n_skipped=len(skipped), pcm_scale=PCM_SCALE,
                checksums=dump_checksums(tmp))
    atomic_write_json(tmp / "dump.json", meta)  # last: a tmp with dump.json is complete
    SpeechDump(tmp)  # the result must pass the reader's checks before it is renamed
    _finished(tmp, want)


def _finished(tmp: Path, want: dict) -> bool:
    """True (after removing the parts) if ``tmp`` holds a complete dump made as `want` says."""
    try:
        meta = json.loads((tmp / "dump.json").read_text(encoding="utf-8"))
        SpeechDump(tmp)
    except (OSError, ValueError, UnicodeDecodeError, DataError):
        return False
    if any(meta.get(k) != v for k, v in want.items()):
        return False
    shutil.rmtree(tmp / "parts", ignore_errors=True)
    (tmp / "plan.json").unlink(missing_ok=True)
    return True
