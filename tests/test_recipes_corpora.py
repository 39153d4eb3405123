"""recipes/librispeech and recipes/timit on tiny fake trees in each corpus's real layout, on CPU,
through the unit scoring stage (stage 3), with parallel jobs.

The audio is `evaldata.synth`'s: phone-like sounds with exact alignments, written as the corpus
ships them (LibriSpeech FLAC + trans.txt + MFA TextGrids; TIMIT NIST SPHERE .WAV + .PHN/.WRD/
.TXT). The model is tiny and trains 2 steps: what is checked is the plumbing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from evaldata import SENTENCES, SR, synth
from test_recipes import ROOT, TINY_MODEL, _ok, _units, run_recipe
from textgrids import textgrid

LIBRI = ROOT / "recipes" / "librispeech"
TIMIT = ROOT / "recipes" / "timit"

# a few thousand parameters, 2 steps
TINY_TRAIN = f"{TINY_MODEL} train.max_steps=2 train.checkpoint_every=2 train.warmup_steps=0"
VOICES = ("spk1", "spk2", "spk3")   # evaldata's synthetic speakers


def _reading(voice: int, sentence: int, seed: int) -> tuple[np.ndarray, list]:
    return synth(SENTENCES[sentence % len(SENTENCES)], VOICES[voice % 3], seed=seed)


def _lines(log: str) -> int:
    return max(map(len, log.splitlines()))


# ---------------------------------------------------------------------------------- LibriSpeech

LIBRI_TREE = {"train-clean-100": {("103", "1240"): 2, ("1034", "121"): 2},
              "dev-clean": {("84", "121123"): 2},
              "test-clean": {("1089", "134686"): 5, ("121", "121726"): 5}}  # 2 batches of 8
MFA = {"SIL": "", "AA": "AA1", "IY": "IY1", "UW": "UW0", "EH": "EH2", "S": "S"}


def make_fake_librispeech(root: Path) -> tuple[Path, Path]:
    """LibriSpeech/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac + .trans.txt, and an MFA
    output folder <spk>/<utt>.TextGrid (ARPAbet with stress, silences unlabelled)."""
    corpus, ali = root / "LibriSpeech", root / "mfa"
    n = 0
    for split, chapters in LIBRI_TREE.items():
        for (spk, chap), count in chapters.items():
            folder = corpus / split / spk / chap
            folder.mkdir(parents=True)
            lines = []
            for i in range(count):
                utt = f"{spk}-{chap}-{i:04d}"
                x, segs = _reading(n, n, seed=n)
                sf.write(folder / f"{utt}.flac", x, SR, subtype="PCM_16")
                words = [p for _, _, p in segs if p != "SIL"]
                lines.append(f"{utt} {' '.join(words)}")
                # MFA writes times to 10 ms or finer; one list of boundaries, so none overlap
                bounds = [round(a, 2) for a, _, _ in segs] + [round(segs[-1][0] + segs[-1][1], 2)]
                phones = [(bounds[k], bounds[k + 1], MFA[p]) for k, (_, _, p) in enumerate(segs)]
                end = bounds[-1]
                (ali / spk).mkdir(parents=True, exist_ok=True)
                (ali / spk / f"{utt}.TextGrid").write_text(textgrid(
                    [("IntervalTier", "words", [(0, end, " ".join(words))]),
                     ("IntervalTier", "phones", phones)]))
                n += 1
            (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return corpus, ali


def test_librispeech_recipe_on_a_fake_tree_with_jobs(tmp_path):
    corpus, ali = make_fake_librispeech(tmp_path)
    work = tmp_path / "work"
    log = _ok(run_recipe(LIBRI / "run.sh", "--librispeech", str(corpus), "--alignments", str(ali),
                         "--ngpu", "0", "--nj", "2", "--workdir", str(work), "--stop-stage", "3",
                         "--train-args", TINY_TRAIN, "--abx-triplets", "20",
                         cwd=tmp_path, tmp=tmp_path))
    assert "\r" not in log and _lines(log) < 1000 and "Successfully finished" in log
    assert {p.name for p in (work / "data").iterdir()} >= {"train", "dev_clean", "test_clean"}
    assert not any(p.is_symlink() for p in corpus.rglob("*"))    # the corpus is only linked to
    exp = work / "exp" / "librispeech"
    assert (exp / "checkpoints" / "last.pt").is_file()
    for split, utts in (("dev_clean", [f"84-121123-{i:04d}" for i in range(2)]),
                        ("test_clean", [f"{s}-{i:04d}" for s in ("1089-134686", "121-121726")
                                        for i in range(5)])):
        assert sorted(_units(exp / "units" / f"{split}.txt")) == sorted(utts)
        block = json.loads((exp / "eval" / f"units_{split}.json").read_text())["units"][split]
        assert {"vqvae", "majority", "random", "mfcc_kmeans"} <= set(block)
        assert block["fit_on"] == "dump/train" and block["codebook_size"] == 16
    # jobs of whole batches of 8: test_clean (10) in 2 jobs, one log each; dev_clean and train
    # (one batch each) encoded in the command's own process; the split is gone
    for where in ("units", "eval"):
        logs = sorted(p.name for p in (exp / where / "log").iterdir())
        assert logs == ["encode_test_clean.1.log", "encode_test_clean.2.log"], where
    first, *_, last = (exp / "units" / "log" / "encode_test_clean.2.log").read_text().splitlines()
    assert "--utt-list" in first and "--threads 1" in first and last.startswith("# Ended (code 0)")
    assert not list(exp.rglob(".*.jobs.*"))


# ---------------------------------------------------------------------------------------- TIMIT

TIMIT_PHN = {"SIL": "h#", "AA": "aa", "IY": "iy", "UW": "uw", "EH": "eh", "S": "s"}
# train: two speakers; test: FAKS0 (Kaldi's dev list), MDAB0 (the core test set), as real TIMIT
TIMIT_TREE = {("TRAIN", "DR1", "FCJF0"): ("SA1", "SI1027", "SX37", "SX127"),
              ("TRAIN", "DR2", "MDPK0"): ("SA1", "SI1457", "SX107", "SX197"),
              ("TEST", "DR1", "FAKS0"): ("SA1", "SI1573", "SX43"),
              ("TEST", "DR1", "MDAB0"): ("SA1", "SI1039", "SX49")}


def make_fake_timit(root: Path) -> Path:
    """TIMIT/TRAIN|TEST/DR*/SPK/SENT.WAV (NIST SPHERE) + .PHN (61-phone labels, samples) + .WRD
    + .TXT, upper case as on the LDC disc."""
    n = 0
    for (part, dr, spk), sentences in TIMIT_TREE.items():
        folder = root / part / dr / spk
        folder.mkdir(parents=True)
        for sent in sentences:
            x, segs = _reading(n, n, seed=n)
            sf.write(folder / f"{sent}.WAV", x, SR, subtype="PCM_16", format="NIST")
            phn = [f"{round(a * SR)} {round((a + d) * SR)} {TIMIT_PHN[p]}" for a, d, p in segs]
            (folder / f"{sent}.PHN").write_text("\n".join(phn) + "\n")
            (folder / f"{sent}.WRD").write_text(f"0 {len(x)} word\n")
            (folder / f"{sent}.TXT").write_text(f"0 {len(x)} Sentence {sent}.\n")
            n += 1
    return root


def test_timit_recipe_on_a_fake_tree_through_scoring(tmp_path):
    corpus = make_fake_timit(tmp_path / "TIMIT")
    work = tmp_path / "work"
    # the conf's 640x encoder stays: a 0.4 s window holds 10 codes
    log = _ok(run_recipe(TIMIT / "run.sh", "--timit", str(corpus), "--ngpu", "0", "--nj", "1",
                         "--workdir", str(work), "--stop-stage", "3", "--abx-triplets", "20",
                         "--train-args", f"{TINY_TRAIN} data.window=6400",
                         cwd=tmp_path, tmp=tmp_path))
    assert "\r" not in log and _lines(log) < 1000 and "Stage 4" not in log
    assert {p.name for p in (work / "data").iterdir()} >= {"train", "dev", "test_core"}
    exp = work / "exp" / "timit"
    assert "strides: [2, 2, 2, 2, 2, 4, 5]" in (exp / "config.yaml").read_text()
    units = _units(exp / "units" / "test_core.txt")
    assert sorted(units) == ["MDAB0_SI1039", "MDAB0_SX49"]          # SA left out, core only
    result = json.loads((exp / "eval" / "units_test_core.json").read_text())
    block = result["units"]["test_core"]
    assert block["frame_rate_hz"] == 25 and block["n_phones"] <= 39
    assert {"vqvae", "majority", "random", "mfcc_kmeans"} <= set(block)
    assert block["fit_on"] == "dump/train"
    # the rerun of stage 3 keeps what is done
    log = _ok(run_recipe(TIMIT / "run.sh", "--stage", "3", "--stop-stage", "3", "--ngpu", "0",
                         "--workdir", str(work), cwd=tmp_path, tmp=tmp_path))
    assert "units/test_core.txt is newer than the model: kept" in log
    assert "eval/units_test_core.json is newer than the model: kept" in log
