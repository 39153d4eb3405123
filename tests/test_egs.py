"""The image examples, run as a user runs them: `bash egs/<dataset>/run.sh ...`, tiny, on CPU.

As the recipe tests (test_recipes.py, whose runner is used here): a temp --workdir and
$SPEECHVQ_CACHE, a tiny model through --train-args; what is checked is the plumbing (every
stage's outputs, the report's image section and figures, finished work skipped on a rerun).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from test_recipes import _ok, run_recipe

ROOT = Path(__file__).resolve().parents[1]
EGS = {name: ROOT / "egs" / name / "run.sh" for name in ("images", "mnist", "cifar10")}
TINY_TRAIN_ARGS = ("model.channels=8 model.residual_channels=4 model.quantizer.codebook_size=16 "
                   "model.quantizer.dim=4 train.batch_size=8 train.max_steps=4 "
                   "train.checkpoint_every=4 train.log_every=2")


@pytest.mark.parametrize("name", list(EGS))
def test_egs_help_and_bad_options(name, tmp_path):
    r = run_recipe(EGS[name], "--help", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 0
    for option in ("--stage", "--stop-stage", "--workdir", "--train-config", "--train-args",
                   "--kmeans-patches"):
        assert option in r.stdout, option
    r = run_recipe(EGS[name], "--no-such-option", "1", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "unknown option --no-such-option" in r.stderr
    r = run_recipe(EGS[name], "--train-config", "nowhere.yaml", cwd=tmp_path, tmp=tmp_path)
    assert r.returncode == 2 and "nowhere.yaml not found" in r.stderr
    if name != "images":
        r = run_recipe(EGS[name], "--workdir", "w", cwd=tmp_path, tmp=tmp_path)
        assert r.returncode == 2 and "stage 0 needs --" in r.stderr
    assert not any(tmp_path.iterdir()), "a refused run wrote something"


def test_egs_confs_resolve_to_image_configs():
    from speechvq.config import load_config

    for conf in sorted((ROOT / "egs").glob("*/conf/*.yaml")):
        cfg = load_config(conf)
        assert cfg.task == ("prior" if conf.stem.startswith("prior") else "image"), conf
    paper = load_config(ROOT / "egs" / "cifar10" / "conf" / "train.yaml")
    assert (paper.model.channels, paper.model.quantizer.codebook_size, paper.model.quantizer.dim,
            paper.train.batch_size, paper.train.lr) == (256, 512, 64, 128, 2e-4)


@pytest.mark.slow
def test_images_example_end_to_end_and_rerun(tmp_path):
    work = tmp_path / "work"
    common = ["--size", "tiny", "--workdir", str(work), "--train-args", TINY_TRAIN_ARGS,
              "--exp", "exp/images run", "--kmeans-patches", "2000", "--kmeans-iters", "5"]
    log = _ok(run_recipe(EGS["images"], *common, cwd=ROOT, tmp=tmp_path))
    for stage in ("Stage 0", "Stage 1", "Stage 2: evaluate", "Stage 3", "Successfully"):
        assert stage in log, stage
    exp = work / "exp" / "images run"
    report = json.loads((exp / "report" / "report.json").read_text())
    block = report["images"]["test"]
    assert block["n_images"] == 128 and block["codebook_size"] == 16
    assert {"vqvae", "patch_kmeans"} <= set(block) and report["training"]["steps"] == 4
    md = (exp / "report" / "report.md").read_text()
    for figure in ("training_curves.png", "images_test_reconstructions.png",
                   "images_test_codes.png"):
        assert f"({figure})" in md and (exp / "report" / figure).is_file()
    log = _ok(run_recipe(EGS["images"], *common, "--stage", "1", "--stop-stage", "2",
                         cwd=tmp_path, tmp=tmp_path))  # from elsewhere
    assert "already trained to step 4" in log and "images_test.json is newer than the model" in log
    assert "Stage 3" not in log


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), compresslevel=1))


def test_mnist_example_splits_t10k_alone_by_index(tmp_path):
    src = tmp_path / "mnist"
    src.mkdir()
    _idx(src / "t10k-images-idx3-ubyte.gz", np.zeros((8000, 28, 28), np.uint8))
    _idx(src / "t10k-labels-idx1-ubyte.gz", np.arange(8000) % 10)
    log = _ok(run_recipe(EGS["mnist"], "--mnist", str(src), "--workdir", str(tmp_path / "w"),
                         "--stop-stage", "0", cwd=tmp_path, tmp=tmp_path))
    assert "split as train=t10k:0-6999 test=t10k:7000-7999" in log
    info = json.loads((tmp_path / "w" / "dump" / "test" / "info.json").read_text())
    assert (info["n_images"], info["shape"], info["start"]) == (1000, [28, 28, 1], 7000)


def test_cifar10_example_prepares_the_binary_batches(tmp_path):
    src = tmp_path / "cifar-10-batches-bin"
    src.mkdir()
    for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        (src / name).write_bytes(bytes(2 * 3073))  # two black airplanes
    log = _ok(run_recipe(EGS["cifar10"], "--cifar", str(tmp_path), "--workdir",
                         str(tmp_path / "w"), "--stop-stage", "0", cwd=tmp_path, tmp=tmp_path))
    assert "Stage 0" in log
    info = json.loads((tmp_path / "w" / "dump" / "train" / "info.json").read_text())
    assert (info["n_images"], info["shape"]) == (10, [32, 32, 3])
