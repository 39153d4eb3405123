"""The dump's on-disk format and `SpeechDump`, its memory-mapped, validating reader.

The dump (stage 1 of DESIGN.md) is written by `speechvq.data.speech.dump.dump_data_dir`; its layout is
documented there. Reading follows nanoGPT's ``get_batch`` and fairseq's ``simple_kmeans`` feature
reader: the int16 samples stay on disk behind ``np.load(mmap_mode="r")`` and an utterance is a
slice ``audio[offset:offset + length]``, so nothing is decoded and little is held in memory.
`SpeechDump` checks everything it opens (format version, index, array length, alignments) and
raises `DataError` saying what is wrong and how to remake the dump; `SpeechDump.verify` also
compares every file with the SHA-256 checksum the dump recorded when it was made (``speechvq
validate DUMP``), which catches what the structure cannot: samples changed in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechvq.checksums import file_checksums, verify
from speechvq.errors import DataError

__all__ = ["SpeechDump", "DUMP_VERSION", "PCM_SCALE", "INDEX_HEADER", "dump_checksums"]

DUMP_VERSION = 1  # bump when the layout changes; readers refuse other versions
PCM_SCALE = 32768  # float x in [-1, 1) <-> int16 round(x * PCM_SCALE), as libsndfile reads PCM_16
INDEX_HEADER = "utt\tspeaker\toffset\tlength\tseg_offset\tseg_count\n"
_REMAKE = "remove it and run `speechvq dump DATA OUT` again"
# The files whose checksums dump.json records (those present); dump.json itself holds them.
CHECKSUMMED = ("audio.npy", "index.tsv", "speakers.txt", "utt2spk", "text", "phones.npy",
               "phones.txt", "skipped.txt")


def dump_checksums(path: str | Path) -> dict[str, str]:
    """{file: "sha256:<hex>"} of the `CHECKSUMMED` files present in the dump folder `path`."""
    return file_checksums(path, CHECKSUMMED)


class SpeechDump:
    """A dump opened for reading; the samples are memory-mapped, never loaded whole.

    Attributes:
        path: the dump folder.
        sample_rate: samples per second of every waveform.
        utts: utterance ids in index order (sorted); `lengths` (n_utts,) int64 samples,
            `offsets` (n_utts,) int64 into the audio array, `speaker_ids` (n_utts,) int64.
        speakers: sorted speaker ids (``speakers.txt``); a speaker's id is its position.
        text: utt -> transcript, or None (`speaker(utt)` gives an utterance's speaker).
        phones: phone names in index order (``phones.txt``), or None without alignments.
        has_alignments: True when ``phones.npy`` exists.
        meta: the parsed ``dump.json``.
    """

    def __init__(self, path) -> None:
        """Open and validate the dump at `path` (DataError on anything inconsistent)."""
        self.path = Path(path)
        self._audio = None
        self._phone_rows = None
        self._load()

    @classmethod
    def open(cls, path) -> "SpeechDump":
        """Open and validate the dump at `path`; the same as ``SpeechDump(path)``."""
        return cls(path)

    # ----------------------------------------------------------------------------- validation

    def _fail(self, what: str, fix: str = _REMAKE) -> DataError:
        return DataError(f"dump '{self.path}': {what}; {fix}")

    def _load(self) -> None:
        p = self.path
        if not p.is_dir():
            tmp = p.with_name(p.name + ".tmp")
            if tmp.is_dir():
                raise DataError(f"dump '{p}' is unfinished ('{tmp}' holds the finished parts); "
                                f"run the same `speechvq dump DATA {p}` again to complete it")
            raise DataError(f"no dump at '{p}'; make one with `speechvq dump DATA {p}`")
        if not (p / "dump.json").is_file():
            if (p / "wav.scp").is_file():
                raise DataError(f"'{p}': this is a Kaldi data dir, not a dump; run `speechvq "
                                f"dump DATA OUT` first (DATA = {p}) and pass OUT")
            raise DataError(f"'{p}' is not a dump (no dump.json); make one with `speechvq dump "
                            f"DATA {p}`")
        try:
            meta = json.loads((p / "dump.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise self._fail(f"dump.json is not valid JSON ({e})") from None
        if not isinstance(meta, dict) or meta.get("version") != DUMP_VERSION:
            got = meta.get("version") if isinstance(meta, dict) else None
            raise self._fail(f"dump.json has format version {got!r}, this speechvq reads "
                             f"version {DUMP_VERSION}")
        missing = [k for k in ("sample_rate", "n_utts", "n_samples", "has_alignments")
                   if k not in meta]
        if missing:
            raise self._fail(f"dump.json lacks {', '.join(missing)}")
        self.meta = meta
        self.sample_rate = int(meta["sample_rate"])
        self.has_alignments = bool(meta["has_alignments"])
        self.speakers = self._read_lines("speakers.txt")
        self._read_index()
        self.text = None
        if (p / "text").is_file():
            self.text = {}
            for line in self._read_lines("text"):
                utt, _, rest = line.partition(" ")
                self.text[utt] = rest
        audio = self.audio
        if audio.dtype != np.int16 or audio.ndim != 1:
            raise self._fail(f"audio.npy holds {audio.dtype} {audio.shape}, not int16 (N,)")
        total = int(self.lengths.sum())
        if audio.shape[0] != total or total != int(meta["n_samples"]):
            raise self._fail(f"audio.npy has {audio.shape[0]} samples but index.tsv lengths sum "
                             f"to {total} (dump.json says {meta['n_samples']}): it is truncated "
                             f"or from another dump")
        self.phones = None
        if self.has_alignments:
            self.phones = [line.split()[0] for line in self._read_lines("phones.txt")]
            rows = self.phone_rows
            if rows.dtype != np.int32 or rows.ndim != 2 or rows.shape[1] != 3:
                raise self._fail(f"phones.npy holds {rows.dtype} {rows.shape}, not int32 (n, 3)")
            if int((self.seg_offsets + self.seg_counts).max(initial=0)) > rows.shape[0]:
                raise self._fail(f"index.tsv points past the {rows.shape[0]} rows of phones.npy")
            if rows.size and (rows[:, 2].min() < 0 or rows[:, 2].max() >= len(self.phones)):
                raise self._fail("phones.npy holds phone indices outside phones.txt")

    def verify(self) -> bool:
        """Compare every file with the checksum recorded when the dump was made.

        Returns:
            True when they all match; False for a dump made before dumps recorded checksums.
        Raises:
            DataError: a file is missing or differs from what was dumped (naming it).
        """
        return verify(self.path, self.meta.get("checksums"), self._fail)

    def _read_lines(self, name: str) -> list[str]:
        f = self.path / name
        if not f.is_file():
            raise self._fail(f"{name} is missing")
        return f.read_text(encoding="utf-8").splitlines()

    def _read_index(self) -> None:
        lines = self._read_lines("index.tsv")
        if not lines or lines[0] + "\n" != INDEX_HEADER:
            raise self._fail("index.tsv does not start with its header line")
        spk_id = {s: i for i, s in enumerate(self.speakers)}
        utts, cols = [], []
        for n, line in enumerate(lines[1:], start=2):
            f = line.split("\t")
            try:
                if len(f) != 6 or f[1] not in spk_id:
                    raise ValueError
                cols.append((spk_id[f[1]], *map(int, f[2:])))
            except ValueError:
                raise self._fail(f"index.tsv line {n} is malformed or names a speaker missing "
                                 f"from speakers.txt: {line!r}") from None
            utts.append(f[0])
        if not utts or len(utts) != int(self.meta["n_utts"]):
            raise self._fail(f"index.tsv lists {len(utts)} utterances, dump.json says "
                             f"{self.meta['n_utts']}")
        if utts != sorted(set(utts)):
            raise self._fail("index.tsv is not sorted or repeats an utterance")
        a = np.asarray(cols, dtype=np.int64).reshape(-1, 5)  # (n_utts, 5)
        self.utts = utts
        self._index = {u: i for i, u in enumerate(utts)}
        self.speaker_ids, self.offsets, self.lengths = a[:, 0], a[:, 1], a[:, 2]
        self.seg_offsets, self.seg_counts = a[:, 3], a[:, 4]
        starts = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        if (self.lengths <= 0).any() or (self.offsets != starts).any() or (a[:, 3:] < 0).any():
            raise self._fail("index.tsv offsets are not contiguous or a length is not positive")

    # ------------------------------------------------------------------------------- reading

    @property
    def audio(self) -> np.ndarray:
        """The whole int16 sample array (N,), memory-mapped read-only (opened lazily)."""
        if self._audio is None:
            try:
                self._audio = np.load(self.path / "audio.npy", mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise self._fail(f"audio.npy cannot be read ({e})") from None
        return self._audio

    @property
    def phone_rows(self) -> np.ndarray:
        """All alignment rows, int32 (n_seg, 3): start, end (samples in the utt), phone index."""
        if not self.has_alignments:
            raise DataError(f"dump '{self.path}' has no phone alignments (its data dir had no "
                            f"phones.ctm)")
        if self._phone_rows is None:
            try:
                self._phone_rows = np.load(self.path / "phones.npy", mmap_mode="r",
                                           allow_pickle=False)
            except (OSError, ValueError) as e:
                raise self._fail(f"phones.npy cannot be read ({e})") from None
        return self._phone_rows

    def __getstate__(self) -> dict:  # worker processes reopen the memory maps themselves
        return {**self.__dict__, "_audio": None, "_phone_rows": None}

    def __len__(self) -> int:
        return len(self.utts)

    def index(self, utt: str | int) -> int:
        """The position of `utt` in `utts` (an int is checked and passed through)."""
        if isinstance(utt, (int, np.integer)):
            if not 0 <= utt < len(self.utts):
                raise IndexError(f"utterance index {utt} out of range [0, {len(self.utts)})")
            return int(utt)
        if utt not in self._index:
            raise DataError(f"utterance '{utt}' is not in dump '{self.path}'")
        return self._index[utt]

    def waveform(self, utt: str | int) -> np.ndarray:
        """The utterance's samples as float32 (T,) in [-1, 1] (int16 / 32768)."""
        i = self.index(utt)
        q = self.audio[self.offsets[i]:self.offsets[i] + self.lengths[i]]  # (T,) int16
        return q.astype(np.float32) * np.float32(1.0 / PCM_SCALE)

    def segments(self, utt: str | int) -> np.ndarray:
        """The utterance's phone alignment, int32 (n, 3): start, end (samples), phone index."""
        i = self.index(utt)
        if not self.has_alignments:
            return np.zeros((0, 3), np.int32)
        s = int(self.seg_offsets[i])
        return np.asarray(self.phone_rows[s:s + int(self.seg_counts[i])])

    def speaker(self, utt: str | int) -> str:
        """The speaker of `utt`."""
        return self.speakers[self.speaker_ids[self.index(utt)]]
