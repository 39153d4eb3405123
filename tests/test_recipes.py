"""The recipes, run as a user runs them: `bash recipes/<corpus>/run.sh ...`, tiny and on CPU.

Each run writes into a temp --workdir (never into recipes/<corpus>/) with the built-in corpus
cached under a temp $SPEECHVQ_CACHE. The model and step count are made tiny through
--train-args; what is checked is the plumbing (every stage's outputs, paths resolved from any
current directory, finished work skipped on a rerun), not the quality of the codes.
"""

from __future__ import annotations

import json
import re

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechvq.config import load_config
from speechvq.data.speech.kaldi import read_table

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT / "recipes" / "mini"
VCTK = ROOT / "recipes" / "vctk"
RECIPES = [ROOT / "recipes" / name / "run.sh" for name in ("mini", "vctk", "librispeech", "timit")]

# A tiny model: a few thousand parameters, a step in milliseconds.
TINY_MODEL = ("model.encoder.channels=16 model.encoder.dilations=[1] "
              "model.quantizer.codebook_size=16 model.quantizer.dim=8 "
              "model.decoder.speaker_dim=4 model.decoder.wavenet.layers=2 "
              "model.decoder.wavenet.cycles=1 model.decoder.wavenet.residual_channels=4 "
              "model.decoder.wavenet.gate_channels=8 model.decoder.wavenet.skip_channels=4 "
              "train.batch_size=2 train.num_workers=0")
MINI_TRAIN_ARGS = (f"{TINY_MODEL} model.decoder.mel.channels=8 model.decoder.mel.layers=1 "
                   "data.window=4000 train.max_steps=3 train.checkpoint_every=3")
MINI_PRIOR_ARGS = ("model.channels=8 model.layers=2 model.dilation_cycle=2 data.crop=32 "
                   "train.max_steps=2 train.valid_every=1 train.checkpoint_every=2")


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["SPEECHVQ_CACHE"] = str(tmp / "cache")
    # `speechvq` of this interpreter first on PATH, even when pytest runs without an activated venv
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Tiny models: threads only add synchronisation (tens of times slower on a busy 2-core box).
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_recipe(script: Path, *args: str, cwd: Path, tmp: Path, timeout: float = 300
               ) -> subprocess.CompletedProcess:
    r = subprocess.run(["bash", str(script), *args], cwd=cwd, env=_env(tmp),
                       capture_output=True, text=True, timeout=timeout)
    r.log = r.stdout + r.stderr  # type: ignore[attr-defined]
    return r


def _ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.log[-4000:]}"
    return r.log


def _units(path: Path) -> dict[str, list[int]]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return {ln[0]: [int(c) for c in ln[1:]] for ln in lines}


# ------------------------------------------------------------------------------------ options


