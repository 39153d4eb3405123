"""The built-in corpus: multi-speaker English with exact phone alignments, synthesised offline.

`prepare_builtin` makes five Kaldi data dirs (``train``, ``dev``, ``test``, ``test_unseen``,
``test_reread``) of
16 kHz speech synthesised with eSpeak NG (through ctypes, from the ``builtin`` extra:
``pip install "speechvq[builtin]"``; see builtin_synth.py and notes/builtin_corpus.md). Each has
``phones.ctm`` with every sample labelled by one of 39 ARPAbet phones or ``SIL``, ``phones.txt``,
``phones_fold.txt`` (the folding onto TIMIT's 39 classes) and ``spk2gender``.

- Speakers: eSpeak voice variants (formant sets) x pitch, pitch range and rate, in the ``en-us``
  and ``en-us-nyc`` accents, men and women; the ``seen`` ones make ``train``/``dev``/``test``,
  the ``unseen`` ones only ``test_unseen``.
- Text (builtin_text.py): 64 hand-written phonetically rich sentences plus a seeded grammar.
  Sentences are split into train/dev/test sets: ``train`` = seen speakers x train sentences,
  ``dev`` = seen x dev, ``test`` = seen x test (each test sentence read by at least two seen
  speakers: parallel targets for voice conversion) and ``test_unseen`` = unseen x test sentences.
  No test or dev sentence occurs in ``train``. Utterance ids are ``<speaker>_<sentence>``, so
  ``m01_0042`` and ``f03_0042`` are the same sentence.
- ``test_reread``: every reader of ``test`` reads each of its sentences a second time
  (``<speaker>_r2_<sentence>``, e.g. ``m01_r2_0042``), a few percent faster or slower and a
  little higher or lower, as a person rereading would. Two real readings by the same speaker are
  what the MCD topline of `speechvq evaluate conversion` needs. A split of its own, so that unit
  scores on ``test`` are not inflated by near-duplicates (within-speaker ABX would be).
- Deterministic: each speaker is synthesised in a fresh ``spawn`` process with per-utterance seeds;
  two runs give byte-identical files on one machine (eSpeak keeps static state otherwise).
- Cached under ``$SPEECHVQ_CACHE/builtin/<version>-<size>-seed<seed>/`` (default
  ``~/.cache/speechvq``), built in a temp dir and renamed when complete; the data dirs hold
  hard links (or copies) of the wavs, so they keep working if the cache is deleted.
  ``use_cache=False`` (``--no-cache``) synthesises afresh without reading or writing the cache.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from speechvq.data.builtin import synth
from speechvq.data.builtin.text import HANDWRITTEN, make_sentences
from speechvq.data.cache import cache_root
from speechvq.data.speech.kaldi import DataDir, check_id, read_ctm, read_table, write_ctm, write_table
from speechvq.errors import DataError
from speechvq.fileio import atomic_write_json, atomic_write_text
from speechvq.ownership import Claim, claim
from speechvq.workers import die_with_parent, worker_initargs

__all__ = ["prepare_builtin", "plan_corpus", "cache_root", "is_builtin_split", "Speaker", "SEEN",
           "UNSEEN", "SIZES", "SPLITS", "GENERATOR_VERSION"]

GENERATOR_VERSION = "v2"  # bump whenever the generated audio or labels change
README_TITLE = "# speechvq built-in corpus"  # how OUT/README.md starts (`is_builtin_split`)
SPLITS = ("train", "dev", "test", "test_unseen", "test_reread")


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: eSpeak voice (``accent+variant``) and its prosody settings."""

    id: str
    voice: str
    sex: str  # "m" or "f" (Kaldi spk2gender)
    pitch: int  # eSpeak base pitch, 0-99 (50 = the variant's own)
    range: int  # pitch range, 0-99
    rate: int  # words per minute (kept well under 450, where eSpeak changes its time-stretching)


SECOND_READING = "r2"  # utterance id infix of a test sentence's second reading by a speaker


def second_reading_prosody(speaker: Speaker, utt: str, seed: int) -> tuple[int, int]:
    """(rate, pitch) of a second reading: 4-8 % faster or slower and 2-5 pitch steps higher or
    lower than the speaker's own (a person rereading, not another voice); seeded by utt."""
    # The audio also depends on the eSpeak state left by the speaker's earlier utterances in the
    # same process (see builtin_synth); deterministic because the plan's order is fixed and
    # versioned (GENERATOR_VERSION), and second readings come after every first reading.
    rng = random.Random(f"speechvq-builtin-reread-{seed}-{utt}")
    rate = speaker.rate * (1 + rng.choice((-1, 1)) * rng.uniform(0.04, 0.08))
    pitch = speaker.pitch + rng.choice((-1, 1)) * rng.randint(2, 5)
    return round(rate), min(99, max(0, pitch))


