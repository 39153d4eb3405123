"""Shared fixtures: small data made on the fly (no network, no files shipped with the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TINY_RATE = 16000
TINY_SPEAKERS = ("spkA", "spkB")
TINY_UTTS_PER_SPEAKER = 2
TINY_SECONDS = 0.5


def write_tiny_data_dir(root: Path, seed: int = 0) -> Path:
    """A tiny Kaldi data dir: 2 speakers x 2 utterances of 0.5 s harmonic tones plus noise.

    Files: ``wav/*.wav`` (16 kHz, 16-bit), ``wav.scp``, ``utt2spk``, ``spk2utt``, ``text``, all
    sorted in ``LC_ALL=C`` order, utterance ids prefixed by their speaker as Kaldi expects.
    """
    rng = np.random.default_rng(seed)
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(TINY_RATE * TINY_SECONDS)) / TINY_RATE
    scp, u2s, text = [], [], []
    for s, spk in enumerate(TINY_SPEAKERS):
        f0 = 110.0 * (1 + s)  # one "voice" per speaker
        for u in range(TINY_UTTS_PER_SPEAKER):
            utt = f"{spk}_{u:03d}"
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
            x = 0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.size)
            path = wav_dir / f"{utt}.wav"
            sf.write(path, x.astype(np.float32), TINY_RATE, subtype="PCM_16")
            scp.append(f"{utt} {path}")
            u2s.append(f"{utt} {spk}")
            text.append(f"{utt} TONE {u}")
    (root / "wav.scp").write_text("\n".join(sorted(scp)) + "\n")
    (root / "utt2spk").write_text("\n".join(sorted(u2s)) + "\n")
    (root / "text").write_text("\n".join(sorted(text)) + "\n")
    spk2utt = [f"{spk} " + " ".join(f"{spk}_{u:03d}" for u in range(TINY_UTTS_PER_SPEAKER))
               for spk in sorted(TINY_SPEAKERS)]
    (root / "spk2utt").write_text("\n".join(spk2utt) + "\n")
    return root


@pytest.fixture
def one_thread():
    """One PyTorch intra-op thread: on tiny tensors more threads only add hand-offs and
    contention on the shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_data_dir(tmp_path: Path) -> Path:
    """A fresh tiny Kaldi data dir (see `write_tiny_data_dir`)."""
    return write_tiny_data_dir(tmp_path / "data" / "tiny")


@pytest.fixture(scope="session")
def eval_corpus(tmp_path_factory) -> dict[str, Path]:
    """The evaluation corpus of `evaldata.build_corpus` (tiny trained model, conversions), built
    once per session and shared by the unit, conversion and report tests. Read-only: a test that
    changes it copies it first."""
    import torch

    from evaldata import build_corpus
    torch.set_num_threads(1)
    return build_corpus(tmp_path_factory.getbasetemp() / "evalcorpus")
