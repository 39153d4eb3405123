"""A small synthetic corpus with exact phone alignments, a tiny untrained model in an exp dir, and
a hand-made conversion dir, shared by the evaluation tests (built once per session, in seconds).

Speech: vowels are harmonic series with Gaussian formant peaks, ``S`` is high-passed noise,
``SIL`` near-silence. Speakers differ clearly (F0 100 / 170 / 240 Hz and formant scales 0.9 /
1.0 / 1.15), so a speaker classifier must separate them. A "sentence" is a phone sequence, its
text the phones joined by spaces, so readings of one sentence by several speakers are parallel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speechvq.checkpoint import save_checkpoint
from speechvq.config import config_to_dict, dump_config, load_config
from speechvq.data.speech.kaldi import DataDir, write_ctm, write_phones_txt

SR = 16000
PHONES = ["SIL", "AA", "IY", "UW", "EH", "S"]
FORMANTS = {"AA": (750, 1100), "IY": (280, 2300), "UW": (320, 900), "EH": (550, 1800)}
SPEAKERS = {"spk1": (100.0, 0.9, 1.0), "spk2": (170.0, 1.0, 1.5), "spk3": (240.0, 1.15, 0.7)}
SENTENCES = [
    ["AA", "S", "IY", "UW", "EH"], ["IY", "EH", "S", "AA", "UW", "S"],
    ["UW", "AA", "IY", "S", "EH"], ["EH", "UW", "S", "IY", "AA"],
    ["S", "AA", "UW", "EH", "IY", "S"], ["IY", "UW", "AA", "S", "EH", "AA"],
    ["AA", "EH", "IY", "UW", "S"],
]
TINY_MODEL = [
    "model.encoder.channels=8", "model.encoder.dilations=[1,2]", "model.encoder.strides=[4,5,8]",
    "model.quantizer.codebook_size=16", "model.quantizer.dim=8", "model.quantizer.restart_after=0",
    "model.decoder.speaker_dim=4", "model.decoder.wavenet.layers=2",
    "model.decoder.wavenet.cycles=1", "model.decoder.wavenet.residual_channels=8",
    "model.decoder.wavenet.gate_channels=8", "model.decoder.wavenet.skip_channels=8",
    "data.n_mels=20",
]  # hop 160 samples = 100 codes per second


def synth(phones: list[str], speaker: str, seed: int) -> tuple[np.ndarray, list]:
    """One reading: (waveform (T,) float32, [(start_s, dur_s, phone)] including SIL padding)."""
    f0, scale, tilt = SPEAKERS[speaker]
    rng = np.random.default_rng(seed)
    pieces, segs, t = [], [], 0
    for ph in ["SIL", *phones, "SIL"]:
        n = int(SR * (0.1 if ph == "SIL" else rng.uniform(0.08, 0.14)))
        time = np.arange(n) / SR
        if ph == "SIL":
            x = 1e-3 * rng.standard_normal(n)
        elif ph == "S":
            x = np.diff(rng.standard_normal(n + 1)) * 0.1
        else:
            x = np.zeros(n)
            for k in range(1, int(7000 // f0)):
                f = k * f0
                amp = sum(np.exp(-((f - fm * scale) / 120.0) ** 2) for fm in FORMANTS[ph])
                amp = (amp + 0.02) * (f / 1000.0) ** -tilt
                x += amp * np.sin(2 * np.pi * f * time + rng.uniform(0, 2 * np.pi))
            x = 0.3 * x / np.abs(x).max()
        ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.005 * SR))
        pieces.append(x * ramp)
        segs.append((t / SR, n / SR, ph))
        t += n
    return np.concatenate(pieces).astype(np.float32), segs


def write_dir(root: Path, readings: dict[str, tuple[str, int]], *, alignments: bool = True
              ) -> Path:
    """A Kaldi dir of readings utt -> (speaker, sentence index); audio seeded by the utt id."""
    wav_dir = root / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    scp, u2s, text, ctm = {}, {}, {}, {}
    for utt, (spk, s) in readings.items():
        x, segs = synth(SENTENCES[s], spk, seed=sum(map(ord, utt)) * 7 + s)
        sf.write(wav_dir / f"{utt}.wav", x, SR, subtype="PCM_16")
        scp[utt], u2s[utt], text[utt] = str(wav_dir / f"{utt}.wav"), spk, " ".join(SENTENCES[s])
        ctm[utt] = segs
    d = DataDir(path=root, wav_scp=scp, utt2spk=u2s, text=text)
    d.save(root)
    if alignments:
        write_ctm(root / "phones.ctm", ctm)
        write_phones_txt(root / "phones.txt", PHONES)
    return root


def build_corpus(root: Path) -> dict[str, Path]:
    """train (3 speakers x sentences 0-3), test (sentences 4-5 by all, spk1 reads 4 twice,
    sentence 6 by spk2 only), conv (hand-made conversions of test), exp (tiny model)."""
    if (root / "done").exists():
        return {k: root / k for k in ("train", "test", "conv", "exp")}
    train = write_dir(root / "train", {f"{spk}_s{s}": (spk, s) for spk in SPEAKERS
                                       for s in range(4)})
    test_readings = {f"{spk}_s{s}": (spk, s) for spk in SPEAKERS for s in (4, 5)}
    test_readings.update({"spk1_s4b": ("spk1", 4), "spk2_s6": ("spk2", 6)})
    test = write_dir(root / "test", test_readings)
    # conversions (id: source, target, audio): a copy of the target's reading (MCD 0), the
    # target's voice on a fresh reading, a sentence the target never read in test, and the
    # unchanged source (a failed conversion)
    conv = root / "conv"
    (conv / "wav").mkdir(parents=True)
    rows = {"spk2-spk1_s4": ("spk1_s4", "spk2", "copy:spk2_s4"),
            "spk1-spk2_s4": ("spk2_s4", "spk1", "synth:spk1:4"),
            "spk3-spk1_s5": ("spk1_s5", "spk3", "synth:spk3:5"),
            "spk1-spk2_s6": ("spk2_s6", "spk1", "synth:spk1:6"),
            "spk3-spk2_s5": ("spk2_s5", "spk3", "copy:spk2_s5")}  # unchanged source
    scp, u2s, u2src, text = {}, {}, {}, {}
    for utt, (src, tgt, how) in rows.items():
        path = conv / "wav" / f"{utt}.wav"
        if how.startswith("copy:"):
            shutil.copy(test / "wav" / f"{how[5:]}.wav", path)
        else:
            _, spk, s = how.split(":")
            x, _ = synth(SENTENCES[int(s)], spk, seed=99 + int(s))
            sf.write(path, x, SR, subtype="PCM_16")
        scp[utt], u2s[utt], u2src[utt] = str(path), tgt, src
        text[utt] = " ".join(SENTENCES[test_readings[src][1]])
    DataDir(path=conv, wav_scp=scp, utt2spk=u2s, utt2src=u2src, text=text).save(conv)
    exp = make_exp(root / "exp")
    (root / "done").write_text("ok\n")
    return {"train": train, "test": test, "conv": conv, "exp": exp}


def make_exp(exp: Path) -> Path:
    """An exp dir with an untrained tiny VQ-VAE checkpoint (Trainer format), config.yaml,
    cmdline.txt and a short metrics.jsonl."""
    from speechvq.models.speech.vqvae import VQVAE

    cfg = load_config(None, TINY_MODEL)
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, sorted(SPEAKERS)).eval()
    with torch.no_grad():  # codebook = k-means of the random encoder's outputs, so codes vary
        z = torch.cat([model.encoder(torch.from_numpy(synth(SENTENCES[s], spk, s)[0])[None])[0].T
                       for spk in SPEAKERS for s in range(2)])  # (N, D)
        from sklearn.cluster import KMeans
        km = KMeans(16, n_init=1, random_state=0).fit(z.numpy())
        init = torch.from_numpy(km.cluster_centers_).float()  # (K, D)
        model.quantizer.codebook.copy_(init)
        model.quantizer.ema_sum.copy_(init * model.quantizer.ema_count[:, None])
    save_checkpoint({"model": model.state_dict(), "config": config_to_dict(cfg),
                     "speakers": sorted(SPEAKERS), "step": 20, "kind": "speech"},
                    exp / "checkpoints" / "last.pt")
    (exp / "config.yaml").write_text(dump_config(cfg))
    (exp / "cmdline.txt").write_text("# 2024-01-01 00:00:00\nspeechvq train --data dump/train "
                                     "--exp exp/tiny\n# versions\n")
    lines = [f'{{"step": {s}, "loss": {5.0 - s / 10}, "nll": {4.0 - s / 20}, '
             f'"bits_per_sample": {(4.0 - s / 20) / np.log(2)}, "vq_loss": 0.1, '
             f'"mel_loss": 0.0, "perplexity": {3 + s / 5}, "codes_used": {4 + s // 5}, '
             f'"step_time": 0.5, "lr": 0.001}}' for s in (10, 20)]
    (exp / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return exp