def _spk(spec: str) -> Speaker:
    sid, voice, pitch, rng, rate = spec.split()
    return Speaker(sid, voice, sid[0], int(pitch), int(rng), int(rate))


# Ordered pools: a size takes the first n of each, so smaller sizes are subsets of larger ones.
SEEN = tuple(map(_spk, (
    "m01 en-us+m3 50 50 165", "f01 en-us+f1 50 50 160", "m02 en-us+paul 45 40 170",
    "f02 en-us+linda 50 60 165", "m03 en-us-nyc+m8 55 50 155", "f03 en-us-nyc+f3 45 50 175",
    "m04 en-us+david 60 60 160", "f04 en-us+Annie 55 40 150", "m05 en-us+klatt4 40 50 175",
    "f05 en-us-nyc+belinda 40 50 165", "m06 en-us-nyc+Gene 50 60 185", "f06 en-us+f2 60 50 170",
    "m09 en-us+m1 35 50 180", "f09 en-us+shelby 60 50 170", "m10 en-us+Mike 50 50 150",
    "f10 en-us+aunty 45 50 175", "m11 en-us-nyc+rob 65 50 165", "f11 en-us-nyc+grandma 55 50 160",
    "m12 en-us+norbert 45 50 160", "f12 en-us+steph 50 50 165",
    "m13 en-us-nyc+benjamin 55 50 175", "f13 en-us-nyc+f5 45 50 170", "m14 en-us+ed 40 50 155",
    "f14 en-us+Andrea 40 50 165",
)))
UNSEEN = tuple(map(_spk, (
    "m07 en-us+m7 50 50 165", "f07 en-us+anika 45 50 160", "m08 en-us-nyc+quincy 55 50 170",
    "f08 en-us-nyc+f4 50 60 155", "m15 en-us+adam 60 50 170", "f15 en-us+f1 75 60 175",
    "m16 en-us-nyc+robert 50 50 160", "f16 en-us-nyc+linda 30 50 180",
)))

# Per size: speakers, sentences per split, and how many seen speakers read each sentence.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(seen=4, unseen=2, train=5, dev=2, test=2, train_reads=4, dev_reads=2,
                 test_reads=4),
    "default": dict(seen=12, unseen=4, train=240, dev=30, test=30, train_reads=3, dev_reads=3,
                    test_reads=6),
    "large": dict(seen=24, unseen=8, train=840, dev=80, test=80, train_reads=4, dev_reads=3,
                  test_reads=6),
}


def plan_corpus(size: str = "default", seed: int = 0) -> list[dict]:
    """Who reads what in which split, without synthesising anything.

    Args:
        size: ``tiny``, ``default`` or ``large`` (see `SIZES`).
        seed: chooses the grammar sentences, the sentence splits and the readers.
    Returns:
        One dict per utterance, sorted by id: ``utt``, ``speaker``, ``split``, ``text`` and
        ``reading`` (1, or 2 for a test sentence's second reading, in ``test_reread``).
    """
    _check_args(size, seed)
    cfg = SIZES[size]
    n_sent = cfg["train"] + cfg["dev"] + cfg["test"]
    pool = make_sentences(max(0, n_sent - len(HANDWRITTEN)), seed)
    rng = random.Random(f"speechvq-builtin-plan-{seed}")
    order = rng.sample(range(len(pool)), n_sent)
    sets = {"test": order[:cfg["test"]], "dev": order[cfg["test"]:cfg["test"] + cfg["dev"]],
            "train": order[cfg["test"] + cfg["dev"]:]}
    seen, unseen = SEEN[:cfg["seen"]], UNSEEN[:cfg["unseen"]]
    utts = []
    for split in ("train", "dev", "test"):
        load = {s.id: 0 for s in seen}
        for sent in sorted(sets[split]):
            # the least-loaded seen speakers read it (ties broken at random): balanced, mixed
            readers = sorted(load, key=lambda s: (load[s], rng.random()))[:cfg[f"{split}_reads"]]
            for spk in readers:
                load[spk] += 1
                utts.append(dict(utt=f"{spk}_{sent:04d}", speaker=spk, split=split,
                                 text=pool[sent], reading=1))
                if split == "test":
                    utts.append(dict(utt=f"{spk}_{SECOND_READING}_{sent:04d}", speaker=spk,
                                     split="test_reread", text=pool[sent], reading=2))
        if split == "test":
            utts += [dict(utt=f"{s.id}_{sent:04d}", speaker=s.id, split="test_unseen",
                          text=pool[sent], reading=1)
                     for s in unseen for sent in sorted(sets["test"])]
    return sorted(utts, key=lambda u: u["utt"])


