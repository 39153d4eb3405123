#!/usr/bin/env python
"""Benchmark encode's memory on long recordings: peak RSS of `speechvq encode` on one recording
of each length, encoded in pieces (`SpeechEncoder.encode_long`, the default) and at once (the
path before pieces: `CHUNK_SAMPLES` set past the recording), beside the RSS of only reading
the recording (the floor any path pays: the waveform itself, 4 bytes a sample).

    python tools/bench_encode_memory.py                          # 1, 4 and 16 minutes
    python tools/bench_encode_memory.py --minutes 1 16 120 --whole-max-minutes 16

Each measurement is a fresh process (`resource` ru_maxrss of the child), so one does not inherit
another's peak. The model is the default encoder with `--channels` hidden channels (128: the
paper's 512 takes ~16x the compute and memory of the at-once path, and the same bounded pieces).
The codes of the two paths are compared too (they must be equal).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def write_recording(path: Path, minutes: float, seed: int = 0) -> None:
    """A 16 kHz 16-bit WAV of `minutes` of gliding harmonic tones + noise, written in blocks."""
    rng = np.random.default_rng(seed)
    total, block = int(minutes * 60 * RATE), 60 * RATE
    with sf.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            t = (np.arange(start, min(start + block, total)) / RATE)
            f0 = 120 + 40 * np.sin(2 * np.pi * 0.3 * t)
            x = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / RATE) / k for k in range(1, 5))
            f.write((0.2 * x + 0.01 * rng.standard_normal(t.size)).astype(np.float32))


def make_model(exp: Path, channels: int) -> None:
    import torch
    from speechvq.checkpoint import save_checkpoint
    from speechvq.config import config_to_dict, load_config
    from speechvq.models.speech.vqvae import VQVAE
    cfg = load_config(None, [f"model.encoder.channels={channels}",
                             "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1"])
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, ["spk"]).eval()
    save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg),
                     "speakers": ["spk"], "step": 0, "kind": "speech"},
                    exp / "checkpoints" / "last.pt")


def child(mode: str, exp: Path, data: Path, out: Path) -> None:
    """One measurement in this process: read only, or encode in pieces / at once."""
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if mode == "read":
        from speechvq.audio import load_audio
        load_audio(data / "long.wav")
    else:
        import speechvq.models.speech.encoders as encoders
        from speechvq.encode import encode_to_file
        if mode == "whole":
            encoders.CHUNK_SAMPLES = 2**40  # one piece: the path before pieces
        encode_to_file(exp, data, out, device="cpu", progress=False)
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(mode: str, exp: Path, data: Path, out: Path) -> float:
    run = subprocess.run([sys.executable, __file__, "--child", mode, str(exp), str(data),
                          str(out)], capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{mode} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])["peak_rss_mb"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 4, 16])
    p.add_argument("--whole-max-minutes", type=float, default=16,
                   help="longest recording also encoded at once (that path grows ~linearly)")
    p.add_argument("--channels", type=int, default=128)
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], *map(Path, args.child[1:]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_model(root / "exp", args.channels)
        print(f"encoder channels {args.channels}, pieces of 2^18 samples; peak RSS in MB "
              f"(loaded shared machine: pessimistic)")
        print(f"{'minutes':>8} {'read only':>10} {'pieces':>10} {'at once':>10} "
              f"{'at once/pieces':>15} {'codes equal':>12}")
        for minutes in args.minutes:
            data = root / f"data{minutes:g}"
            data.mkdir()
            write_recording(data / "long.wav", minutes)
            (data / "wav.scp").write_text(f"spk_long {data / 'long.wav'}\n")
            (data / "utt2spk").write_text("spk_long spk\n")
            (data / "spk2utt").write_text("spk spk_long\n")
            read = measure("read", root / "exp", data, root / "r.txt")
            pieces = measure("pieces", root / "exp", data, root / "pieces.txt")
            whole = same = ratio = "-"
            if minutes <= args.whole_max_minutes:
                w = measure("whole", root / "exp", data, root / "whole.txt")
                whole, ratio = f"{w:.0f}", f"{w / pieces:.1f}x"
                same = str((root / "whole.txt").read_text() == (root / "pieces.txt").read_text())
            print(f"{minutes:>8g} {read:>10.0f} {pieces:>10.0f} {whole:>10} {ratio:>15} "
                  f"{same:>12}", flush=True)
            (data / "long.wav").unlink()


if __name__ == "__main__":
    main()
