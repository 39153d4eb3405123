"""Whole utterances from a dump or a Kaldi data dir, one interface for both.

Every command that reads audio (``encode``, ``evaluate``, ``convert``) accepts ``--data DATA`` as
either a dump (fast: memory-mapped, already at the model rate) or a Kaldi data dir (decoded and
resampled on the fly), so units can be computed for any corpus, not only the training one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from speechvq.audio import load_audio
from speechvq.data.speech.alignments import Segment
from speechvq.data.speech.dumpfile import SpeechDump
from speechvq.data.speech.kaldi import DataDir
from speechvq.errors import DataError


class Utterances:
    """Read-only access to the utterances of DATA at `sample_rate`.

    Attributes:
        path: the dump or data dir.
        utts: sorted utterance ids.
        sample_rate: rate of every waveform returned.
        phones: phone inventory (SIL first) when the data has alignments, else None.
    """

    def __init__(self, path: str | os.PathLike, sample_rate: int, option: str = "--data"):
        self.path = Path(path)
        self.sample_rate = sample_rate
        if not self.path.is_dir():
            raise DataError(f"{option} '{self.path}' is not a folder; give a Kaldi data dir "
                            f"(wav.scp, utt2spk, ...) or a dump made by `speechvq dump`")
        self._dump: SpeechDump | None = None
        self._dir: DataDir | None = None
        self._last: tuple | None = None  # (path, (samples, rate)) of the last recording decoded
        if (self.path / "dump.json").exists():
            self._dump = SpeechDump.open(self.path)
            if self._dump.sample_rate != sample_rate:
                raise DataError(f"dump '{self.path}' is at {self._dump.sample_rate} Hz but the "
                                f"model runs at {sample_rate} Hz; dump the data dir again with "
                                f"--sample-rate {sample_rate}, or pass the Kaldi dir instead")
            self.utts = list(self._dump.utts)
            self.phones = list(self._dump.phones) if self._dump.has_alignments else None
        elif (self.path / "wav.scp").exists():
            self._dir = DataDir.load(self.path)
            self.utts = self._dir.utterances()
            self.phones = list(self._dir.phones) if self._dir.ctm is not None and \
                self._dir.phones is not None else None
        else:
            raise DataError(f"'{self.path}' is neither a Kaldi data dir (no wav.scp) nor a dump "
                            f"(no dump.json); run `speechvq prepare` or `speechvq dump` first")

    @property
    def is_dump(self) -> bool:
        return self._dump is not None

    def speaker(self, utt: str) -> str:
        """The speaker of `utt`."""
        if self._dump is not None:
            return self._dump.speaker(utt)
        return self._dir.utt2spk[utt]

    def speakers(self) -> list[str]:
        """Sorted speakers of the data."""
        if self._dump is not None:
            return sorted({self._dump.speakers[i] for i in self._dump.speaker_ids})
        return self._dir.speakers()

    def text(self, utt: str) -> str | None:
        """The transcript of `utt`, when the data has one."""
        table = self._dump.text if self._dump is not None else self._dir.text
        return None if table is None else table.get(utt)

    def waveform(self, utt: str) -> np.ndarray:
        """float32 (T,) samples at `sample_rate`."""
        if self._dump is not None:
            return self._dump.waveform(utt)
        path, start, end = self._dir.audio_source(utt)
        x, sr = self._recording(path)
        if start is not None:
            x = x[int(round(start * sr)):int(round(end * sr))]
        return x

    def _recording(self, path) -> tuple[np.ndarray, int]:
        """`load_audio` at `sample_rate`, the last recording kept: with a segments file the
        utterances of one recording come in a row, so each recording is decoded once."""
        if self._last is None or self._last[0] != path:
            self._last = (path, load_audio(path, self.sample_rate))
        return self._last[1]

    def segments(self, utt: str) -> list[Segment] | None:
        """Phone alignment [(start_s, dur_s, phone)], or None when the data has none."""
        if self.phones is None:
            return None
        if self._dump is not None:
            rows = self._dump.segments(utt)  # (n, 3) start, end samples, phone index
            sr = float(self.sample_rate)
            return [(int(a) / sr, (int(b) - int(a)) / sr, self.phones[int(p)]) for a, b, p in rows]
        return list(self._dir.ctm.get(utt, []))

    def batches(self, batch_size: int, utts: Sequence[str] | None = None
                ) -> Iterator[tuple[list[str], torch.Tensor, torch.Tensor]]:
        """Padded batches of whole utterances, `batch_size` at a time in the given order.

        Yields:
            (utts, wav (B, T_max) float32 zero-padded, lengths (B,) int64).
        """
        order = list(self.utts if utts is None else utts)
        for k in range(0, len(order), batch_size):
            names = order[k:k + batch_size]
            waves = [self.waveform(u) for u in names]
            lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)  # (B,)
            wav = torch.zeros(len(waves), int(lengths.max()))  # (B, T_max)
            for i, w in enumerate(waves):
                wav[i, :len(w)] = torch.from_numpy(np.ascontiguousarray(w))
            yield names, wav, lengths