def _check_args(size: str, seed: int) -> None:
    if size not in SIZES:
        raise DataError(f"unknown built-in corpus size {size!r}; choose one of "
                        f"{', '.join(SIZES)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"the built-in corpus seed must be an integer (got {seed!r})")


def _require_espeak() -> None:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        raise DataError('the built-in corpus is synthesised with eSpeak NG, which is not '
                        'installed: pip install "speechvq[builtin]"') from None


def _generate(corpus: Path, size: str, seed: int, nj: int, progress: bool) -> None:
    """Synthesise the whole corpus into the (empty, private) directory ``corpus``."""
    from speechvq.progress import tqdm

    plan = plan_corpus(size, seed)
    for u in plan:  # our own ids, but checked like any preparer's before anything is written
        check_id(u["speaker"], "speaker id", f"built-in corpus ({size})")
        check_id(u["utt"], "utterance id", f"built-in corpus ({size})")
    speakers = {s.id: s for s in SEEN + UNSEEN}
    wav_dir = corpus / "wav"
    wav_dir.mkdir(parents=True)
    tasks = []
    for spk in sorted({u["speaker"] for u in plan}):
        s = speakers[spk]
        # (utt, text, rate, pitch) in id order: first readings first, as in generator v1
        utts = [(u["utt"], u["text"]) + ((s.rate, s.pitch) if u["reading"] == 1 else
                                         second_reading_prosody(s, u["utt"], seed))
                for u in plan if u["speaker"] == spk]
        tasks.append(dict(speaker=spk, voice=s.voice, rate=s.rate, pitch=s.pitch, range=s.range,
                          seed=seed, wav_dir=str(wav_dir), utts=utts))
    # One fresh process per speaker: eSpeak's wave generator keeps state across utterances.
    ctx = multiprocessing.get_context("spawn")
    ctm: dict[str, list[tuple[float, float, str]]] = {}
    with ctx.Pool(max(1, min(nj, len(tasks))), maxtasksperchild=1, initializer=die_with_parent,
                  initargs=worker_initargs()) as pool:  # workers end with this process
        results = pool.imap_unordered(synth.synthesize_speaker, tasks)
        for _spk_id, utts in tqdm(results, total=len(tasks), desc="builtin: speakers",
                                  unit="spk", disable=not progress):
            for utt, n, segs in utts:
                sr = synth.SAMPLE_RATE
                ctm[utt] = [(a / sr, (b - a) / sr, p) for a, b, p in segs]
                assert segs[-1][1] == n and segs[0][0] == 0, utt
    write_table(corpus / "utt2spk", {u["utt"]: u["speaker"] for u in plan})
    write_table(corpus / "utt2split", {u["utt"]: u["split"] for u in plan})
    write_table(corpus / "text", {u["utt"]: u["text"] for u in plan})
    write_ctm(corpus / "phones.ctm", ctm)
    info = dict(generator_version=GENERATOR_VERSION, size=size, seed=seed, n_utts=len(plan),
                sample_rate=synth.SAMPLE_RATE, espeakng_loader=_loader_version())
    atomic_write_json(corpus / "corpus.json", info, indent=1)


def _loader_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("espeakng-loader")
    except PackageNotFoundError:
        return "unknown"


def _complete(corpus: Path) -> bool:
    """True when ``corpus`` is a finished corpus dir whose wavs are all still there."""
    try:
        utts = read_table(corpus / "utt2spk")
        info = json.loads((corpus / "corpus.json").read_text())
    except (OSError, ValueError, DataError):
        return False
    return (info.get("generator_version") == GENERATOR_VERSION and info.get("n_utts") == len(utts)
            and all((corpus / "wav" / f"{u}.wav").is_file() for u in utts))


def _clean_stale(parent: Path, prefix: str) -> None:
    """Remove temp dirs ``<prefix><pid>-*`` left by killed runs (their pid no longer exists)."""
    for d in parent.glob(f"{prefix}*"):
        try:
            os.kill(int(d.name[len(prefix):].split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError):
            pass


def _cached_corpus(size: str, seed: int, nj: int, progress: bool) -> Path:
    """The cache dir of (size, seed), generated first if missing or incomplete."""
    root = cache_root() / "builtin"
    key = f"{GENERATOR_VERSION}-{size}-seed{seed}"
    final = root / key
    if _complete(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    prefix = f".{key}.tmp-"
    _clean_stale(root, prefix)
    tmp = root / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        _generate(tmp, size, seed, nj, progress)
        if final.exists():  # incomplete (or finished meanwhile by another run)
            if _complete(final):
                return final
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:  # another run renamed its copy first
            if not _complete(final):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _place(src: Path, dst: Path, move: bool) -> None:
    if move:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dst)


def _is_builtin_split(path: Path) -> bool:
    """A split dir of the built-in corpus made before split dirs carried the ownership marker."""
    return (path / "phones_fold.txt").is_file() and (path / "spk2gender").is_file()


def _is_builtin_readme(path: Path) -> bool:
    """The README.md an older `prepare builtin` wrote."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().startswith("# speechvq built-in corpus")
    except (OSError, UnicodeDecodeError):
        return False


def _write_splits(corpus: Path, out_dir: Path, move: bool, c: Claim) -> dict[str, Path]:
    """Kaldi dirs ``out_dir/<split>`` from a corpus dir (wavs hard-linked, copied or moved);
    each is marked as prepare's (`c`) before it is renamed into place."""
    utt2spk = read_table(corpus / "utt2spk")
    utt2split = read_table(corpus / "utt2split")
    text = read_table(corpus / "text")
    ctm = read_ctm(corpus / "phones.ctm")
    sex = {s.id: s.sex for s in SEEN + UNSEEN}
    out = {}
    for split in SPLITS:
        utts = [u for u in utt2spk if utt2split[u] == split]
        final = out_dir / split
        tmp = out_dir / f".{split}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "wav").mkdir(parents=True)
        for u in utts:
            _place(corpus / "wav" / f"{u}.wav", tmp / "wav" / f"{u}.wav", move)
        d = DataDir(path=None, wav_scp={u: str(final / "wav" / f"{u}.wav") for u in utts},
                    utt2spk={u: utt2spk[u] for u in utts}, text={u: text[u] for u in utts},
                    ctm={u: ctm[u] for u in utts}, phones=list(synth.PHONES))
        d.save(tmp)  # wav.scp, utt2spk, spk2utt, text, phones.ctm, phones.txt
        write_table(tmp / "spk2gender", {s: sex[s] for s in d.speakers()})
        write_table(tmp / "phones_fold.txt", synth.TIMIT_FOLD39)
        c.mark(tmp)
        old = out_dir / f".{split}.old-{os.getpid()}"
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        out[split] = final
    return out


def prepare_builtin(out_dir: str | os.PathLike, *, size: str = "default", seed: int = 0,
                    use_cache: bool = True, nj: int = 2, progress: bool = True) -> dict[str, Path]:
    """Make the built-in corpus's Kaldi data dirs (train, dev, test, test_unseen, test_reread)
    in ``out_dir``.

    Synthesis runs in ``spawn`` worker processes, so a script calling this at top level needs the
    usual ``if __name__ == "__main__":`` guard.

    Args:
        out_dir: where the split dirs go (made if missing; split dirs and the README.md an
            earlier `prepare builtin` made are replaced, anything else there is refused).
        size: ``tiny`` (2 min of audio, seconds to make; for tests), ``default`` (16 speakers,
            72 min, 40 of them train) or ``large`` (32 speakers, 4.8 h).
        seed: chooses the grammar sentences, the splits, the readers and eSpeak's noise.
        use_cache: reuse (or fill) ``$SPEECHVQ_CACHE/builtin/``; False synthesises afresh in
            ``out_dir`` and neither reads nor writes the cache.
        nj: worker processes (each speaker gets a fresh one).
        progress: show a progress bar over speakers.
    Returns:
        {split: path of its Kaldi data dir}.
    Raises:
        DataError: unknown size, a seed that is not an integer, nj < 1, ``out_dir`` is a file,
            or eSpeak NG (the ``builtin`` extra) is not installed.
    """
    _check_args(size, seed)
    if isinstance(nj, bool) or not isinstance(nj, int) or nj < 1:
        raise DataError(f"nj must be a whole number of processes, at least 1 (got {nj!r})")
    _require_espeak()
    out_dir = Path(out_dir).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"{out_dir} is a file; give a directory for the built-in corpus's splits")
    with claim(out_dir, "prepare", check=False) as c:  # OUT's lock; its entries are checked
        for split in SPLITS:
            c.check(out_dir / split, ours_if=_is_builtin_split)
        c.check(out_dir / "README.md", ours_if=_is_builtin_readme)
        out_dir.mkdir(parents=True, exist_ok=True)
        if use_cache:
            splits = _write_splits(_cached_corpus(size, seed, nj, progress), out_dir,
                                   move=False, c=c)
        else:
            prefix = ".builtin.tmp-"
            _clean_stale(out_dir, prefix)
            tmp = out_dir / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                _generate(tmp, size, seed, nj, progress)
                splits = _write_splits(tmp, out_dir, move=True, c=c)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        _write_readme(out_dir, splits, size, seed)
        c.mark(out_dir / "README.md")
    return splits


def is_builtin_split(data_dir: str | os.PathLike) -> bool:
    """Whether `data_dir` is a split written by `prepare_builtin` (its parent's README.md says
    so): synthetic speech, not recordings."""
    readme = Path(data_dir).parent / "README.md"
    try:
        with open(readme, encoding="utf-8") as f:
            return f.readline().startswith(README_TITLE)
    except (OSError, UnicodeDecodeError):
        return False


def _write_readme(out_dir: Path, splits: dict[str, Path], size: str, seed: int) -> None:
    """``out_dir/README.md``: speakers, splits, phone set and its TIMIT folding (deterministic)."""
    cfg = SIZES[size]
    rows = []
    for split, d in splits.items():
        ctm = read_ctm(d / "phones.ctm")
        minutes = sum(segs[-1][0] + segs[-1][1] for segs in ctm.values()) / 60
        n_spk = len(read_table(d / "spk2utt"))
        rows.append(f"| {split} | {n_spk} | {len(ctm)} | {minutes:.1f} |")
    spk_rows = [f"| {s.id} | {s.sex} | {s.voice} | {s.pitch} | {s.range} | {s.rate} | {kind} |"
                for kind, pool in (("seen", SEEN[:cfg["seen"]]), ("unseen", UNSEEN[:cfg["unseen"]]))
                for s in pool]
    fold = ", ".join(f"{a} -> {b}" for a, b in synth.TIMIT_FOLD39.items() if a != b)
    pad_ms = round(synth.PAD_S * 1000)
    text = f"""{README_TITLE} ({size}, seed {seed}, generator {GENERATOR_VERSION})

Synthesised by `speechvq prepare builtin` with eSpeak NG (GPL-3.0, loaded through ctypes from
espeakng-loader; the audio is not GPL): 16 kHz, 16-bit PCM, {pad_ms} ms of silence at both ends.
Every sentence was written for speechvq (64 hand-written phonetically rich sentences plus a seeded
grammar). Utterance ids are `<speaker>_<sentence>`: the same suffix is the same sentence;
`<speaker>_r2_<sentence>` is the speaker's second reading of a test sentence. This is
formant synthesis, easier than real speech; the alignments are exact with respect to the
synthesiser's own segmentation.

| split | speakers | utterances | minutes |
|---|---|---|---|
{chr(10).join(rows)}

`train`, `dev` and `test` are read by the seen speakers and share no sentence; each test sentence
is read by {cfg["test_reads"]} seen speakers (parallel targets for conversion) and by every unseen
speaker (`test_unseen`). `test_reread` holds a second reading of each `test` utterance by the same
speaker, 4-8 % faster or slower and slightly higher or lower: with `test`, two real readings by a
conversion's target, the MCD topline.

| speaker | sex | eSpeak voice | pitch | range | rate (wpm) | |
|---|---|---|---|---|---|---|
{chr(10).join(spk_rows)}

Phones (`phones.txt`, `phones.ctm`): `SIL` plus 39 ARPAbet phones. `phones_fold.txt` maps each
onto TIMIT's 39 classes (Lee and Hon 1989): {fold}; the others map to themselves. TIMIT's DX
(flap) never occurs: eSpeak's flap is labelled T.
"""
    atomic_write_text(out_dir / "README.md", text)
