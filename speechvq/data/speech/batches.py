"""Training and evaluation batches from a dump: random fixed-length windows, speaker ids, phones.

The VQ-VAE of van den Oord et al. (2017, arXiv:1711.00937) trains on random waveform windows of
a fixed length with the speaker as global conditioning. `WindowSampler` chooses them and
`SpeechBatches` reads them from a `SpeechDump` (memory-mapped int16; no file is decoded during
training), with frame-level phone labels when the dump has alignments.

Determinism and resumption: batch ``step`` is drawn by a ``torch.Generator`` seeded from
``(seed, step)`` alone, so a run resumes exactly from its step (the sampler's whole state is
``{"seed", "step"}``), DataLoader workers can prefetch any steps in any order, and with W ranks
rank r takes the slice ``[r*B/W, (r+1)*B/W)`` of the same global batch (the union over ranks is
the single-process batch).

    dump = SpeechDump("dump/builtin/train")
    sampler = WindowSampler(dump.lengths, window=16384, batch_size=16, seed=0)
    batches = SpeechBatches(dump, sampler, hop=64)
    loader = DataLoader(batches, batch_size=None, sampler=range(start_step, max_steps),
                        num_workers=2)
    for batch in loader:  # batch["wav"] (16, 16384), ["speaker"] (16,), ["phones"] (16, 256)
        ...
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from speechvq.data.speech.dumpfile import PCM_SCALE, SpeechDump
from speechvq.errors import ConfigError

__all__ = ["WindowSampler", "SpeechBatches", "window_phone_labels"]


def _step_seed(seed: int, step: int) -> int:
    """A 63-bit generator seed mixed from (seed, step) (numpy SeedSequence hashing)."""
    words = np.random.SeedSequence([seed % 2**64, step]).generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


class WindowSampler:
    """Random windows (utterance, start), a pure function of (seed, step) and the lengths.

    Each global batch holds `batch_size` windows; an utterance is chosen with probability
    proportional to its length, the start uniformly in ``[0, length - window]`` (0 for an
    utterance shorter than the window, which is then zero-padded).

    Args:
        lengths: (n_utts,) utterance lengths in samples, all positive.
        window: window length in samples.
        batch_size: global batch size (over all ranks); a multiple of `world_size`.
        seed: the run's seed.
        rank, world_size: this process's slice of each global batch (DDP).
    """

    def __init__(self, lengths, window: int, batch_size: int, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.ndim != 1 or lengths.size == 0 or (lengths <= 0).any():
            raise ValueError("lengths must be a non-empty 1-D array of positive lengths")
        if window < 1 or batch_size < 1 or world_size < 1:
            raise ConfigError(f"window ({window}), batch size ({batch_size}) and world size "
                              f"({world_size}) must be at least 1")
        if batch_size % world_size:
            raise ConfigError(f"batch size {batch_size} is not divisible by the {world_size} "
                              f"processes; set train.batch_size to a multiple of {world_size}")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside [0, {world_size})")
        self.lengths = torch.from_numpy(lengths)  # (n_utts,) int64
        self._cum = torch.cumsum(self.lengths, 0).to(torch.float64)  # (n_utts,)
        self.window, self.batch_size, self.seed = int(window), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        self.step = 0

    def global_batch(self, step: int) -> list[tuple[int, int]]:
        """All `batch_size` windows of `step` as (utterance index, start sample)."""
        g = torch.Generator().manual_seed(_step_seed(self.seed, int(step)))
        u = torch.rand(self.batch_size, generator=g, dtype=torch.float64) * self._cum[-1]  # (B,)
        utt = torch.searchsorted(self._cum, u, right=True).clamp_(max=len(self.lengths) - 1)
        span = (self.lengths[utt] - self.window + 1).clamp_(min=1)  # (B,) possible starts
        r = torch.rand(self.batch_size, generator=g, dtype=torch.float64)  # (B,)
        start = torch.minimum((r * span).long(), span - 1)  # (B,)
        return list(zip(utt.tolist(), start.tolist()))

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This rank's windows of `step`: its slice of the global batch."""
        per = self.batch_size // self.world_size
        return self.global_batch(step)[self.rank * per:(self.rank + 1) * per]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        """Endless batches from the current `step` on (advancing it)."""
        while True:
            b = self.batch(self.step)
            self.step += 1
            yield b

    def state_dict(self) -> dict:
        """The whole state: ``{"seed": int, "step": int}``."""
        return {"seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        """Resume from `state_dict()` (the saved seed replaces the constructor's)."""
        self.seed, self.step = int(state["seed"]), int(state["step"])


def window_phone_labels(segments: np.ndarray, start: int, n_frames: int, hop: int,
                        length: int) -> np.ndarray:
    """Frame-level phone indices of a window (the timing convention of DESIGN.md).

    Frame i is labelled with the phone whose [start, end) holds sample
    ``start + (i + 0.5) * hop`` of the utterance; -1 where no phone does or past `length`.

    Args:
        segments: (n, 3) int rows start, end, phone index (utterance samples, time order).
        start: the window's first sample in the utterance.
        n_frames, hop: frames in the window and samples per frame.
        length: the utterance's length in samples.
    Returns:
        (n_frames,) int64 labels.
    """
    centre = start + (np.arange(n_frames, dtype=np.float64) + 0.5) * hop  # (F,)
    labels = np.full(n_frames, -1, dtype=np.int64)
    if len(segments) == 0:
        return labels
    seg = np.asarray(segments, dtype=np.int64)  # (n, 3)
    j = np.searchsorted(seg[:, 0], centre, side="right") - 1  # (F,) last segment starting <= c
    jc = np.clip(j, 0, None)
    ok = (j >= 0) & (centre < seg[jc, 1]) & (centre < length)
    labels[ok] = seg[jc[ok], 2]
    return labels


class SpeechBatches(torch.utils.data.Dataset):
    """A torch Dataset indexed by training step: ``batches[step]`` is that step's whole batch.

    Use it with ``DataLoader(batches, batch_size=None, sampler=range(start_step, max_steps),
    num_workers=N)``: workers prefetch steps and exact resumption only needs the step.

    Args:
        dump: the training data.
        sampler: chooses the windows (built on ``dump.lengths``).
        hop: samples per code frame, for the phone labels.
    Returns (of ``batches[step]``):
        dict with ``wav`` (B, window) float32 zero-padded, ``speaker`` (B,) int64 speaker ids,
        ``length`` (B,) int64 valid samples, ``utt`` (B,) and ``start`` (B,) int64 (where the
        window came from), and when the dump has alignments ``phones`` (B, ceil(window / hop))
        int64 phone indices, -1 where unlabeled.
    """

    def __init__(self, dump: SpeechDump, sampler: WindowSampler, hop: int) -> None:
        if len(sampler.lengths) != len(dump) or not np.array_equal(sampler.lengths.numpy(),
                                                                   dump.lengths):
            raise ValueError("the sampler was not built on this dump's lengths")
        if hop < 1:
            raise ConfigError(f"hop must be at least 1 (got {hop})")
        self.dump, self.sampler, self.hop = dump, sampler, int(hop)

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        windows = self.sampler.batch(int(step))
        window, d = self.sampler.window, self.dump
        n_frames = -(-window // self.hop)
        wav = np.zeros((len(windows), window), dtype=np.float32)  # (B, window)
        length = np.zeros(len(windows), dtype=np.int64)  # (B,)
        phones = np.full((len(windows), n_frames), -1, dtype=np.int64)  # (B, F)
        audio = d.audio
        for b, (i, s) in enumerate(windows):
            n = min(window, int(d.lengths[i]) - s)
            o = int(d.offsets[i]) + s
            wav[b, :n] = audio[o:o + n] * np.float32(1.0 / PCM_SCALE)
            length[b] = n
            if d.has_alignments:
                phones[b] = window_phone_labels(d.segments(i), s, n_frames, self.hop,
                                                int(d.lengths[i]))
        utt = np.array([i for i, _ in windows], dtype=np.int64)  # (B,)
        out = {"wav": torch.from_numpy(wav), "speaker": torch.from_numpy(d.speaker_ids[utt]),
               "length": torch.from_numpy(length), "utt": torch.from_numpy(utt),
               "start": torch.tensor([s for _, s in windows], dtype=torch.int64)}
        if d.has_alignments:
            out["phones"] = torch.from_numpy(phones)
        return out


def validation_batches(dump: SpeechDump, speakers: list[str], window: int, batch_size: int,
                       max_items: int) -> list[dict[str, torch.Tensor]]:
    """Fixed held-out batches: the first `max_items` utterances of `dump`, each from its start,
    cut to `window` samples (zero-padded with its length when shorter).

    Args:
        dump: the held-out data (e.g. the dev split's dump).
        speakers: the model's speaker list; ``speaker`` rows index it.
        window, batch_size: as in training; max_items: utterances read.
    Returns:
        a list of dicts with ``wav`` (B, window) float32, ``speaker`` (B,), ``length`` (B,).
    Raises:
        DataError: a held-out speaker is not one of `speakers` (the model has no row for it).
    """
    from speechvq.errors import DataError

    rows = {s: i for i, s in enumerate(speakers)}
    n = min(len(dump), max_items)
    unknown = sorted({dump.speaker(i) for i in range(n)} - set(rows))
    if unknown:
        raise DataError(f"validation dump '{dump.path}' has speakers the training data lacks "
                        f"({', '.join(unknown[:5])}); validate on held-out utterances of the "
                        f"training speakers (e.g. the dev split)")
    batches = []
    for first in range(0, n, batch_size):
        items = range(first, min(n, first + batch_size))
        wav = np.zeros((len(items), window), dtype=np.float32)  # (B, window)
        length = np.zeros(len(items), dtype=np.int64)  # (B,)
        for b, i in enumerate(items):
            x = dump.waveform(i)[:window]
            wav[b, :len(x)] = x
            length[b] = len(x)
        batches.append({"wav": torch.from_numpy(wav), "length": torch.from_numpy(length),
                        "speaker": torch.tensor([rows[dump.speaker(i)] for i in items],
                                                dtype=torch.int64)})
    return batches
