"""The video chain end to end through the CLI, tiny, in-process: prepare-video, train, encode
--codes-out, train a video prior, evaluate prior, evaluate video (reconstruction and greedy
continuations beside both baselines), sample continuations, report."""

from __future__ import annotations

import json

import pytest

from speechvq import cli
from speechvq.data.code_dump import CodeDump

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_VQ = ["model.channels=8", "model.residual_channels=4", "model.residual_blocks=1",
           "model.quantizer.codebook_size=16", "model.quantizer.dim=4", "train.batch_size=4",
           "train.max_steps=2", "train.checkpoint_every=2", "train.log_every=2"]
TINY_PRIOR = ["task=prior", "model.arch=video", "model.channels=8", "model.layers=1",
              "model.time_layers=1", "model.conditional=false", "train.batch_size=4",
              "train.max_steps=2", "train.checkpoint_every=2", "train.log_every=2"]


def test_video_chain_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHVQ_CACHE", str(tmp_path / "cache"))
    dump, vq, prior = tmp_path / "dump", tmp_path / "vq", tmp_path / "prior"
    conf = str(cli.__file__).replace("speechvq/cli/__init__.py",
                                     "egs/moving_glyphs/conf/train.yaml")
    assert cli.main(["prepare-video", "builtin", str(dump), "--size", "tiny"]) == 0
    assert cli.main(["train", "--config", conf, "--data", str(dump / "train"), "--exp", str(vq),
                     "--no-progress", *TINY_VQ]) == 0
    for split in ("train", "test"):
        assert cli.main(["encode", "--model", str(vq), "--data", str(dump / split),
                         "--codes-out", str(tmp_path / "codes" / split), "--no-progress"]) == 0
    codes = CodeDump.open(tmp_path / "codes" / "train")
    assert codes.grid == (10, 16, 16) and len(codes) == 32 and codes.modality == "video"
    assert cli.main(["train", "--data", str(tmp_path / "codes" / "train"), "--exp", str(prior),
                     "--no-progress", *TINY_PRIOR]) == 0
    assert cli.main(["evaluate", "prior", "--model", str(prior), "--data",
                     str(tmp_path / "codes" / "test"), "--exp", str(vq), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", "video", "--model", str(vq), "--prior", str(prior), "--data",
                     str(dump / "test"), "--max-clips", "3", "--examples", "1",
                     "--no-progress"]) == 0
    assert "greedy continuation" in capsys.readouterr().out
    block = json.loads((vq / "eval" / "video_test.json").read_text())["video"]["test"]
    assert block["n_clips"] == 8 and block["vqvae"]["recon_psnr_db"] > 0
    for system in ("continuation", "repeat_last", "blank"):
        assert len(block[system]["psnr_db_per_frame"]) == 10
        assert block[system]["psnr_db_frames_2_5"] == pytest.approx(
            sum(block[system]["psnr_db_per_frame"][1:5]) / 4)
    assert block["repeat_last"]["psnr_db_per_frame"][0] > block["blank"]["psnr_db_per_frame"][0]
    assert cli.main(["evaluate", "video", "--model", str(vq), "--prior", str(prior), "--data",
                     str(dump / "test"), "--prompt-frames", "3", "--name", "odd"]) == 2
    assert "multiple of the model's time stride" in capsys.readouterr().err
    out = tmp_path / "samples"
    assert cli.main(["sample", "--model", str(prior), "-n", "2", "--temperature", "0",
                     "--prompt", str(tmp_path / "codes" / "test"), "--prompt-length", "1280",
                     "-o", str(out)]) == 0
    sampled, test = CodeDump.open(out / "codes"), CodeDump.open(tmp_path / "codes" / "test")
    assert sampled.item(1).reshape(-1)[:1280].tolist() == \
        test.item(1).reshape(-1)[:1280].tolist()
    assert {"sample_000.gif", "sample_000.png", "sample_001.gif"} <= {p.name for p in
                                                                      out.iterdir()}
    assert cli.main(["report", "--exp", str(vq)]) == 0
    report = json.loads((vq / "report" / "report.json").read_text())
    assert report["video"]["test"]["blank"]["psnr_db_frames_2_5"] == \
        block["blank"]["psnr_db_frames_2_5"]
    assert {"prior", "uniform", "unigram", "bigram"} <= set(report["prior"]["test"])
    md = (vq / "report" / "report.md").read_text()
    assert "## Video: test" in md and "## Prior: test" in md
    assert "video_test_psnr_per_frame.png" in md and "video_test_clip0.gif" in md
    assert (vq / "report" / "video_test_clip0.gif").is_file()
