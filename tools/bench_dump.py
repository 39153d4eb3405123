#!/usr/bin/env python
"""Benchmark the dump: training windows per second read from a dump vs decoding files each time.

Reads random windows the way training does (`SpeechBatches`: batch 16, window 16384 by default)
from a dump, then reads the same windows by decoding their files every time (`load_audio` +
resampling + crop, what a loader without a dump does), and prints both rates and their ratio.
With ``--time-nj`` it also times `dump_data_dir` with nj=1 and nj=2 (fresh outputs each).

    python tools/bench_dump.py                       # built-in tiny corpus (or synthetic tones)
    python tools/bench_dump.py data/vctk/train --steps 50
    python tools/bench_dump.py --synthetic-minutes 20 --source-rate 48000 --time-nj

DATA is any Kaldi data dir. Without one, the built-in corpus (``size="tiny"``) is prepared when
its extra is installed; otherwise a synthetic corpus of harmonic tones is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechvq.audio import load_audio
from speechvq.data.speech.dump import SpeechDump, dump_data_dir
from speechvq.data.speech.kaldi import DataDir
from speechvq.data.speech.batches import SpeechBatches, WindowSampler
from speechvq.errors import SpeechVQError


def synthetic_corpus(root: Path, minutes: float, source_rate: int, seed: int = 0) -> Path:
    """A Kaldi dir of `minutes` of 2-5 s harmonic tones + noise, 10 speakers, at `source_rate`
    (FLAC above 16 kHz, as VCTK 0.92 ships, else 16-bit WAV)."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    scp, u2s, total, n = {}, {}, 0.0, 0
    ext = "flac" if source_rate > 16000 else "wav"
    while total < minutes * 60:
        spk = f"s{n % 10:02d}"
        dur = float(rng.uniform(2.0, 5.0))
        t = np.arange(int(dur * source_rate)) / source_rate
        f0 = 90 + 15 * (n % 10) + 20 * np.sin(2 * np.pi * 0.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / source_rate
        x = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(np.pi * t / dur))
        x = 0.3 * x / np.abs(x).max() + 0.003 * rng.standard_normal(t.size)
        utt = f"{spk}_{n:05d}"
        path = root / "wav" / f"{utt}.{ext}"
        sf.write(path, x.astype(np.float32), source_rate, subtype="PCM_16")
        scp[utt], u2s[utt] = str(path), spk
        total, n = total + dur, n + 1
    DataDir(path=root, wav_scp=scp, utt2spk=u2s).save(root)
    return root


def default_data(work: Path, minutes: float, source_rate: int) -> tuple[Path, str]:
    """The built-in tiny corpus's train split if it can be made here, else synthetic tones."""
    if minutes <= 0:
        try:
            from speechvq.data.builtin.corpus import prepare_builtin
            return prepare_builtin(work / "builtin", size="tiny")["train"], "built-in tiny train"
        except (ImportError, SpeechVQError) as e:
            print(f"built-in corpus unavailable ({e}); using synthetic tones", file=sys.stderr)
            minutes = 2.0
    return (synthetic_corpus(work / "synthetic", minutes, source_rate),
            f"synthetic tones, {minutes:g} min at {source_rate} Hz")


def windows_per_second_dump(dump: SpeechDump, sampler: WindowSampler, steps: int) -> float:
    batches = SpeechBatches(dump, sampler, hop=64)
    batches[0]  # open the memory map outside the timing
    t = time.perf_counter()
    for step in range(steps):
        batches[step]
    return steps * sampler.batch_size / (time.perf_counter() - t)


def windows_per_second_decode(data: DataDir, dump: SpeechDump, sampler: WindowSampler,
                              steps: int) -> float:
    """The same windows, each read by decoding its file (resampled) and cropping."""
    window, sr = sampler.window, dump.sample_rate
    t = time.perf_counter()
    for step in range(steps):
        wav = np.zeros((sampler.batch_size, window), np.float32)  # (B, window)
        for b, (i, s) in enumerate(sampler.batch(step)):
            path, start_s, end_s = data.audio_source(dump.utts[i])
            x, _ = load_audio(path, sr)
            if start_s is not None:
                x = x[int(start_s * sr + 0.5):int(end_s * sr + 0.5)]
            seg = x[s:s + window]
            wav[b, :seg.size] = seg
        torch.from_numpy(wav)
    return steps * sampler.batch_size / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", nargs="?", help="Kaldi data dir (default: built-in tiny or synthetic)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--window", type=int, default=16384)
    p.add_argument("--steps", type=int, default=100, help="steps read from the dump")
    p.add_argument("--decode-steps", type=int, default=5, help="steps read by decoding files")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--synthetic-minutes", type=float, default=0.0,
                   help="use a synthetic corpus of this many minutes instead of the built-in one")
    p.add_argument("--source-rate", type=int, default=16000, help="rate of the synthetic files")
    p.add_argument("--time-nj", action="store_true", help="also time the dump with nj=1 and 2")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_dump_") as tmp:
        work = Path(tmp)
        if args.data:
            data_dir, what = Path(args.data), str(args.data)
        else:
            data_dir, what = default_data(work, args.synthetic_minutes, args.source_rate)
        data = DataDir.load(data_dir)
        times = {}
        for nj in ((1, 2) if args.time_nj else (1,)):
            t = time.perf_counter()
            out = dump_data_dir(data_dir, work / f"dump_nj{nj}", sample_rate=args.sample_rate,
                                nj=nj, progress=False)
            times[nj] = time.perf_counter() - t
        dump = SpeechDump(out)
        minutes = dump.meta["n_samples"] / dump.sample_rate / 60
        print(f"data: {what}: {len(dump)} utterances, {len(dump.speakers)} speakers, "
              f"{minutes:.1f} min; dump {dump.audio.nbytes / 2**20:.1f} MiB")
        for nj, sec in times.items():
            print(f"dump nj={nj}: {sec:.1f} s ({minutes * 60 / sec:.0f}x real time)")
        sampler = WindowSampler(dump.lengths, args.window, args.batch, seed=0)
        fast = windows_per_second_dump(dump, sampler, args.steps)
        slow = windows_per_second_decode(data, dump, sampler, args.decode_steps)
        print(f"windows/s (batch {args.batch}, window {args.window}): dump {fast:,.0f}, "
              f"decoding files {slow:,.0f}, ratio {fast / slow:,.0f}x "
              f"(cpu threads {torch.get_num_threads()}, cores {os.cpu_count()})")


if __name__ == "__main__":
    main()