@pytest.mark.parametrize("script", RECIPES, ids=lambda p: p.parent.name)
def test_recipe_help_and_bad_options(script, tmp_path):
    r = run_recipe(script, "--help", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 0
    for option in ("--stage", "--stop-stage", "--workdir", "--train-config", "--train-args",
                   "--n-convert", "--nj", "--cmd"):
        assert option in r.stdout, option
    assert "first stage to run" in r.stdout  # each option's meaning, from the recipe's comments
    assert "srun --ntasks=1" in r.stdout
    # every option's default line carries its meaning (what --help shows beside it)
    defaults = script.read_text().split("recipe_common.sh")[0].splitlines()
    undocumented = [ln for ln in defaults if re.match(r"[a-z_]+=", ln) and "# " not in ln
                    and not ln.startswith("help_message=")]
    assert not undocumented, undocumented
    r = run_recipe(script, "--no-such-option", "1", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "unknown option --no-such-option" in r.stderr
    r = run_recipe(script, "--stage", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = run_recipe(script, "stray", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "unexpected argument 'stray'" in r.stderr
    r = run_recipe(script, "--train-config", "nowhere.yaml", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "nowhere.yaml not found" in r.stderr
    assert not any(tmp_path.iterdir()), "a refused run wrote something"


@pytest.mark.parametrize("script", RECIPES, ids=lambda p: p.parent.name)
def test_recipe_without_speechvq_says_how_to_install(script, tmp_path):
    env = {**_env(tmp_path), "PATH": "/usr/bin:/bin"}  # bash, no speechvq
    r = subprocess.run(["bash", str(script), "--workdir", "w"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "speechvq command is not on PATH" in r.stderr
    assert 'pip install -e ".[dev]"' in r.stderr and not (tmp_path / "w").exists()


@pytest.mark.parametrize("script", [RECIPES[0], ROOT / "egs" / "images" / "run.sh"],
                         ids=lambda p: p.parent.name)
def test_recipe_with_a_broken_speechvq_says_how_to_reinstall(script, tmp_path):
    """A console script on PATH that cannot start (an editable install whose checkout moved)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "speechvq"  # what pip writes, pointing at a package that is gone
    exe.write_text(f"#!{sys.executable}\nfrom speechvq_checkout_gone.cli import main\nmain()\n")
    exe.chmod(0o755)
    env = {**_env(tmp_path), "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin"}
    r = subprocess.run(["bash", str(script), "--workdir", "w"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"speechvq command on PATH ({exe}) does not run" in r.stderr
    assert "No module named 'speechvq_checkout_gone'" in r.stderr
    assert f'({ROOT}) with pip install -e ".[dev]"' in r.stderr and not (tmp_path / "w").exists()


def test_mini_bad_corpus_dir_and_vctk_without_corpus(tmp_path):
    r = run_recipe(MINI / "run.sh", "--corpus-dir", "missing", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "--corpus-dir missing is not a folder" in r.stderr
    r = run_recipe(VCTK / "run.sh", "--workdir", "w", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "stage 0 needs --vctk DIR" in r.stderr
    r = run_recipe(VCTK / "run.sh", "--stage", "1", "--ngpu", "two", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "--ngpu takes a number" in r.stderr
    r = run_recipe(VCTK / "run.sh", "--corpus-dir", "missing", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "--corpus-dir missing is not a folder" in r.stderr
    r = run_recipe(MINI / "run.sh", "--nj", "0", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "--nj takes a number of parallel jobs" in r.stderr
    r = run_recipe(MINI / "run.sh", "--prior-nproc", "two", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "--prior-nproc takes a number of processes" in r.stderr
    for script, option in ((ROOT / "recipes" / "librispeech" / "run.sh", "--librispeech"),
                           (ROOT / "recipes" / "timit" / "run.sh", "--timit")):
        r = run_recipe(script, "--workdir", "w", cwd=tmp_path, tmp=tmp_path)
        assert r.returncode == 2 and f"stage 0 needs {option} DIR" in r.stderr
    assert not (tmp_path / "w").exists()


def test_vctk_recipe_points_a_plain_folder_to_prepare_folder(tmp_path):
    """Recordings in another layout (<speaker>/<utt>.wav): stage 0 says to use prepare folder."""
    wav = tmp_path / "recordings" / "alice" / "a1.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, np.zeros(1600, np.float32), 16000)
    r = run_recipe(VCTK / "run.sh", "--vctk", str(tmp_path / "recordings"), "--stop-stage", "0",
                   "--workdir", "w", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2, r.log
    assert "speechvq prepare folder" in r.stderr and "--corpus-dir data_folder/all" in r.stderr


# --------------------------------------------------------------------------------------- mini


@pytest.mark.slow
def test_mini_recipe_end_to_end_from_any_directory(tmp_path):
    """Stages 0-2 from the recipe's folder, 3-6 from the repo root, then a rerun from elsewhere
    that skips every finished stage."""
    work = tmp_path / "work"
    # an exp path with a space: every stage must quote it
    common = ["--size", "tiny", "--workdir", str(work), "--train-args", MINI_TRAIN_ARGS,
              "--exp", "exp/mini run", "--nj", "1"]   # jobs: tests/test_recipes_corpora.py
    log = _ok(run_recipe(MINI / "run.sh", *common, "--stop-stage", "2", cwd=MINI, tmp=tmp_path))
    assert "Stage 2a: train the codes" in log and "Stage 2b: train the WaveNet" in log
    assert "Stage 3" not in log
    assert "\r" not in log and max(map(len, log.splitlines())) < 1000  # a readable run.log
    exp = work / "exp" / "mini run"
    assert (work / "exp" / "mini run_codes" / "checkpoints" / "last.pt").is_file()
    assert (exp / "checkpoints" / "last.pt").is_file()
    for run in (work / "exp" / "mini run_codes", exp):  # both runs validated on dump/valid
        assert (run / "checkpoints" / "best.pt").is_file()
        records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
        assert any("valid_loss" in r for r in records), run
    assert "train: initialised from exp/mini run_codes; new: wavenet" in log
    assert {p.name for p in (work / "data").iterdir()} >= {"train", "dev", "test", "test_unseen",
                                                          "test_reread"}

    # --n-wavenet 0: WaveNet sampling on CPU costs ~12 s per test sentence even for this tiny
    # model (one step per sample); that path is run below on a 0.1 s clip instead.
    log = _ok(run_recipe(MINI / "run.sh", *common, "--stage", "3", "--n-convert", "1",
                         "--n-wavenet", "0", "--abx-triplets", "20", "--prior-args",
                         MINI_PRIOR_ARGS, "--n-prior-samples", "1", cwd=ROOT, tmp=tmp_path))
    assert "Stage 0" not in log and "Successfully finished" in log
    for split in ("test", "test_unseen"):
        units = _units(exp / "units" / f"{split}.txt")
        assert units and all(codes for codes in units.values())
        assert all(utt.split("_")[0] in ("f01", "f02", "m01", "m02", "f07", "m07")
                   for utt in units)
        block = json.loads((exp / "eval" / f"units_{split}.json").read_text())["units"][split]
        assert {"vqvae", "majority", "random", "mfcc_kmeans"} <= set(block)
        assert block["codebook_size"] == 16
        assert block["vqvae"]["n_frames"] == sum(len(c) for c in units.values())
        scores = json.loads((exp / "eval" / f"conversion_{split}_mel.json").read_text())
        assert "data/test_reread" in scores["command"]  # the targets' second readings: topline
        assert scores["conversion"][f"{split}_mel"]["mcd_topline"].startswith(
            "two readings by the target")
        conv = exp / "convert" / f"{split}_mel"
        u2src = dict(ln.split() for ln in (conv / "utt2src").read_text().splitlines())
        u2tgt = dict(ln.split() for ln in (conv / "utt2spk").read_text().splitlines())
        assert sorted(p.stem for p in (conv / "wav").glob("*.wav")) == sorted(u2src)
        assert u2src and all(not src.startswith(u2tgt[c] + "_") for c, src in u2src.items())
        assert scores["conversion"][f"{split}_mel"]["n_converted"] == len(u2src)
        assert not (exp / "convert" / f"{split}_wavenet").exists()
    report = exp / "report"
    md = (report / "report.md").read_text()
    for png in report.glob("*.png"):
        assert f"({png.name})" in md  # every figure is in the report
    for split in ("test", "test_unseen"):
        for fig in (f"code_usage_{split}", f"cooccurrence_{split}", f"spectrograms_{split}_mel"):
            assert (report / f"{fig}.png").is_file(), fig
    summary = json.loads((report / "report.json").read_text())
    assert set(summary["units"]) == {"test", "test_unseen"}
    # stage 5: the speech prior, chosen on held-out training codes, scored into the same report
    assert (work / "exp" / "mini run_prior" / "checkpoints" / "best.pt").is_file()
    assert set(summary["prior"]["test"]) >= {"prior", "uniform", "unigram", "bigram"}
    for block in ("samples", "continuation"):
        assert set(summary["prior"][block]["phone_bigram_ppl"]) == {"prior", "code_bigram",
                                                                    "unigram", "real"}
        assert set(summary["prior"][block]["ci95"]["phone_bigram_ppl"]) == {
            "prior", "code_bigram", "unigram", "real"}
    assert (report / "spectrograms_prior.png").is_file()
    for d in ("prior", "continuation"):
        assert (exp / "samples" / d / "sample_000.wav").is_file()
    assert set(summary["conversion"]) == {"test_mel", "test_unseen_mel"}
    # a paper's figures: intervals, and the codes run behind the WaveNet with its curves
    assert "95 % intervals of the units figures on test" in md
    assert summary["units"]["test"]["vqvae"]["ci95"]["mapping_accuracy"]
    assert summary["conversion"]["test_mel"]["ci95"]["mcd_db"]
    assert summary["training_chain"] and summary["training_chain"][0]["exp"].endswith("_codes")
    clip, out = tmp_path / "clip.wav", tmp_path / "clip_f02.wav"
    sf.write(clip, np.zeros(1600, np.float32), 16000)
    r = subprocess.run(["speechvq", "convert", "--model", str(exp), "--src", str(clip),
                        "--speaker", "f02", "--head", "wavenet", "-o", str(out)],
                       env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sf.info(out).frames == 1600

    # A rerun skips what is done (and works from a third directory with a relative workdir).
    done = [exp / "checkpoints" / "last.pt", exp / "units" / "test.txt",
            exp / "eval" / "units_test.json", exp / "eval" / "conversion_test_mel.json"]
    before = [p.stat().st_mtime_ns for p in done]
    again = [*common[:2], "--workdir", "work", *common[4:], "--n-convert", "1", "--n-wavenet", "0"]
    log = _ok(run_recipe(MINI / "run.sh", *again, "--stop-stage", "4", cwd=tmp_path,
                         tmp=tmp_path))
    assert "is complete" in log and "already trained to step 3" in log
    assert "units/test.txt is newer than the model: kept" in log
    assert "eval/units_test_unseen.json is newer than the model: kept" in log
    assert "conversion_test_mel.json is newer than the model and the conversions: kept" in log
    assert [p.stat().st_mtime_ns for p in done] == before
    # one missing result: only that one is scored again
    (exp / "eval" / "conversion_test_unseen_mel.json").unlink()
    _ok(run_recipe(MINI / "run.sh", *again, "--stage", "4", "--stop-stage", "4", cwd=tmp_path,
                   tmp=tmp_path))
    assert (exp / "eval" / "conversion_test_unseen_mel.json").is_file()
    assert [p.stat().st_mtime_ns for p in done] == before


@pytest.mark.slow
def test_mini_recipe_on_a_prepared_corpus_dir(tmp_path, tiny_data_dir):
    """--corpus-dir (relative to where the recipe is started): dump, train and encode the
    training data; the scoring stages say why they are skipped. (The report of such an exp is
    the same code as above.)"""
    log = _ok(run_recipe(MINI / "run.sh", "--corpus-dir", "data/tiny", "--workdir", "work",
                         "--train-args", MINI_TRAIN_ARGS.replace("max_steps=3", "max_steps=2"),
                         "--stop-stage", "4", cwd=tmp_path, tmp=tmp_path))
    assert f"Training on {tiny_data_dir}" in log and "stage 4 is skipped" in log
    assert "Stage 0" not in log and "Stage 4" not in log
    assert "Stage 3: encode the training data" in log
    work = tmp_path / "work"
    assert not (work / "data").exists()
    assert (work / "dump" / "train" / "dump.json").is_file()
    exp = work / "exp" / "mini"
    assert (exp / "checkpoints" / "last.pt").is_file()
    assert not (exp / "checkpoints" / "best.pt").exists()  # no held-out split: no validation
    assert not (exp / "eval").exists()
    units = _units(exp / "units" / "train.txt")
    assert sorted(units) == sorted(read_table(tiny_data_dir / "utt2spk"))


# --------------------------------------------------------------------------------------- VCTK

FAKE_SPEAKERS = ("p225", "p226", "p227", "p228", "p229")   # 5 -> 1 held out (p229)
FAKE_SENTENCES = (1, 2, 3, *range(25, 32))                 # 001-003 parallel; 5 dev + 2 train


def make_fake_vctk092(root: Path, seconds: float = 0.5) -> Path:
    """A VCTK 0.92 tree: wav48_silence_trimmed/SPK/SPK_NNN_mic1.flac (48 kHz) + txt/SPK/*.txt."""
    rate = 48000
    t = np.arange(int(rate * seconds)) / rate
    for s, spk in enumerate(FAKE_SPEAKERS):
        rng = np.random.default_rng(s)
        for n in FAKE_SENTENCES:
            utt = f"{spk}_{n:03d}"
            f0 = 100.0 + 25 * s + n  # one voice per speaker, a little melody per sentence
            x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
            x = 0.3 * x / np.abs(x).max() + 0.01 * rng.standard_normal(t.size)
            audio = root / "wav48_silence_trimmed" / spk / f"{utt}_mic1.flac"
            audio.parent.mkdir(parents=True, exist_ok=True)
            sf.write(audio, x.astype(np.float32), rate, subtype="PCM_16")
            (root / "txt" / spk).mkdir(parents=True, exist_ok=True)
            (root / "txt" / spk / f"{utt}.txt").write_text(f"Sentence number {n}.\n")
    return root


def test_vctk_conf_holds_the_paper_settings():
    cfg = load_config(VCTK / "conf" / "train.yaml")
    enc, vq, wn = cfg.model.encoder, cfg.model.quantizer, cfg.model.decoder.wavenet
    assert cfg.data.sample_rate == 16000 and enc.input == "wav"
    assert enc.strides == [2] * 6 and enc.kernel_size == 4           # 64x downsampling
    assert (vq.codebook_size, vq.dim, vq.update) == (512, 64, "ema")
    assert (wn.layers, wn.cycles, wn.residual_channels, wn.gate_channels,
            wn.skip_channels) == (30, 3, 256, 512, 256)
    assert (wn.upsample, wn.output, wn.quantization_channels) == ("transposed", "softmax", 256)
    assert cfg.model.decoder.mel.weight == 0
    assert cfg.train.amp == "auto" and cfg.train.num_workers == 4
    assert cfg.data.window % 64 == 0 and cfg.train.batch_size % 8 == 0  # splits over 2/4/8 GPUs
    debug = load_config(VCTK / "conf" / "train_debug.yaml")
    assert debug.model.encoder.strides == enc.strides and debug.train.max_steps <= 1000


@pytest.mark.slow
def test_vctk_recipe_on_a_fake_tree_through_stage_3(tmp_path):
    corpus = make_fake_vctk092(tmp_path / "VCTK-Corpus-0.92")
    work = tmp_path / "work"
    # The paper's conf/train.yaml, shrunk by overrides (the transposed upsampling, raw-wave
    # encoder and softmax output stay as configured).
    train_args = (f"{TINY_MODEL} data.window=2048 train.max_steps=2 train.checkpoint_every=2 "
                  "train.warmup_steps=0")
    log = _ok(run_recipe(VCTK / "run.sh", "--vctk", str(corpus), "--stop-stage", "3",
                         "--ngpu", "0", "--nj", "1", "--workdir", str(work),
                         "--train-args", train_args, cwd=ROOT, tmp=tmp_path))
    data = work / "data"
    assert {p.name for p in data.iterdir()} >= {"all", "train", "dev", "test", "test_unseen"}
    for split in ("train", "dev", "test", "test_unseen"):
        assert (work / "dump" / split / "dump.json").is_file(), split
    exp = work / "exp" / "vctk"
    assert (exp / "checkpoints" / "last.pt").is_file()
    cfg = (exp / "config.yaml").read_text()
    assert "upsample: transposed" in cfg and "codebook_size: 16" in cfg
    assert "unit scoring skipped" in log and not (exp / "eval").exists()
    units = _units(exp / "units" / "test_unseen.txt")
    assert sorted(units) == ["p229_001", "p229_002", "p229_003"]
    assert all(len(c) == -(-8000 // 64) for c in units.values())     # 0.5 s at 16 kHz, hop 64
    assert sorted(_units(exp / "units" / "test.txt")) == [
        f"{s}_{n:03d}" for s in FAKE_SPEAKERS[:4] for n in (1, 2, 3)]


# ---------------------------------------------------------------------- convert --per-speaker


class _FakeData:
    def __init__(self, utts, texts=None):
        self.utts = sorted(utts)
        self.texts = texts or {}

    def speaker(self, utt):
        return utt.split("_")[0]

    def text(self, utt):
        return self.texts.get(utt)


def test_conversion_pairs_per_speaker_spreads_the_sources():
    from speechvq.convert import conversion_pairs

    data = _FakeData([f"{s}_{n:03d}" for s in ("p360", "p361", "p362") for n in (1, 2, 3)])
    firsts = conversion_pairs(data, ["p225"], max_utts=2)
    assert [src for _, src, _ in firsts] == ["p360_001", "p360_002"]
    spread = conversion_pairs(data, ["p225", "p226"], max_utts=2, per_speaker=1)
    assert spread == [("p225-p360_001", "p360_001", "p225"), ("p225-p361_001", "p361_001", "p225"),
                      ("p226-p360_001", "p360_001", "p226"), ("p226-p361_001", "p361_001", "p226")]
    assert len(conversion_pairs(data, ["p225"], None, per_speaker=2)) == 6
    own = conversion_pairs(_FakeData(["p225_001", "p226_001"]), ["p225"], None, per_speaker=1)
    assert own == [("p225-p226_001", "p226_001", "p225")]           # never to its own speaker


def test_conversion_pairs_with_parallel_targets():
    """--parallel-to: each source goes only to speakers who read its sentence; --per-speaker
    picks sources with sentences not taken yet."""
    from speechvq.convert import conversion_pairs

    texts = {"u1_001": "A", "u1_002": "B", "u2_001": "A", "u2_002": "C"}
    data = _FakeData(list(texts), texts)
    readers = {"A": ["s1", "s2", "s3"], "B": ["s3"], "C": []}
    pairs = conversion_pairs(data, ["s1", "s2", "s3"], None, per_speaker=2, readers=readers,
                             n_targets=2)
    # u2_001 repeats u1_001's sentence A, so it is skipped; C has no reader among the targets
    assert pairs == [("s1-u1_001", "u1_001", "s1"), ("s2-u1_001", "u1_001", "s2"),
                     ("s3-u1_002", "u1_002", "s3")]
    only_s2 = conversion_pairs(data, ["s2"], None, readers=readers)
    assert only_s2 == [("s2-u1_001", "u1_001", "s2"), ("s2-u2_001", "u2_001", "s2")]
