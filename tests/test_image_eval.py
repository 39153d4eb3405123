"""The image task end to end through the CLI (`speechvq train` on an image dump, `speechvq
evaluate images`), and the evaluation's arithmetic (speechvq.evaluation.image)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from speechvq import cli
from speechvq.checkpoint import load_model
from speechvq.data.images.builtin import render_images
from speechvq.data.images.dump import ImageDump, write_dump
from speechvq.errors import ModelError
from speechvq.evaluation.image import PatchKMeans, _patches, _unpatch, bootstrap_ci, psnr_db

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["task=image", "model.channels=8", "model.residual_channels=4",
        "model.quantizer.codebook_size=16", "model.quantizer.dim=4", "train.batch_size=8",
        "train.max_steps=4", "train.checkpoint_every=2", "train.log_every=2"]


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for k, (split, n) in enumerate((("train", 48), ("test", 12))):
        images, labels = render_images(n, 0, k)
        write_dump(root / split, images, labels, [str(d) for d in range(10)], {})
    return root


def _train(dumps, exp, *extra):
    assert cli.main(["train", "--data", str(dumps / "train"), "--valid", str(dumps / "test"),
                     "--exp", str(exp), "--no-progress", *TINY, "train.valid_every=2",
                     *extra]) == 0


@pytest.mark.parametrize("output", ["mse", "categorical"])
def test_train_then_evaluate_images_writes_the_design_keys(dumps, tmp_path, output, capsys):
    exp = tmp_path / "exp"
    _train(dumps, exp, f"model.output={output}")
    assert (exp / "classes.txt").read_text() == "".join(f"{d}\n" for d in range(10))
    assert {p.name for p in (exp / "checkpoints").iterdir()} >= {"last.pt", "best.pt"}
    assert cli.main(["evaluate", "images", "--model", str(exp), "--data", str(dumps / "test"),
                     "--fit-on", str(dumps / "train"), "--kmeans-patches", "500",
                     "--kmeans-iters", "5", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "patch_kmeans" in printed and "bits per image" in printed
    result = json.loads((exp / "eval" / "images_test.json").read_text())
    block = result["images"]["test"]
    assert block["n_images"] == 12 and block["latent_shape"] == [8, 8]
    for system in ("vqvae", "patch_kmeans"):
        s = block[system]
        assert {"mse", "psnr_db", "bits_per_image", "codes_used", "perplexity"} <= set(s)
        assert s["bits_per_image"] == 64 * 4  # 8x8 codes of log2(16) bits
        assert math.isclose(s["psnr_db"], 10 * math.log10(255 ** 2 / s["mse"]))
        low, high = s["ci95"]["psnr_db"]
        assert low <= s["psnr_db"] <= high
    assert ("bits_per_dim" in block["vqvae"]) == (output == "categorical")
    if output == "categorical":
        vq = block["vqvae"]
        assert math.isclose(vq["bits_per_dim"],
                            vq["bits_per_dim_given_codes"] + 256 / (32 * 32 * 3))
    # the VQ-VAE's figures are recomputed here from the checkpoint, not copied from the code
    model = load_model(exp, kind="image")
    test = ImageDump.open(dumps / "test")
    x = torch.from_numpy(np.asarray(test.images).transpose(0, 3, 1, 2).copy())
    recon = model.reconstruct(x).numpy().transpose(0, 2, 3, 1).astype(np.float64)
    assert math.isclose(block["vqvae"]["mse"], float(((recon - test.images) ** 2).mean()))
    for figure in result["details"]["figures"].values():
        assert open(figure, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ModelError, match="holds a 'image' model, but this command needs a "
                                         "'speech' model"):
        load_model(exp, kind="speech")
    if output == "mse":
        _report_holds_the_blocks_and_figures(exp, block)


def _report_holds_the_blocks_and_figures(exp, block):
    assert cli.main(["report", "--exp", str(exp)]) == 0
    report = json.loads((exp / "report" / "report.json").read_text())
    assert report["images"]["test"] == block  # copied unchanged
    assert report["training"]["steps"] == 4 and "mse" in report["training"]
    assert report["sources"]["images.test"]["command"].startswith("speechvq evaluate images")
    md = (exp / "report" / "report.md").read_text()
    assert "## Images: test" in md and "| **VQ-VAE** |" in md and "at the same 256 bits" in md
    csv = (exp / "report" / "tables" / "images_test.csv").read_text().splitlines()
    assert csv[0].startswith("system,MSE,PSNR dB") and csv[1].startswith("VQ-VAE,")
    linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert {"training_curves.png", "images_test_reconstructions.png",
            "images_test_codes.png"} <= set(linked)
    assert all((exp / "report" / name).is_file() for name in linked)


def test_a_rerun_resumes_and_a_finished_run_says_so(dumps, tmp_path, capsys):
    exp = tmp_path / "exp"
    _train(dumps, exp, "train.max_steps=2")
    _train(dumps, exp)  # max_steps may grow: resumes at step 2
    steps = [json.loads(ln)["step"] for ln in (exp / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 2, 4, 4]  # train and validation records
    _train(dumps, exp)
    assert "already trained to step 4" in capsys.readouterr().err


def test_user_errors_are_one_line(dumps, tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "none"), "--exp", str(tmp_path / "e"),
                     *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "image dump" in err and "does not exist" in err
    assert cli.main(["train", "--data", str(dumps / "train"), "--exp", str(tmp_path / "e"),
                     *TINY, "data.image_size=28", "data.channels=1"]) == 2
    assert "holds 32x32x3 images" in capsys.readouterr().err
    assert cli.main(["prepare-images", "mnist", str(tmp_path), str(tmp_path / "o")]) == 2
    assert "train-images-idx3-ubyte (or" in capsys.readouterr().err
    (tmp_path / "src" / "cat").mkdir(parents=True)
    (tmp_path / "src" / "cat" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert cli.main(["prepare-images", "folder", str(tmp_path / "src"), str(tmp_path / "o"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "a.png' cannot be read" in err and not (tmp_path / "o").exists()


def test_patches_round_trip_and_kmeans_reconstructs_a_patch_codebook_exactly():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    patches = _patches(images, 4)  # (3 * 2 * 3, 48)
    assert patches.shape == (18, 48)
    np.testing.assert_array_equal(patches[1], images[0, :4, 4:8].reshape(-1))
    np.testing.assert_array_equal(_unpatch(patches, 3, 8, 12, 3, 4), images)
    # images made of 5 distinct patches: k-means with K >= 5 finds them, PSNR is infinite
    tiles = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    pick = rng.integers(0, 5, (20, 2, 2))
    tiled = tiles[pick].transpose(0, 1, 3, 2, 4, 5).reshape(20, 8, 8, 3)
    km = PatchKMeans(8, 4, n_patches=80, iters=20).fit(tiled)
    np.testing.assert_array_equal(km.decode(km.encode(tiled), 3), tiled)
    assert psnr_db(0.0) == math.inf and math.isclose(psnr_db(255.0 ** 2), 0.0)


def test_bootstrap_interval_holds_the_estimate_and_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    small, large = rng.gamma(2.0, 50.0, 20), rng.gamma(2.0, 50.0, 2000)
    ci_small, ci_large = bootstrap_ci(small, 1, 0), bootstrap_ci(large, 1, 0)
    assert ci_small["mse"][0] < small.mean() < ci_small["mse"][1]
    assert np.diff(ci_large["mse"]) < np.diff(ci_small["mse"])
    assert ci_small["psnr_db"][0] == psnr_db(ci_small["mse"][1])
